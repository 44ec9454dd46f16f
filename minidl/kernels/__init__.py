"""Compiled kernels. They take and return arrays, never Tensors.

``kernels.cpu`` holds ``@njit`` kernels, one module per op family; ``kernels.cuda`` holds
numba-cuda kernels with the same module names and signatures.
"""
import importlib

_modules = {}  # (device, family) -> module: import_module costs ~4 us a call, the lookup ~0.1 us


def for_device(device, family):
    """The kernel module of op ``family`` (e.g. "softmax_ce") for ``device`` ("cpu" or "cuda")."""
    module = _modules.get((device, family))
    if module is None:
        module = _modules[device, family] = _imported(device, family)
    return module


def _imported(device, family):
    name = f"{__name__}.{device}.{family}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name:
            raise
        raise NotImplementedError(f"the {device} device has no {family!r} kernels yet; run this "
                                  "layer on another device (e.g. .to('cpu'))") from None
