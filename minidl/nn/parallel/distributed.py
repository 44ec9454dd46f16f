"""DistributedDataParallel: one replica of the model per rank, gradients averaged over ranks.

Each of p ranks runs forward and backward on its own share of the batch (B / p samples with
``DistributedSampler``); before the optimizer steps, every gradient is replaced by its mean over
the ranks, g = (1/p) sum_r g_r, so that every replica takes the same step and the replicas stay
equal. With a loss that is a mean over the samples this is the gradient of the loss over the
whole batch of B samples: one process with batch B and p processes with B / p each train alike.

Communication overlaps computation as in PyTorch's DDP: the parameters are packed, in the
reverse of their registration order (roughly the order in which backward produces their
gradients), into buckets of at most ``bucket_cap_mb``; when backward has finished a bucket's
last gradient (a post-accumulate-grad hook on each parameter), the bucket's non-blocking
``Iallreduce`` starts while backward goes on with the earlier layers. Buckets start in index
order on every rank (MPI requires the same order of collectives everywhere). The hook of the
last parameter waits for all buckets and writes the means into ``.grad``, so once
``loss.backward()`` returns the gradients are averaged and ``optimizer.step()`` can follow.
"""
import contextlib

import numpy as np

from ...distributed.process_group import communicator
from ...function import is_grad_enabled, no_grad
from ..module import Module


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training over the initialised process group.

    At wrap: checks that every rank holds the same parameter and buffer names, shapes and dtypes
    (an error naming the first difference on every rank) and copies rank 0's parameters and
    buffers to all ranks. ``broadcast_buffers``: also copy rank 0's buffers (BatchNorm running
    statistics) before every training forward, as PyTorch. Every parameter that requires grad
    must take part in every loss (PyTorch's ``find_unused_parameters=False``); a backward that
    leaves one without a gradient is reported by the next forward. ``state_dict()`` keys carry
    the ``module.`` prefix as PyTorch's; ``model.module.state_dict()`` gives the plain keys.
    Parameters live on the cpu (MPI reads numpy arrays).
    """

    def __init__(self, module, bucket_cap_mb=25, broadcast_buffers=True):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected a Module, got {type(module).__name__}")
        if bucket_cap_mb <= 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        comm = communicator("DistributedDataParallel")
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            if not isinstance(tensor.array, np.ndarray):
                raise RuntimeError(f"DistributedDataParallel: '{name}' is on {tensor.device}; MPI "
                                   "communicates cpu arrays only, move the model with .to('cpu')")
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self.require_backward_grad_sync = True
        self._comm = comm
        _check_same_model(comm, module)
        with no_grad():
            for tensor in list(module.parameters()) + list(module.buffers()):
                comm.Bcast(tensor.array, root=0)
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self._reducer = _Reducer(comm, named, int(bucket_cap_mb * 2 ** 20))

    def forward(self, *args, **kwargs):
        self._reducer.start_iteration(armed=self.require_backward_grad_sync and is_grad_enabled()
                                      and self.training)
        if self.broadcast_buffers and self.training:
            with no_grad():
                for buffer in self.module.buffers():
                    self._comm.Bcast(buffer.array, root=0)
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        """Inside, forwards' backwards only accumulate local gradients (no communication); the
        first backward after it averages the accumulated sums. Gradient accumulation over k
        micro-batches: k - 1 of them under ``no_sync()``, the last outside."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def extra_repr(self):
        return f"world_size={self._comm.Get_size()}, buckets={len(self._reducer.buckets)}"


def _check_same_model(comm, module):
    """Gather every rank's (name, shape, dtype) of parameters and buffers; when they differ,
    raise on every rank the same error naming the first difference (no rank goes on to a
    collective that the others never join)."""
    def signature(kind, named):
        return [(kind, name, tuple(t.shape), str(t.dtype)) for name, t in named]

    mine = signature("parameter", module.named_parameters()) + signature("buffer", module.named_buffers())
    everyone = comm.allgather(mine)
    reference = everyone[0]
    for rank, theirs in enumerate(everyone[1:], start=1):
        for position in range(max(len(reference), len(theirs))):
            ours = reference[position] if position < len(reference) else None
            other = theirs[position] if position < len(theirs) else None
            if ours != other:
                raise RuntimeError(
                    "DistributedDataParallel: the ranks hold different models; at entry "
                    f"{position} rank 0 has {_describe(ours)} but rank {rank} has "
                    f"{_describe(other)}")


def _describe(entry):
    if entry is None:
        return "nothing"
    kind, name, shape, dtype = entry
    return f"{kind} '{name}' of shape {shape} ({dtype})"


class _Bucket:
    """Parameters whose gradients travel in one flat array (one dtype)."""

    def __init__(self, params):
        self.params = params
        self.offsets = np.cumsum([0] + [p.array.size for p in params])
        self.flat = np.empty(self.offsets[-1], dtype=params[0].dtype)

    def view(self, index):
        return self.flat[self.offsets[index]:self.offsets[index + 1]]


class _Reducer:
    """The buckets and the progress of the current backward through them."""

    def __init__(self, comm, named_params, cap_bytes):
        self.comm = comm
        self.buckets = _plan_buckets([p for _, p in named_params[::-1]], cap_bytes)
        self.place = {id(p): (b, i) for b, bucket in enumerate(self.buckets)
                      for i, p in enumerate(bucket.params)}
        self.names = {id(p): name for name, p in named_params}
        self.armed = False
        self._reset()
        for _, param in named_params:
            param.register_post_accumulate_grad_hook(self._gradient_ready)

    def _reset(self):
        self.missing = [len(bucket.params) for bucket in self.buckets]
        self.ready = set()
        self.next_bucket = 0
        self.requests = []

    def start_iteration(self, armed):
        """Called by each forward: the previous synchronised backward must have completed."""
        if self.ready:
            lacking = [self.names[id(p)] for bucket in self.buckets for p in bucket.params
                       if id(p) not in self.ready]
            raise RuntimeError(
                "DistributedDataParallel: the previous backward gave no gradient to "
                f"{len(lacking)} parameter(s) ({', '.join(lacking[:5])}), so their averages were "
                "never taken; every parameter that requires grad must take part in the loss "
                "(freeze unused ones with requires_grad_(False) before wrapping)")
        self.armed = armed

    def _gradient_ready(self, param):
        if not self.armed:
            return
        if id(param) in self.ready:
            raise RuntimeError(
                f"DistributedDataParallel: parameter '{self.names[id(param)]}' received a "
                "second gradient before the first was averaged "
                "(two backwards from one forward); accumulate with no_sync() instead")
        b, i = self.place[id(param)]
        bucket = self.buckets[b]
        np.copyto(bucket.view(i), param.grad.array.reshape(-1))
        self.ready.add(id(param))
        self.missing[b] -= 1
        from mpi4py import MPI
        while self.next_bucket < len(self.buckets) and self.missing[self.next_bucket] == 0:
            flat = self.buckets[self.next_bucket].flat
            self.requests.append(self.comm.Iallreduce(MPI.IN_PLACE, flat, op=MPI.SUM))
            self.next_bucket += 1
        if self.next_bucket < len(self.buckets):
            MPI.Request.Testall(self.requests)  # lets MPI progress the started reductions
            return
        MPI.Request.Waitall(self.requests)
        scale = 1.0 / self.comm.Get_size()
        for bucket in self.buckets:
            for i, p in enumerate(bucket.params):
                np.multiply(bucket.view(i).reshape(p.grad.shape), scale, out=p.grad.array)
        self._reset()
        self.armed = False


def _plan_buckets(params, cap_bytes):
    """Consecutive parameters packed into buckets of at most ``cap_bytes`` (a larger parameter
    gets a bucket of its own), a new bucket where the dtype changes."""
    buckets, current, size = [], [], 0
    for param in params:
        if current and (size + param.array.nbytes > cap_bytes or param.dtype != current[0].dtype):
            buckets.append(_Bucket(current))
            current, size = [], 0
        current.append(param)
        size += param.array.nbytes
    if current:
        buckets.append(_Bucket(current))
    return buckets
