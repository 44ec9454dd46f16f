"""Compiled kernels. They take and return arrays, never Tensors.

``kernels.cpu`` holds ``@njit`` kernels, one module per op family; ``kernels.cuda`` holds
numba-cuda kernels with the same module names and signatures.
"""
import importlib


def for_device(device, family):
    """The kernel module of op ``family`` (e.g. "softmax_ce") for ``device`` ("cpu" or "cuda")."""
    name = f"{__name__}.{device}.{family}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name:
            raise
        raise NotImplementedError(f"the {device} device has no {family!r} kernels yet; run this "
                                  "layer on another device (e.g. .to('cpu'))") from None
