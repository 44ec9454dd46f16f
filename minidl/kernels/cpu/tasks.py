"""Kernels with big bodies run serially over shares of their tasks, on a pool of Python threads.

Numba compiles the body of a ``parallel=True`` loop as a gufunc and optimises every kernel it
calls once more inside it: the direct convolution's backward pass took 7.5 s to compile that
way and 2.7 s as a serial function (first call, cold cache, 2 cores). So such a kernel is a
serial ``@njit(nogil=True)`` function of a share of its tasks, ``kernel(share, first, last,
*args)`` for tasks first <= t < last, and ``run`` splits the tasks into ``shares(n_tasks)``
contiguous shares (as Numba's own scheduler does), run by the calling thread and a pool of
threads that call the kernel without the GIL. A forked child makes its own pool.

Waking the pool costs 70-140 us a call on 2 cores (the other core is asleep and must be woken
twice, to start and to report), which is more than a kernel that only moves data saves by
splitting: the 2x2 max pool of LeNet's (64, 16, 10, 10) took 122 us on two threads and 67 us on
one. Such kernels pass ``work`` (elements read and written) and run on the calling thread alone
below PARALLEL_MIN_WORK; compute-bound ones (the convolutions) always split.

The threads take the shares in turn, whichever thread is free taking the next one. With one
share per thread that changes nothing; a long kernel passes ``balance=True`` and is cut into
SHARES_PER_THREAD shares per thread, so that a thread slowed by another process on its core
(or by PyTorch's OpenMP workers, which spin for milliseconds after each of its ops) leaves
its later shares to the others instead of holding up the call: the bench's conv2d,
interleaved with PyTorch, measured 23.5 ms a call in two shares and 17.7-19.6 ms in eight (16.5
ms when PyTorch's workers are left to fall asleep first); alone, 13.8 and 13.9 ms. A share's tasks are
the same whichever thread runs it, so per-share partial sums (indexed by ``share``) are added
up in the same order every time: results do not depend on the timing.
"""
import concurrent.futures
import itertools
import os

import numba

from ...blas_threads import kernel_blas_can_be_serial, serial_kernel_blas

PARALLEL_MIN_WORK = 1 << 19  # elements: about 0.2-0.3 ms of copying on one core
SHARES_PER_THREAD = 4  # with balance=True
BALANCE_MIN_WORK = 8 * PARALLEL_MIN_WORK  # elements: data-moving kernels balance from here (~2 ms)

_pool = None
_pool_pid = None


def shares(n_tasks, work=None, balance=False, per_share=None):
    """How many shares ``run`` splits ``n_tasks`` tasks into: one per Numba thread
    (SHARES_PER_THREAD with ``balance``; shares of ``per_share`` tasks when given), at most one
    per task (the size of per-share scratch arrays such as partial sums); one when ``work``
    (elements read and written) is below PARALLEL_MIN_WORK."""
    threads = numba.get_num_threads()
    if (work is not None and work < PARALLEL_MIN_WORK) or threads == 1:
        return 1
    if per_share is not None:
        return max(1, -(-n_tasks // per_share))
    return max(1, min(threads * (SHARES_PER_THREAD if balance else 1), n_tasks))


def run(kernel, n_tasks, *args, work=None, balance=False, per_share=None):
    """kernel(share, first, last, *args) for every share of range(n_tasks) (contiguous tasks,
    ``shares(n_tasks, work, balance, per_share)`` of them), concurrently: this thread and the
    pool's take the shares in turn. In one share on this thread when ``work`` (elements read
    and written) is below PARALLEL_MIN_WORK."""
    count = shares(n_tasks, work, balance, per_share)
    bounds = [share * n_tasks // count for share in range(count + 1)]
    next_share = itertools.count()  # next() is atomic: each share is taken once

    def take_shares():
        share = next(next_share)
        while share < count:
            kernel(share, bounds[share], bounds[share + 1], *args)
            share = next(next_share)

    helpers = min(count, numba.get_num_threads()) - 1
    futures = [_thread_pool().submit(take_shares) for _ in range(helpers)]
    try:
        take_shares()
    finally:
        for future in futures:
            future.result()


def shares_calling_blas(n_tasks, balance=False):
    """How many shares ``run_calling_blas`` splits ``n_tasks`` tasks into."""
    return shares(n_tasks, balance=balance) if kernel_blas_can_be_serial() else 1


def run_calling_blas(kernel, n_tasks, *args, work=None, balance=False, per_share=None):
    """``run`` for kernels that call BLAS themselves (np.dot compiled by Numba): the shares run
    concurrently on a single-threaded BLAS (``blas_threads.serial_kernel_blas``), or, when the
    kernels' BLAS cannot be made single-threaded, in one share on this thread."""
    with serial_kernel_blas() as serial:
        if serial:
            run(kernel, n_tasks, *args, work=work, balance=balance, per_share=per_share)
        else:
            kernel(0, 0, n_tasks, *args)


def _thread_pool():
    global _pool, _pool_pid
    if _pool_pid != os.getpid():  # first use, or a forked child (the parent's threads are gone)
        _pool = concurrent.futures.ThreadPoolExecutor(max(1, numba.config.NUMBA_NUM_THREADS - 1),
                                                      thread_name_prefix="minidl-kernel")
        _pool_pid = os.getpid()
    return _pool
