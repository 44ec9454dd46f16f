"""Spin waits on shared counters, for ``tasks``'s pool: nogil Numba functions over an int64
array whose slots the threads read with acquire loads and change with atomic adds.

A thread that sleeps on a lock or a condition variable takes 15-100 us to wake on this kind of
virtual machine (its core halts and must be interrupted), and a Python thread that asks for
the GIL while another holds it sleeps that way too. So the pool's threads wait for work, and
the calling thread for the pool's threads, by spinning without the GIL for a bounded number of
iterations (``pause`` between loads on x86), and every signal that another thread may be
spinning on is sent from inside these functions, after the GIL has been released.
"""
import platform

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


def _slot_pointer(context, builder, array_type, array, index):
    return builder.gep(context.make_array(array_type)(context, builder, array).data, [index])


@intrinsic
def load_acquire(typingctx, counters, index):
    """counters[index], read with an acquire load (seen by a spinning loop, not hoisted)."""
    def codegen(context, builder, signature, args):
        return builder.load_atomic(_slot_pointer(context, builder, signature.args[0], *args), "acquire", 8)
    return types.int64(counters, index), codegen


@intrinsic
def fetch_add(typingctx, counters, index, value):
    """counters[index] += value atomically (acquire-release): returns the old value."""
    def codegen(context, builder, signature, args):
        pointer = _slot_pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.atomic_rmw("add", pointer, args[2], "acq_rel")
    return types.int64(counters, index, value), codegen


@intrinsic
def pause(typingctx):
    """x86's spin-wait hint (frees the core's shared resources for its sibling); nothing elsewhere."""
    def codegen(context, builder, signature, args):
        if _X86:
            hint = builder.module.declare_intrinsic("llvm.x86.sse2.pause",
                                                    fnty=ir.FunctionType(ir.VoidType(), []))
            builder.call(hint, [])
        return context.get_dummy_value()
    return types.none(), codegen


@njit(cache=True, nogil=True)
def add_then_wait(counters, add_index, value, wait_index, sign, floor, spins, hold):
    """counters[add_index] += value atomically, then spin until sign * counters[wait_index] >
    floor or ``spins`` loads have passed, then ``hold`` pauses more, all without the GIL:
    (the old counters[add_index], the last counters[wait_index] read). The one compiled
    function behind the waits below (each compiled function costs ~0.1 s on a cold cache)."""
    old = fetch_add(counters, add_index, value)
    for _ in range(spins):
        if sign * load_acquire(counters, wait_index) > floor:
            break
        pause()
    for _ in range(hold):
        pause()
    return old, load_acquire(counters, wait_index)


# The pool's counters only grow, except a job's count of places left, which claims decrement.

def add(counters, index, value):
    """counters[index] += value atomically: the old value."""
    return add_then_wait(counters, index, value, index, 1, 0, 0, 0)[0]


def wait_above(counters, index, floor, spins):
    """Spin until counters[index] > floor or ``spins`` loads have passed: the last value read."""
    return add_then_wait(counters, index, 0, index, 1, floor, spins, 0)[1]


def add_then_wait_above(counters, add_index, value, wait_index, floor, spins):
    """counters[add_index] += value, then ``wait_above(counters, wait_index, floor, spins)``: a
    signal sent without the GIL by a thread that goes on to spin for the next one."""
    return add_then_wait(counters, add_index, value, wait_index, 1, floor, spins, 0)[1]


def post_then_hold(counters, post_index, places_index, spins, hold):
    """counters[post_index] += 1, then spin until counters[places_index] <= 0 (every place
    claimed) or ``spins`` loads, then ``hold`` pauses more: the GIL stays free meanwhile, for
    the claiming threads to start their jobs without waiting for it. The places left."""
    return add_then_wait(counters, post_index, 1, places_index, -1, -1, spins, hold)[1]


def withdraw(counters, index):
    """Take every place still left in counters[index] (decrements that find it > 0, as a claim
    does): how many were taken. Each place is claimed or withdrawn once."""
    taken = 0
    while add(counters, index, -1) > 0:
        taken += 1
    return taken
