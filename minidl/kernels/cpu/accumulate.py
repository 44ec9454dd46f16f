"""Gradient sums in place, for autograd: a leaf's ``.grad += grad``, and the sum of the gradients
of a tensor used more than once.

    total[k] += grad[k]

From SHARES_FROM elements (same dtype, both C-contiguous, no overlap) over shares of the
elements on ``tasks``'s pool; else NumPy's ``+=``. NumPy adds on one thread: the bench's
max-pool step (x of (64, 32, 32, 32), whose .grad sums 8 MB each step) took 1.22-1.37 ms with it
and 0.56-0.63 ms in shares, batch norm's 1.88-2.11 -> 1.60-1.83 ms (same-process A/B). At 2^18
elements two shares measured no faster (20 us either way), at 2^20 80 -> 50 us.
"""
import numpy as np
from numba import njit

from . import tasks

SHARES_FROM = 1 << 19


def add_into(total, grad):
    """total += grad (same shape); returns total."""
    if (total.size >= SHARES_FROM and type(total) is np.ndarray and type(grad) is np.ndarray
            and total.dtype == grad.dtype and total.shape == grad.shape
            and total.flags.c_contiguous and grad.flags.c_contiguous and total.flags.writeable
            and not np.may_share_memory(total, grad)):
        tasks.run(_add_shares, total.size, total.reshape(-1), grad.reshape(-1))
    else:
        total += grad
    return total


@njit(cache=True, nogil=True)
def _add_shares(share, first, last, total, grad):
    part = total[first:last]
    part += grad[first:last]  # slices: LLVM vectorises this, not an indexed loop over first..last
