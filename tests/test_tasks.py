"""minidl.kernels.cpu.tasks: shares of a kernel's tasks run concurrently, each task once."""
import os
import signal

import numpy as np
import pytest
from numba import njit

from minidl.kernels.cpu import tasks


@njit(nogil=True)
def _mark(share, first, last, owner, calls):
    for task in range(first, last):
        owner[task] = share
        calls[task] += 1


@pytest.mark.parametrize("n_tasks", [1, 2, 5, 64])
def test_every_task_runs_once_in_contiguous_shares(n_tasks):
    owner, calls = np.full(n_tasks, -1), np.zeros(n_tasks, dtype=np.int64)
    tasks.run(_mark, n_tasks, owner, calls)
    assert (calls == 1).all()
    assert (np.diff(owner) >= 0).all() and owner[0] == 0  # share k holds one contiguous run
    assert owner[-1] == tasks.shares(n_tasks) - 1


@pytest.mark.parametrize("work, split", [(tasks.PARALLEL_MIN_WORK - 1, False), (tasks.PARALLEL_MIN_WORK, True)])
def test_light_work_runs_in_one_share_on_the_calling_thread(work, split):
    owner, calls = np.full(64, -1), np.zeros(64, dtype=np.int64)
    tasks.run(_mark, 64, owner, calls, work=work)
    assert (calls == 1).all()
    assert owner[-1] == (tasks.shares(64) - 1 if split else 0)


def test_shares_follow_the_numba_thread_count():
    import numba
    assert tasks.shares(1) == 1
    assert tasks.shares(10 ** 6) == numba.get_num_threads()
    with_one = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert tasks.shares(100) == 1
    finally:
        numba.set_num_threads(with_one)


def test_shares_of_a_given_size_are_taken_in_turn():
    """per_share: ceil(n / per_share) contiguous shares, whatever the thread count (one thread:
    one share), each task run once."""
    import numba
    owner, calls = np.full(100, -1), np.zeros(100, dtype=np.int64)
    tasks.run(_mark, 100, owner, calls, per_share=8)
    assert (calls == 1).all() and (np.diff(owner) >= 0).all()
    expected = 1 if numba.get_num_threads() == 1 else 13
    assert tasks.shares(100, per_share=8) == expected and owner[-1] == expected - 1
    assert tasks.shares(5, per_share=8) == 1


def _fail(share, first, last):
    if share == tasks.shares(8) - 1:
        raise ValueError(f"share {share} failed")


def test_an_error_in_any_share_reaches_the_caller():
    with pytest.raises(ValueError, match="failed"):
        tasks.run(_fail, 8)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
def test_a_forked_child_runs_tasks_on_a_pool_of_its_own():
    owner, calls = np.full(8, -1), np.zeros(8, dtype=np.int64)
    tasks.run(_mark, 8, owner, calls)  # the parent's pool exists before the fork
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        signal.alarm(60)  # a child waiting on the parent's vanished threads dies instead of hanging
        try:
            child_calls = np.zeros(8, dtype=np.int64)
            tasks.run(_mark, 8, np.full(8, -1), child_calls)
            os._exit(0 if (child_calls == 1).all() else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


@pytest.mark.parametrize("n_tasks", [3, 64])
def test_balanced_runs_take_more_contiguous_shares(n_tasks):
    import numba
    owner, calls = np.full(n_tasks, -1), np.zeros(n_tasks, dtype=np.int64)
    tasks.run(_mark, n_tasks, owner, calls, balance=True)
    count = tasks.shares(n_tasks, balance=True)
    assert count == min(n_tasks, numba.get_num_threads() * tasks.SHARES_PER_THREAD) or numba.get_num_threads() == 1
    assert (calls == 1).all()
    assert (np.diff(owner) >= 0).all() and owner[0] == 0 and owner[-1] == count - 1
    assert len(np.unique(owner)) == count


def test_a_slow_thread_leaves_its_later_shares_to_the_others():
    """Whichever thread is free takes the next share: the one held up on share 0 takes no other."""
    import threading
    import time
    import numba
    if numba.get_num_threads() < 2:
        pytest.skip("one thread")
    runner = {}

    def kernel(share, first, last):
        if share == 0:
            time.sleep(0.5)
        runner[share] = threading.get_ident()

    tasks.run(kernel, 64, balance=True)
    assert sorted(runner) == list(range(tasks.shares(64, balance=True)))
    assert [share for share, ident in runner.items() if ident == runner[0]] == [0]


def _on_two_threads_or_skip():
    import numba
    if numba.get_num_threads() < 2:
        pytest.skip("one thread")


def test_a_pool_thread_asleep_after_a_long_pause_is_woken_for_the_next_run():
    """Past SPIN_SECONDS the pool's threads sleep; the next run must still reach one of them:
    while the caller's thread is held up on its share, another thread takes the other."""
    import threading
    import time
    _on_two_threads_or_skip()
    tasks.run(_mark, 8, np.full(8, -1), np.zeros(8, dtype=np.int64))
    time.sleep(50 * tasks.SPIN_SECONDS)
    caller, runner = threading.get_ident(), {}

    def kernel(share, first, last):
        runner[share] = threading.get_ident()
        if runner[share] == caller:
            time.sleep(0.3)

    tasks.run(kernel, 2)
    assert sorted(runner) == [0, 1] and len(set(runner.values())) == 2


def test_an_error_on_a_pool_thread_reaches_the_caller_and_the_pool_still_runs():
    import threading
    import time
    _on_two_threads_or_skip()
    caller = threading.get_ident()

    def kernel(share, first, last):
        if threading.get_ident() != caller:
            raise ValueError(f"share {share} failed on a pool thread")
        time.sleep(0.3)  # the caller holds on to its first share: the pool thread takes the other

    with pytest.raises(ValueError, match="on a pool thread"):
        tasks.run(kernel, 2)
    owner, calls = np.full(64, -1), np.zeros(64, dtype=np.int64)
    tasks.run(_mark, 64, owner, calls)
    assert (calls == 1).all()


def test_runs_from_two_threads_at_once_each_run_every_task_once():
    """A second caller while the pool is busy runs its shares on its own thread."""
    import threading
    results, errors = {}, []

    def caller(name):
        try:
            for _ in range(200):
                owner, calls = np.full(64, -1), np.zeros(64, dtype=np.int64)
                tasks.run(_mark, 64, owner, calls, balance=True)
                assert (calls == 1).all() and (np.diff(owner) >= 0).all()
            results[name] = True
        except BaseException as error:  # noqa: B902  (reported below)
            errors.append(error)

    threads = [threading.Thread(target=caller, args=(name,)) for name in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and results == {"a": True, "b": True}
