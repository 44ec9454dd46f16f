"""Datasets and loading: ``from minidl.data import DataLoader, TensorDataset, FashionMNIST, load_csv``."""
from .dataset import DataLoader, Dataset, TensorDataset
from .fashion_mnist import FashionMNIST
from .idx import read_idx, write_idx
from .tabular import Table, load_csv
