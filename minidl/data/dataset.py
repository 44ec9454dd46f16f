"""Datasets and the DataLoader that batches them into Tensors."""
import math

import numpy as np

from ..random import default_generator
from ..tensor import Tensor


class Dataset:
    """A map-style dataset: ``len(ds)`` and ``ds[i]`` -> a tuple of arrays.

    A dataset may also define ``get_batch(indices)`` returning the stacked arrays of many
    samples at once; the DataLoader uses it when present (one fancy-index instead of a loop).
    """

    def __len__(self):
        raise NotImplementedError

    def __getitem__(self, index):
        raise NotImplementedError


class TensorDataset(Dataset):
    """Samples are the i-th rows of equally long arrays (or Tensors)."""

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("TensorDataset needs at least one array")
        self.arrays = tuple(a.data if isinstance(a, Tensor) else np.asarray(a) for a in arrays)
        lengths = [len(a) for a in self.arrays]
        if len(set(lengths)) != 1:
            raise ValueError(f"TensorDataset: arrays differ in length: {lengths}")

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, index):
        return tuple(a[index] for a in self.arrays)

    def get_batch(self, indices):
        return tuple(a[indices] for a in self.arrays)


class DataLoader:
    """Iterates over a dataset in batches of Tensors (one Tensor per field of a sample).

    shuffle draws a new order every epoch from ``seed`` (or minidl's generator when seed is None).
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None,
                 device="cpu"):
        if int(batch_size) < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.drop_last, self.device = shuffle, drop_last, device
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _order(self):
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return (self._rng or default_generator()).permutation(n)

    def __iter__(self):
        order = self._order()
        for b in range(len(self)):
            indices = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield tuple(Tensor(field, device=self.device) for field in self._fetch(indices))

    def _fetch(self, indices):
        if hasattr(self.dataset, "get_batch"):
            return self.dataset.get_batch(indices)
        samples = [self.dataset[int(i)] for i in indices]
        if not isinstance(samples[0], tuple):
            samples = [(s,) for s in samples]
        return tuple(np.stack([np.asarray(s[k]) for s in samples]) for k in range(len(samples[0])))
