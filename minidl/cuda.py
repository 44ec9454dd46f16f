"""``minidl.cuda.is_available()``: whether the cuda device can be used (see minidl.device)."""
from .device import cuda_is_available as is_available
