"""Keep freed memory for reuse: training allocates and frees the same large arrays every step.

glibc's malloc maps each block above its threshold (128 KB, rising as blocks are freed) fresh
from the kernel and unmaps it when freed, so every step touches new pages: a FashionCNN step
at batch 256 spent a quarter of its time in page faults, in whichever kernel first wrote its
output. ``keep_freed_memory()`` raises the threshold to glibc's maximum (32 MB) and keeps up to
1 GB of freed heap before giving it back. The cost: the process's resident memory stays near
its peak. ``import minidl`` calls it on Linux with glibc unless ``MINIDL_KEEP_FREED_MEMORY=0``
or the user tunes malloc through ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``.
"""
import ctypes
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 2 ** 20
TRIM_THRESHOLD = 2 ** 30


def keep_freed_memory():
    """Returns True when glibc accepted both settings."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl, Windows)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def wanted():
    user_tuned = any(name in os.environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"))
    return (sys.platform.startswith("linux") and not user_tuned
            and os.environ.get("MINIDL_KEEP_FREED_MEMORY", "1") != "0")
