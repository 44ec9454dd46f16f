"""Numba CPU kernels: ``@njit(cache=True)``, C-contiguous arrays in, parallel over outputs.

Waking Numba's thread pool costs about 0.1 ms a call (0.1-0.25 ms between other kernels, 2
cores), more than a small kernel's whole work (a 64 x 10 cross-entropy, the update of a bias,
a ReLU over 300,000 floats: 25 us serial). ``size_dispatched`` compiles a kernel twice, serial
and parallel, and sends each call to the one that pays for its size. Both builds use NumPy's
error model (a division by zero gives inf or NaN, as in the parallel build, which Numba always
compiles that way): Python's ZeroDivisionError check keeps LLVM from vectorising a loop that
divides, and made the serial Adam update 4-5x slower than it needs to be.
"""
from numba import njit, prange

from . import kernel_cache  # first: every kernel defined after it is cached under its stamp

PARALLEL_MIN_WORK = 1 << 18  # elements of the first argument (Adam: 0.30 ms serial, 0.25 parallel)


class SizeDispatched:
    """A kernel compiled serially (outer loop ``range``) and in parallel (``prange``)."""

    def __init__(self, build, parallel_from=None):
        self.parallel_from = PARALLEL_MIN_WORK if parallel_from is None else parallel_from
        # The loop function is a closure cell, so the two compiled versions also get
        # different entries in Numba's on-disk cache (its key hashes closure contents).
        self.serial = njit(cache=True, error_model="numpy")(build(range))
        self.parallel = njit(cache=True, parallel=True)(build(prange))
        self.__doc__, self.__name__ = build.__doc__, build.__name__

    def __call__(self, *args):
        kernel = self.parallel if args[0].size >= self.parallel_from else self.serial
        return kernel(*args)


def size_dispatched(build=None, parallel_from=None):
    """Decorator for ``def name(loop): def kernel(...): for i in loop(n): ...; return kernel``;
    ``@size_dispatched(parallel_from=n)`` sets the kernel's own threshold (elements)."""
    if build is None:
        return lambda build: SizeDispatched(build, parallel_from)
    return SizeDispatched(build, parallel_from)
