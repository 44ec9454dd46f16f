"""ReLU and SiLU on cuda arrays, through their NumPy interface (broadcasting elementwise maps); GELU as
grid-stride kernels, one thread per element, with the formulas and float64 arithmetic of
``kernels.cpu.activation`` (``math.erf`` and ``math.tanh`` run on the device)."""
import math

import numpy as np

from ..cpu.activation import _GELU_CUBIC, _INV_SQRT_2PI, _SQRT_2_OVER_PI, _SQRT_HALF
from ._runtime import kernel_builder
from .array import as_cuda, empty
from .elementwise import launch

cuda = None  # numba.cuda, bound by kernel_builder on first use


def relu_forward(x):
    return np.maximum(x, 0)


def relu_backward(grad, y):
    return grad * (y > 0)


def _sigmoid(x):
    half = x.dtype.type(0.5)
    return half + half * np.tanh(half * x)


def silu_forward(x):
    """y = x s(x), s the logistic as 1/2 + 1/2 tanh(x / 2)."""
    return x * _sigmoid(x)


def silu_backward(grad, x):
    """dx = dy (s + x s (1 - s))."""
    s = _sigmoid(x)
    return grad * (s * (1 + x * (1 - s)))


@kernel_builder
def _gelu_forward():
    @cuda.jit
    def kernel(total, x, approximate_tanh, y):
        t = cuda.grid(1)
        step = cuda.gridsize(1)
        while t < total:
            v = x[t] * 1.0  # float64
            if approximate_tanh:
                y[t] = 0.5 * v * (1.0 + math.tanh(_SQRT_2_OVER_PI * (v + _GELU_CUBIC * v * v * v)))
            else:
                y[t] = 0.5 * v * (1.0 + math.erf(v * _SQRT_HALF))
            t += step
    return kernel


@kernel_builder
def _gelu_backward():
    @cuda.jit
    def kernel(total, grad, x, approximate_tanh, dx):
        t = cuda.grid(1)
        step = cuda.gridsize(1)
        while t < total:
            v = x[t] * 1.0  # float64
            if approximate_tanh:
                u = math.tanh(_SQRT_2_OVER_PI * (v + _GELU_CUBIC * v * v * v))
                slope = 0.5 * (1.0 + u) + 0.5 * v * (1.0 - u * u) * _SQRT_2_OVER_PI * (
                    1.0 + 3.0 * _GELU_CUBIC * v * v)
            else:
                slope = 0.5 * (1.0 + math.erf(v * _SQRT_HALF)) + v * _INV_SQRT_2PI * math.exp(-0.5 * v * v)
            dx[t] = grad[t] * slope
            t += step
    return kernel


def gelu_forward(x, approximate_tanh):
    """y = x Phi(x) (the formulas in kernels.cpu.activation)."""
    x = as_cuda(x).ascontiguous()
    y = empty(x.shape, x.dtype)
    launch(_gelu_forward(), x.size, x.flat(), bool(approximate_tanh), y.base)
    return y


def gelu_backward(grad, x, approximate_tanh):
    """dx = dy (Phi(x) + x Phi'(x))."""
    grad, x = as_cuda(grad).ascontiguous(), as_cuda(x).ascontiguous()
    dx = empty(x.shape, x.dtype)
    launch(_gelu_backward(), x.size, grad.flat(), x.flat(), bool(approximate_tanh), dx.base)
    return dx
