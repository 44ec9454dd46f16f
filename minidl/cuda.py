"""``minidl.cuda.is_available()``: whether the cuda device can be used (see minidl.device);
``minidl.cuda.synchronize()``: wait until the queued cuda kernels have finished (for timing);
``minidl.cuda.device_count()``: how many GPUs numba-cuda sees (0 without one)."""
from .device import cuda_is_available as is_available


def synchronize():
    if not is_available():
        raise RuntimeError("minidl.cuda.synchronize: no cuda device is available")
    from numba import cuda
    cuda.synchronize()


def device_count():
    if not is_available():
        return 0
    from numba import cuda
    return len(cuda.gpus)
