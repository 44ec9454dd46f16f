"""PyTorch's ``torch.utils.data`` path for ``minidl.data``: ``from minidl.utils.data import
DataLoader, Dataset, TensorDataset, Subset, random_split, ConcatDataset, default_collate,
DistributedSampler``."""
from ..data.dataset import (ConcatDataset, DataLoader, Dataset, Subset, TensorDataset,
                            default_collate, random_split)
from ..data.distributed import DistributedSampler

__all__ = ["ConcatDataset", "DataLoader", "Dataset", "DistributedSampler", "Subset",
           "TensorDataset", "default_collate", "random_split"]
