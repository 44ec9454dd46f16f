"""Compiled kernels. They take and return arrays, never Tensors.

``kernels.cpu`` holds ``@njit`` kernels, one module per op family; ``kernels.cuda`` will
hold numba-cuda kernels with the same module names and signatures.
"""
import importlib


def for_device(device, family):
    """The kernel module of op ``family`` (e.g. "softmax_ce") for ``device`` ("cpu" or "cuda")."""
    return importlib.import_module(f"{__name__}.{device}.{family}")
