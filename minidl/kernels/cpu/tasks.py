"""Kernels with big bodies run serially over shares of their tasks, on a pool of Python threads.

Numba compiles the body of a ``parallel=True`` loop as a gufunc and optimises every kernel it
calls once more inside it: the direct convolution's backward pass took 7.5 s to compile that
way and 2.7 s as a serial function (first call, cold cache, 2 cores). So such a kernel is a
serial ``@njit(nogil=True)`` function of a share of its tasks, ``kernel(share, first, last,
*args)`` for tasks first <= t < last, and ``run`` splits the tasks into ``shares(n_tasks)``
contiguous shares (as Numba's own scheduler does), runs the first on the calling thread and
the others on a pool of threads that call the kernel without the GIL. A forked child makes
its own pool.

Waking the pool costs 70-140 us a call on 2 cores (the other core is asleep and must be woken
twice, to start and to report), which is more than a kernel that only moves data saves by
splitting: the 2x2 max pool of LeNet's (64, 16, 10, 10) took 122 us on two threads and 67 us on
one. Such kernels pass ``work`` (elements read and written) and run on the calling thread alone
below PARALLEL_MIN_WORK; compute-bound ones (the convolutions) always split.
"""
import concurrent.futures
import os

import numba

PARALLEL_MIN_WORK = 1 << 19  # elements: about 0.2-0.3 ms of copying on one core

_pool = None
_pool_pid = None


def shares(n_tasks, work=None):
    """How many shares ``run`` splits ``n_tasks`` tasks into: one per Numba thread, at most one
    per task (the size of per-share scratch arrays such as partial sums); one when ``work``
    (elements read and written) is below PARALLEL_MIN_WORK."""
    if work is not None and work < PARALLEL_MIN_WORK:
        return 1
    return max(1, min(numba.get_num_threads(), n_tasks))


def run(kernel, n_tasks, *args, work=None):
    """kernel(share, first, last, *args) for every share of range(n_tasks), concurrently; in one
    share on this thread when ``work`` (elements read and written) is below PARALLEL_MIN_WORK."""
    count = shares(n_tasks, work)
    bounds = [share * n_tasks // count for share in range(count + 1)]
    futures = [_thread_pool().submit(kernel, share, bounds[share], bounds[share + 1], *args)
               for share in range(1, count)]
    try:
        kernel(0, bounds[0], bounds[1], *args)
    finally:
        for future in futures:
            future.result()


def _thread_pool():
    global _pool, _pool_pid
    if _pool_pid != os.getpid():  # first use, or a forked child (the parent's threads are gone)
        _pool = concurrent.futures.ThreadPoolExecutor(max(1, numba.config.NUMBA_NUM_THREADS - 1),
                                                      thread_name_prefix="minidl-kernel")
        _pool_pid = os.getpid()
    return _pool
