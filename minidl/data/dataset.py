"""Datasets and the DataLoader that batches them into Tensors."""
import math
import numbers

import numpy as np

from ..random import default_generator, generator_from_state
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
    ``state_dict()`` holds that generator's state, so a resumed run shuffles as an unbroken one.
    ``sampler``: an iterable of indices with a len (a DistributedSampler), read in its order
    instead; it excludes shuffle.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None,
                 device="cpu", sampler=None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
            raise TypeError(f"DataLoader: batch_size must be an int, got {batch_size!r} "
                            f"({type(batch_size).__name__})")
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler and shuffle=True exclude each other (the sampler "
                             "decides the order; DistributedSampler shuffles itself)")
        self.sampler = sampler
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.drop_last, self.device = shuffle, drop_last, device
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def __len__(self):
        n = len(self.dataset if self.sampler is None else self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _order(self):
        if self.sampler is not None:
            return np.fromiter(self.sampler, dtype=np.int64)
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return (self._rng or default_generator()).permutation(n)

    def state_dict(self):
        """{'generator': the shuffle generator's ``bit_generator.state``, or None when the loader
        draws from minidl's global generator (whose state ``minidl.random.get_rng_state`` gives)}."""
        return {"generator": None if self._rng is None else self._rng.bit_generator.state}

    @staticmethod
    def check_state_dict(state):
        """The shuffle generator ``state`` (from ``state_dict``) describes, None for the global
        one; ValueError if ``state`` is not such a state."""
        if not isinstance(state, dict) or set(state) != {"generator"}:
            raise ValueError(f"DataLoader: a state is {{'generator': ...}}, got {state!r:.200}")
        return None if state["generator"] is None else generator_from_state(state["generator"])

    def load_state_dict(self, state):
        """Continue shuffling from ``state`` (from ``state_dict``), checked before it is used."""
        self._rng = self.check_state_dict(state)

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
