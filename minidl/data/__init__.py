"""Datasets and loading: ``from minidl.data import DataLoader, TensorDataset, FashionMNIST, load_csv``."""
from .dataset import (ConcatDataset, DataLoader, Dataset, Subset, TensorDataset, default_collate,
                      random_split)
from .distributed import DistributedSampler
from .fashion_mnist import FashionMNIST
from .idx import read_idx, write_idx
from .tabular import Table, load_csv
