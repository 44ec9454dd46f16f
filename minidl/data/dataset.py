"""Datasets and the DataLoader that batches them into Tensors."""
import bisect
import collections.abc
import math
import numbers

import numpy as np

from ..device import to_host
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
        self.arrays = tuple(a.array if isinstance(a, Tensor) else np.asarray(a) for a in arrays)
        lengths = [len(a) for a in self.arrays]
        if len(set(lengths)) != 1:
            raise ValueError(f"TensorDataset: arrays differ in length: {lengths}")

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, index):
        return tuple(a[index] for a in self.arrays)

    def get_batch(self, indices):
        return tuple(a[indices] for a in self.arrays)


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, np.asarray(indices, dtype=np.int64)
        if hasattr(dataset, "get_batch"):  # keep the one-call fetch of the dataset
            self.get_batch = lambda indices: dataset.get_batch(self.indices[indices])

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]


class ConcatDataset(Dataset):
    """The samples of several datasets one after another."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]))

    def __len__(self):
        return int(self.cumulative_sizes[-1]) if self.cumulative_sizes else 0

    def __getitem__(self, index):
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"ConcatDataset: index {index} out of range for {len(self)} samples")
        which = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][int(index - start)]


def _split_generator(generator, name):
    """A numpy Generator from ``generator``: None (minidl's global one), a seed, or a Generator."""
    if generator is None:
        return default_generator()
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, numbers.Integral) and not isinstance(generator, bool):
        return np.random.default_rng(int(generator))
    raise TypeError(f"{name}: generator must be None, an int seed or a numpy Generator, got "
                    f"{type(generator).__name__}")


def random_split(dataset, lengths, generator=None):
    """Subsets of ``dataset`` of the given ``lengths`` (counts summing to len(dataset), or
    fractions summing to 1, rounded down with the remainder given one by one to the first
    subsets, as PyTorch), from a random permutation drawn from ``generator``."""
    n, lengths = len(dataset), list(lengths)
    if lengths and math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        if any(not 0 <= f <= 1 for f in lengths):
            raise ValueError(f"random_split: fractions must be between 0 and 1, got {lengths}")
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != n or any(int(k) != k or k < 0 for k in lengths):
        raise ValueError(f"random_split: lengths {lengths} must be counts >= 0 summing to the "
                         f"dataset's {n} samples, or fractions summing to 1")
    order = _split_generator(generator, "random_split").permutation(n)
    ends = np.cumsum([int(k) for k in lengths])
    return [Subset(dataset, order[end - int(k):end]) for k, end in zip(lengths, ends)]


def default_collate(batch):
    """One batch from a list of samples, as PyTorch's ``default_collate``: Tensors and numpy
    arrays are stacked into a Tensor, Python and numpy numbers become a Tensor of shape (N,)
    (int -> int64, float -> float64, bool -> bool), strings stay a list, and tuples, lists and
    dicts are collated field by field into the same structure."""
    sample = batch[0]
    if isinstance(sample, Tensor):
        return Tensor(np.stack([to_host(s.array) for s in batch]), device="cpu")
    if isinstance(sample, (np.ndarray, np.generic)) and sample.dtype.kind in "biufc":
        return Tensor(np.stack(batch), device="cpu")
    if isinstance(sample, (bool, numbers.Number)):
        dtype = np.bool_ if isinstance(sample, bool) else (
            np.int64 if isinstance(sample, numbers.Integral) else np.float64)
        return Tensor(np.array(batch, dtype=dtype), device="cpu")
    if isinstance(sample, (str, bytes)):
        return list(batch)
    if isinstance(sample, collections.abc.Mapping):
        return type(sample)({key: default_collate([s[key] for s in batch]) for key in sample})
    if isinstance(sample, collections.abc.Sequence):
        if any(len(s) != len(sample) for s in batch):
            raise RuntimeError(f"default_collate: the samples of a batch are sequences of "
                               f"different lengths {sorted({len(s) for s in batch})}")
        fields = [default_collate(list(field)) for field in zip(*batch)]
        if isinstance(sample, tuple) and hasattr(sample, "_fields"):  # a namedtuple
            return type(sample)(*fields)
        return tuple(fields) if isinstance(sample, tuple) else fields
    raise TypeError(f"default_collate: a sample must hold Tensors, numpy arrays, numbers, strings, "
                    f"dicts or sequences of them; found {type(sample).__name__}")


def _to_device(batch, device):
    """``batch`` (Tensors inside tuples, lists and dicts) with its Tensors moved to ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, collections.abc.Mapping):
        return type(batch)({key: _to_device(value, device) for key, value in batch.items()})
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(_to_device(value, device) for value in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(value, device) for value in batch)
    return batch


class DataLoader:
    """Iterates over a dataset in batches of Tensors (one Tensor per field of a sample).

    shuffle draws a new order every epoch from ``seed`` (or minidl's generator when seed is None).
    ``state_dict()`` holds that generator's state, so a resumed run shuffles as an unbroken one.
    ``sampler``: an iterable of indices with a len (a DistributedSampler), read in its order
    instead; it excludes shuffle.

    A batch is ``collate_fn(list of samples)``, by default ``default_collate`` (Tensors, with
    the sample's tuple/dict structure); a dataset with ``get_batch`` is fetched in one call
    instead when collate_fn is the default. PyTorch's arguments: ``generator`` is ``seed``'s
    other name (an int or a numpy Generator); ``num_workers`` is accepted but samples are always
    loaded in this process (the kernels already use the cores); ``pin_memory`` and
    ``persistent_workers`` change nothing.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None,
                 device="cpu", sampler=None, num_workers=0, collate_fn=None, pin_memory=False,
                 generator=None, persistent_workers=False):
        if isinstance(num_workers, bool) or not isinstance(num_workers, numbers.Integral) \
                or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be an int >= 0, got {num_workers!r}")
        if seed is not None and generator is not None:
            raise ValueError("DataLoader: give seed or generator, not both (generator is "
                             "PyTorch's name for the shuffle generator)")
        if generator is not None:
            seed = _split_generator(generator, "DataLoader")
        self.collate_fn = collate_fn
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
            yield _to_device(self._fetch(indices), self.device)

    def _fetch(self, indices):
        if self.collate_fn is None and hasattr(self.dataset, "get_batch"):
            return tuple(Tensor(field, device="cpu") for field in self.dataset.get_batch(indices))
        return (self.collate_fn or default_collate)([self.dataset[int(i)] for i in indices])
