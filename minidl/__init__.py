"""minidl: a small deep-learning framework with Numba-compiled kernels.

    import minidl
    from minidl import nn, optim, tree
    import minidl.nn.functional as F
"""
import os as _os

from . import blas_threads as _blas_threads

if _blas_threads.wanted():
    _blas_threads.short_spin()

import numba as _numba  # noqa: E402

# The workqueue layer survives fork(); GNU OpenMP kills a child process forked after it ran.
# Each parallel (prange) launch costs ~0.05-0.2 ms here, against ~0.02 ms for
# NUMBA_THREADING_LAYER=omp with OMP_WAIT_POLICY=PASSIVE, which made a LeNet-5 step at batch 64
# 13% faster (the heavy kernels run on kernels/cpu/tasks.py's pool either way; see README).
# An explicit NUMBA_THREADING_LAYER wins.
if "NUMBA_THREADING_LAYER" not in _os.environ:
    _numba.config.THREADING_LAYER = "workqueue"

from . import memory as _memory  # noqa: E402

if _memory.wanted():
    _memory.keep_freed_memory()

from .device import Device, device  # noqa: E402
from .function import Function, no_grad, set_grad_enabled, is_grad_enabled  # noqa: E402
from .function import enable_grad  # noqa: E402
from .random import manual_seed  # noqa: E402
from .tensor import (  # noqa: E402
    Tensor, tensor, zeros, ones, randn, rand, arange, zeros_like, ones_like,
    concatenate, cat, stack, float32, float64, int64, int32, bool_, from_dlpack,
)
from .tensor import Size, full  # noqa: E402
from .functions import (  # noqa: E402  (PyTorch's top-level functions; they shadow abs, sum, max ... here)
    flatten, exp, log, sqrt, abs, sin, cos, tanh, sigmoid, relu, softmax, log_softmax, clamp, clip,
    tril, triu,
    pow, sum, mean, std, var, max, min, maximum, minimum, argmax, argmin, matmul, mm, where, reshape,
    transpose, squeeze, unsqueeze, sort, topk, gather, cumsum, from_numpy, randint, randperm,
    linspace, eye, full_like, randn_like, rand_like, allclose, equal, is_tensor, get_default_dtype,
    set_default_dtype, FloatTensor, DoubleTensor, LongTensor, IntTensor, BoolTensor, ByteTensor,
    float16, uint8, int8, int16,
)

from . import cuda, data, nn, optim, tree, utils  # noqa: E402
from . import accelerator, autograd, vision  # noqa: E402  (PyTorch's torch.accelerator, torch.autograd, torchvision paths)
from . import backends  # noqa: E402  (torch.backends.mps.is_available() is False)
from .train import Trainer  # noqa: E402
from . import onnx  # noqa: E402  (minidl.onnx.export; the onnx package loads on first use)
from .utils.serialization import load, save  # noqa: E402
from .utils.summary import summary  # noqa: E402

__version__ = "0.1.0"

# PyTorch's dtype names: minidl.float is float32, minidl.long int64 ... These shadow the builtins
# float, int and bool in this module's namespace: keep this the last line of the file.
float, double, half, long, int, short, bool = float32, float64, float16, int64, int32, int16, bool_  # noqa: E402,A001
