"""minidl: a small deep-learning framework with Numba-compiled kernels.

    import minidl
    from minidl import nn, optim, tree
    import minidl.nn.functional as F
"""
import os as _os

import numba as _numba

# OpenBLAS and Numba's OpenMP layer fight over few cores (spin waiting); the workqueue layer
# measured ~1.8x faster for im2col + GEMM on 2 cores, and it survives fork(). Its price: each
# parallel kernel launch costs ~0.2 ms here. NUMBA_THREADING_LAYER=omp with OMP_WAIT_POLICY=PASSIVE
# (threads sleep at once, launches ~0.02 ms) made a LeNet-5 step 30% faster, but GNU OpenMP
# kills a child process forked after it ran. An explicit NUMBA_THREADING_LAYER wins.
if "NUMBA_THREADING_LAYER" not in _os.environ:
    _numba.config.THREADING_LAYER = "workqueue"

from . import memory as _memory  # noqa: E402

if _memory.wanted():
    _memory.keep_freed_memory()

from .device import Device, device  # noqa: E402
from .function import Function, no_grad, set_grad_enabled, is_grad_enabled  # noqa: E402
from .random import manual_seed  # noqa: E402
from .tensor import (  # noqa: E402
    Tensor, tensor, zeros, ones, randn, rand, arange, zeros_like, ones_like,
    concatenate, cat, stack, float32, float64, int64, int32, bool_, from_dlpack,
)

from . import cuda, data, nn, optim, tree, utils  # noqa: E402
from .train import Trainer  # noqa: E402
from . import onnx  # noqa: E402  (minidl.onnx.export; the onnx package loads on first use)
from .utils.serialization import load, save  # noqa: E402
from .utils.summary import summary  # noqa: E402

__version__ = "0.1.0"
