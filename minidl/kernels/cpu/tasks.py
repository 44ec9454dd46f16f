"""Kernels with big bodies run serially over shares of their tasks, on a pool of Python threads.

Numba compiles the body of a ``parallel=True`` loop as a gufunc and optimises every kernel it
calls once more inside it: the direct convolution's backward pass took 7.5 s to compile that
way and 2.7 s as a serial function (first call, cold cache, 2 cores). So such a kernel is a
serial ``@njit(nogil=True)`` function of a share of its tasks, ``kernel(share, first, last,
*args)`` for tasks first <= t < last, and ``run`` splits the tasks into ``shares(n_tasks)``
contiguous shares (as Numba's own scheduler does), run by the calling thread and a pool of
threads that call the kernel without the GIL. A forked child makes its own pool.

The pool's threads spin for SPIN_SECONDS after each call, waiting for the next one (``spin``):
a call then costs about 10 us on 2 cores, against 78-157 us when they slept on a queue between
calls (a sleeping core must be woken twice, to start and to report) and still 20-40 us when two
threads asked for the GIL at once (the loser sleeps too: so the caller posts a call and holds the
GIL free while the pool's threads start). That is still more than a kernel that only moves data
saves by splitting a small array: the 2x2 max pool of LeNet's (64, 16, 10, 10) took 122 us on two
threads and 67 us on one. Such kernels pass ``work`` (elements read and written) and run on the
calling thread alone below PARALLEL_MIN_WORK; compute-bound ones (the convolutions) always split.
Against the sleeping pool, same process: batch norm (64, 32, 32, 32) fwd+bwd 6-12% faster,
LayerNorm 7%, ConvTranspose2d 5%, LeNet-5 step 3%.

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
import itertools
import os
import threading
import time

import numba
import numpy as np

from . import spin

from ...blas_threads import kernel_blas_can_be_serial, serial_kernel_blas

PARALLEL_MIN_WORK = 1 << 19  # elements: about 0.2-0.3 ms of copying on one core
SHARES_PER_THREAD = 4  # with balance=True
BALANCE_MIN_WORK = 8 * PARALLEL_MIN_WORK  # elements: data-moving kernels balance from here (~2 ms)
SPIN_SECONDS = 3e-4  # the pool's threads spin this long for the next job before they sleep
SLEEP_SECONDS = 2e-5  # past SPIN_SECONDS the caller waits for the pool in sleeps this long
CLAIM_SECONDS = 1e-5  # after posting a job the caller spins up to this long for its places to be taken
HOLD_SECONDS = 2e-6  # and then this long, while the claiming threads take the GIL to start it

_pool = None
_pool_pid = None


def shares(n_tasks, work=None, balance=False, per_share=None):
    """How many shares ``run`` splits ``n_tasks`` tasks into: one per Numba thread
    (SHARES_PER_THREAD with ``balance``; shares of ``per_share`` tasks when given), at most one
    per task (the size of per-share scratch arrays such as partial sums); one when ``work``
    (elements read and written) is below PARALLEL_MIN_WORK."""
    return _share_count(numba.get_num_threads(), n_tasks, work, balance, per_share)


def _share_count(threads, n_tasks, work, balance, per_share):
    """``shares`` for ``threads`` Numba threads (read once a call: numba.get_num_threads takes ~1 us)."""
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
    threads = numba.get_num_threads()
    count = _share_count(threads, n_tasks, work, balance, per_share)
    if count == 1:  # no pool, no bounds: 0.2 us instead of 2
        kernel(0, 0, n_tasks, *args)
        return
    bounds = [share * n_tasks // count for share in range(count + 1)]
    next_share = itertools.count()  # next() is atomic: each share is taken once

    def take_shares():
        share = next(next_share)
        while share < count:
            kernel(share, bounds[share], bounds[share + 1], *args)
            share = next(next_share)

    helpers = min(count, threads) - 1
    if helpers > 0:
        _thread_pool().run(take_shares, helpers)
    else:
        take_shares()


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
        _pool = _SpinningPool(max(1, numba.config.NUMBA_NUM_THREADS - 1))
        _pool_pid = os.getpid()
    return _pool


# Slots of _SpinningPool's counters, a cache line apart: jobs posted, places left in the
# latest job, places finished.
_POSTED, _PLACES, _FINISHED = 0, 8, 16


class _SpinningPool:
    """Threads that run ``job()`` beside the caller's thread. After each job they spin (without
    the GIL, ``spin``) for SPIN_SECONDS waiting for the next one, then sleep on a condition
    until one is posted; the caller spins as long for them to finish. A job is offered to
    ``helpers`` places, taken by the first threads to claim them."""

    def __init__(self, threads):
        self.counters = np.zeros(24, dtype=np.int64)
        rate = _spins_per_second(self.counters)
        self.spins, self.claim_spins, self.hold_spins = (
            max(1, int(rate * seconds)) for seconds in (SPIN_SECONDS, CLAIM_SECONDS, HOLD_SECONDS))
        self.job, self.error = None, None
        self.running = threading.Lock()  # one job at a time; a second caller runs its job alone
        self.wake = threading.Condition()
        self.sleeping = 0
        for _ in range(threads):
            threading.Thread(target=self._serve, daemon=True, name="minidl-kernel").start()

    def run(self, job, helpers):
        """job() on this thread and on ``helpers`` of the pool's threads; returns when all have
        returned, raising the first exception a pool thread's job raised."""
        if not self.running.acquire(blocking=False):
            job()
            return
        counters = self.counters
        try:
            self.job, self.error = job, None
            finished = int(counters[_FINISHED]) + helpers
            counters[_PLACES] = helpers
            spin.post_then_hold(counters, _POSTED, _PLACES, self.claim_spins, self.hold_spins)
            if self.sleeping:
                with self.wake:
                    self.wake.notify_all()
            try:
                job()
            finally:  # places not yet claimed are withdrawn (the shares are all taken by now)
                self._wait_until_finished(finished - spin.withdraw(counters, _PLACES))
            if self.error is not None:
                raise self.error
        finally:
            self.job, self.error = None, None
            self.running.release()

    def _wait_until_finished(self, finished):
        """Until counters[_FINISHED] reaches ``finished``, even through a KeyboardInterrupt (raised
        after): the pool's threads may be writing the caller's arrays until then."""
        interrupted = None
        while spin.wait_above(self.counters, _FINISHED, finished - 1, self.spins) < finished:
            try:
                time.sleep(SLEEP_SECONDS)
            except KeyboardInterrupt as error:
                interrupted = error
        if interrupted is not None:
            raise interrupted

    def _serve(self):
        counters, seen = self.counters, 0
        posted = spin.wait_above(counters, _POSTED, seen, self.spins)
        while True:
            if posted == seen:  # nothing posted while spinning: sleep until something is
                with self.wake:
                    self.sleeping += 1
                    while counters[_POSTED] == seen:
                        self.wake.wait()
                    self.sleeping -= 1
                posted = int(counters[_POSTED])
            seen = posted
            if spin.add(counters, _PLACES, -1) <= 0:  # the job's places are taken
                posted = spin.wait_above(counters, _POSTED, seen, self.spins)
                continue
            try:
                self.job()
            except BaseException as error:  # noqa: B902  (handed to the caller, which raises it)
                self.error = self.error or error
            posted = spin.add_then_wait_above(counters, _FINISHED, 1, _POSTED, seen, self.spins)


def _spins_per_second(counters):
    """Iterations of ``spin.wait_above`` per second here (on a slot that stays 0)."""
    trial = 1 << 14
    spin.wait_above(counters, len(counters) - 1, 0, 1)  # compiled or loaded first
    start = time.perf_counter()
    spin.wait_above(counters, len(counters) - 1, 0, trial)
    return trial / max(time.perf_counter() - start, 1e-9)
