"""minidl.kernels.cpu.spin: atomic counters and bounded spin waits for the task pool."""
import threading
import time

import numpy as np

from minidl.kernels.cpu import spin


def test_add_returns_the_old_value_and_adds_atomically_from_several_threads():
    counters = np.zeros(8, dtype=np.int64)
    assert spin.add(counters, 3, 5) == 0 and spin.add(counters, 3, -2) == 5 and counters[3] == 3

    def adder():
        for _ in range(20_000):
            spin.add(counters, 0, 1)

    threads = [threading.Thread(target=adder) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counters[0] == 80_000


def test_waits_give_up_after_their_spins_and_return_what_they_read():
    counters = np.array([7, 2, 0], dtype=np.int64)
    assert spin.wait_above(counters, 0, 7, 100) == 7
    assert spin.wait_above(counters, 0, 6, 100) == 7
    assert spin.post_then_hold(counters, 2, 1, 100, 10) == 2 and counters[2] == 1  # places left: 2
    counters[1] = 0
    assert spin.post_then_hold(counters, 2, 1, 10 ** 9, 0) == 0  # no place left: returns at once


def test_withdraw_takes_the_places_left_once():
    counters = np.array([3], dtype=np.int64)
    assert spin.add(counters, 0, -1) == 3  # one place claimed
    assert spin.withdraw(counters, 0) == 2 and spin.withdraw(counters, 0) == 0


def test_a_spinning_wait_sees_another_threads_signal():
    counters = np.zeros(24, dtype=np.int64)
    seen = {}

    def waiter():
        seen["posted"] = spin.wait_above(counters, 0, 0, 1 << 40)

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.05)
    assert spin.add_then_wait_above(counters, 0, 1, 8, 0, 10) == 0  # signals, then gives up
    thread.join(timeout=10)
    assert seen == {"posted": 1}
