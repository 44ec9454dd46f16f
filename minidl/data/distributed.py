"""DistributedSampler: each rank's share of a dataset's indices, as PyTorch's."""
import math

import numpy as np


class DistributedSampler:
    """The indices of a dataset of n samples that rank ``rank`` of ``num_replicas`` reads in one
    epoch; pass it as ``DataLoader(dataset, batch_size, sampler=sampler)``.

    Every rank gets the same number of indices, m = ceil(n / p) (with ``drop_last``:
    m = ceil((n - p) / p) when p does not divide n, i.e. floor(n / p)), so that every rank runs
    the same number of steps (a rank with one step more would wait forever for the others'
    gradients). The order, the same on all ranks (a permutation drawn from ``seed + epoch`` when
    ``shuffle``, else 0..n-1), is cut to p m indices (``drop_last``) or padded to p m by
    repeating its head (PyTorch's rule: a few samples are then seen twice an epoch); rank r
    takes positions r, r + p, r + 2p, ... Call ``set_epoch(epoch)`` before each epoch for a new
    shuffle. ``num_replicas`` and ``rank`` default to the process group's world size and rank.
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        if num_replicas is None or rank is None:
            from ..distributed import get_rank, get_world_size
            num_replicas = get_world_size() if num_replicas is None else num_replicas
            rank = get_rank() if rank is None else rank
        if int(num_replicas) < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be >= 1, got {num_replicas}")
        if not 0 <= int(rank) < int(num_replicas):
            raise ValueError(f"DistributedSampler: rank must be in [0, {int(num_replicas) - 1}], got {rank}")
        self.dataset, self.num_replicas, self.rank = dataset, int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        if drop_last and n % self.num_replicas:
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch):
        """Make the next iteration's shuffle the one of ``epoch`` (the same on every rank)."""
        self.epoch = int(epoch)

    def __iter__(self):
        n = len(self.dataset)
        order = (np.random.default_rng(self.seed + self.epoch).permutation(n) if self.shuffle
                 else np.arange(n))
        if self.total_size > n:
            order = np.resize(order, self.total_size)  # repeats the order from its head
        else:
            order = order[:self.total_size]
        return iter(order[self.rank:self.total_size:self.num_replicas].tolist())

    def __len__(self):
        return self.num_samples
