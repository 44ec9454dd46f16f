"""``minidl.accelerator``, PyTorch's device-agnostic probe: the accelerator is cuda (through
numba-cuda) when it is available, else there is none."""
from .device import Device, cuda_is_available


def is_available():
    return cuda_is_available()


def current_accelerator(check_available=False):
    """``minidl.device('cuda')`` when a cuda device is available, else None (as PyTorch,
    whose programs write ``current_accelerator() if is_available() else device('cpu')``);
    ``check_available`` is PyTorch's argument and changes nothing here."""
    return Device("cuda") if cuda_is_available() else None


def device_count():
    from . import cuda
    return cuda.device_count()
