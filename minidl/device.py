"""Devices: where a tensor's array lives.

``cpu`` holds numpy arrays. ``cuda`` will hold numba-cuda device arrays (imported lazily, so
``import minidl`` works with no GPU and no CUDA toolkit). Every Function receives its device
through its context and picks that device's kernels, so no layer changes when a device is added.
"""

KNOWN_DEVICES = ("cpu", "cuda")


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


def device(spec="cpu"):
    """``minidl.device("cuda")``: a Device, checked to be usable."""
    dev = Device(spec)
    if dev.type == "cuda":
        require_cuda()
    return dev


def cuda_is_available():
    """True when numba-cuda is installed and sees a GPU (or runs the CUDA simulator)."""
    try:
        from numba import cuda
    except ImportError:
        return False
    try:
        return bool(cuda.is_available())
    except Exception:  # a broken driver must read as "not available", never crash
        return False


def require_cuda():
    if not cuda_is_available():
        raise RuntimeError(
            "CUDA is not available: minidl needs numba-cuda (pip install 'minidl[cuda]') and an "
            "NVIDIA GPU with its driver, or NUMBA_ENABLE_CUDASIM=1 for the simulator")
