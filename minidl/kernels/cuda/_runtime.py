"""Lazy ``numba.cuda``, launch configurations and a cache of kernels built from closures."""
import functools
import math

_cuda = None


def cuda():
    """``numba.cuda``, imported on first use only."""
    global _cuda
    if _cuda is None:
        from numba import cuda as module
        _cuda = module
    return _cuda


@functools.lru_cache(maxsize=None)
def simulating():
    """True under ``NUMBA_ENABLE_CUDASIM=1`` (numba's CUDA simulator: one Python thread per
    CUDA thread, so launches use few threads and tiles are small there)."""
    from numba import config
    return bool(config.ENABLE_CUDASIM)


def threads_per_block():
    return 8 if simulating() else 256


def max_blocks():
    return 2 if simulating() else 8192


def reduction_chunk():
    """Items one thread reduces before a reduction is split into partial results."""
    return 4 if simulating() else 2048


def many_outputs():
    """Reductions with at least this many outputs already keep the GPU busy: one thread each."""
    return 16 if simulating() else 4096


def tile():
    """Edge of the shared-memory matmul tile (blocks are tile x tile threads)."""
    return 4 if simulating() else 16


def grid_1d(n):
    """(blocks, threads) for a grid-stride loop over n items: every kernel is correct for any
    grid, so the simulator runs a couple of small blocks and a GPU enough blocks to fill it."""
    threads = threads_per_block()
    return max(1, min(math.ceil(n / threads), max_blocks())), threads


def kernel_builder(build):
    """Cache ``build(*hashable_args)`` (which defines a kernel) per argument tuple.

    Kernels name ``cuda`` as a global of their module (set to None there until first use):
    the builder binds it to ``numba.cuda`` before building, so importing a kernel module does
    not import numba.cuda, and the simulator can swap that global for its per-thread module.
    """
    cached = functools.lru_cache(maxsize=None)(build)

    @functools.wraps(build)
    def builder(*args):
        if build.__globals__.get("cuda") is None:
            build.__globals__["cuda"] = cuda()
        return cached(*args)
    return builder


def padded(shape, *strides):
    """Shape and stride tuples with at least one axis (0-d arrays become shape (1,), stride 0),
    as numba kernels take them as homogeneous tuples of int64."""
    if not shape:
        return ((1,),) + tuple((0,) for _ in strides)
    return (tuple(int(n) for n in shape),) + tuple(tuple(int(s) for s in st) for st in strides)
