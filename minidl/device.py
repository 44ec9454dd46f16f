"""Devices: where a tensor's array lives.

``cpu`` holds numpy arrays; ``meta`` holds MetaArrays (shape and dtype, no data); ``cuda`` holds
CudaArrays, strided views of numba-cuda device buffers (``minidl.kernels.cuda.array``; numba.cuda
is imported only when a cuda array is made, so ``import minidl`` works with no GPU and no CUDA
toolkit). Every Function receives its device through its context and picks that device's
kernels, so no layer changes when a device is added.

``with minidl.device("meta"):`` makes a device the default for new tensors and parameters.
"""
import threading

import numpy as np

from .kernels.cuda.array import CudaArray, as_cuda
from .meta import MetaArray

KNOWN_DEVICES = ("cpu", "cuda", "meta")
_defaults = threading.local()


class Device:
    """A device name, compared equal to its string: ``Device("cpu") == "cpu"``."""

    __slots__ = ("type",)

    def __init__(self, spec="cpu"):
        if isinstance(spec, Device):
            spec = spec.type
        if not isinstance(spec, str):
            raise TypeError(f"device must be a string such as 'cpu' or 'cuda', got {spec!r}")
        name = spec.split(":", 1)[0].strip().lower()
        if name not in KNOWN_DEVICES:
            raise ValueError(f"unknown device {spec!r}; expected one of {', '.join(KNOWN_DEVICES)}")
        self.type = name

    def __eq__(self, other):
        if type(other) is Device:
            return self.type == other.type
        if type(other) is str and other in KNOWN_DEVICES:  # the common case, without parsing
            return other == self.type
        if isinstance(other, (Device, str)):
            try:
                return self.type == Device(other).type
            except (TypeError, ValueError):
                return False
        return NotImplemented

    def __hash__(self):
        return hash(self.type)

    def __str__(self):
        return self.type

    def __repr__(self):
        return f"device(type='{self.type}')"

    def __enter__(self):
        stack = _defaults.__dict__.setdefault("stack", [])
        stack.append(self)
        return self

    def __exit__(self, *exc):
        _defaults.stack.pop()
        return False


_CPU = Device("cpu")


def default_device():
    """The innermost ``with minidl.device(...)`` device, else cpu."""
    stack = getattr(_defaults, "stack", None)
    return stack[-1] if stack else _CPU


def to_device(array, device):
    """``array`` placed on ``device`` (the same object when it is already there)."""
    device = Device(device)
    if device == "meta":
        return array if isinstance(array, MetaArray) else MetaArray.like(array)
    if isinstance(array, MetaArray):
        raise RuntimeError(f"cannot move a meta tensor of shape {array.shape} to {device}: it has "
                           "no data. Build or load the model on that device instead")
    if device == "cpu":
        if isinstance(array, CudaArray):
            return array.to_host()
        return array if isinstance(array, np.ndarray) else np.asarray(array)
    if not isinstance(array, CudaArray):
        require_cuda()
    return as_cuda(array)


def to_host(array):
    """A numpy array of ``array``'s data (copied back from the GPU when it is a cuda array)."""
    return to_device(array, "cpu")


def like(array):
    """The ``like=`` argument that makes a numpy creation function (``np.zeros(shape, like=...)``)
    allocate beside ``array``: the array itself when it lives on the GPU, else None (plain numpy,
    so cpu code keeps its exact behaviour)."""
    return array if isinstance(array, CudaArray) else None


def device(spec="cpu"):
    """``minidl.device("cuda")``: a Device, checked to be usable."""
    dev = Device(spec)
    if dev.type == "cuda":
        require_cuda()
    return dev


_cuda_available = False


def cuda_is_available():
    """True when numba-cuda is installed and sees a GPU (or runs the CUDA simulator)."""
    global _cuda_available
    if _cuda_available:
        return True
    try:
        from numba import cuda
    except ImportError:
        return False
    try:
        _cuda_available = bool(cuda.is_available())
        return _cuda_available
    except Exception:  # a broken driver must read as "not available", never crash
        return False


def require_cuda():
    if not cuda_is_available():
        raise RuntimeError(
            "CUDA is not available: minidl needs numba-cuda (pip install 'minidl[cuda]') and an "
            "NVIDIA GPU with its driver, or NUMBA_ENABLE_CUDASIM=1 for the simulator")
