"""ReLU forward and backward in one pass each (NumPy's ``grad * (y > 0)`` takes two and a
temporary mask): y = x if x > 0 else 0 (NaN stays NaN, as PyTorch);  dx = dy if y > 0 else 0.
GELU and SiLU likewise (formulas above their kernels). Arrays are C-contiguous and walked flat."""
import numpy as np
from numba import njit

from . import size_dispatched
from .elementary import exp, one_plus_erf

_CHUNK = 1 << 14  # elements per parallel task
# ReLU is one load and store per element, bound by memory: two threads win only past about 4
# million elements (2 cores, 2^20 elements: 0.10 ms serial, 0.14 ms parallel; 2^22: 0.70 / 0.64).
# GELU's erf and exp cost ~1 ns an element serially in float32 (7 ns in float64): it splits from 2^16.
_RELU_PARALLEL_FROM = 1 << 22
_GELU_PARALLEL_FROM = 1 << 16


@size_dispatched(parallel_from=_RELU_PARALLEL_FROM)
def relu_forward(loop):
    def kernel(x):
        flat = x.reshape(-1)
        y = np.empty_like(flat)
        for chunk in loop((flat.size + _CHUNK - 1) // _CHUNK):
            source, target = flat[chunk * _CHUNK:chunk * _CHUNK + _CHUNK], y[chunk * _CHUNK:]
            for k in range(source.size):
                value = source[k]
                target[k] = 0 if value <= 0 else value
        return y.reshape(x.shape)
    return kernel


@size_dispatched(parallel_from=_RELU_PARALLEL_FROM)
def relu_backward(loop):
    def kernel(grad, y):
        flat_grad, flat_y = grad.reshape(-1), y.reshape(-1)
        dx = np.empty_like(flat_grad)
        for chunk in loop((flat_grad.size + _CHUNK - 1) // _CHUNK):
            start = chunk * _CHUNK
            g, out, target = flat_grad[start:start + _CHUNK], flat_y[start:], dx[start:]
            for k in range(g.size):
                target[k] = g[k] if out[k] > 0 else 0
        return dx.reshape(grad.shape)
    return kernel


# GELU, y = x Phi(x): exact Phi(x) = (1 + erf(x / sqrt 2)) / 2, Phi'(x) = e^(-x^2/2) / sqrt(2 pi);
# tanh form Phi(x) ~ (1 + tanh u) / 2 with u = sqrt(2/pi) (x + 0.044715 x^3), computed as the
# logistic of 2u from a = e^(-2|u|) (never overflows): Phi = 1 / (1 + a) for u >= 0, else
# a / (1 + a), and 1 - tanh(u)^2 = 4 a / (1 + a)^2, so that neither loses the far negative tail
# (1 + tanh u and 1 - tanh^2 u cancel to 0 there in float32).
# dx = dy (Phi(x) + x Phi'(x)). One pass each way, in the data's dtype: float32 through
# ``elementary`` (1 + erf and exp in SIMD lanes; 1 + erf within 7.6e-7 relative for |x| <= 4
# and without the cancellation of 1 + erf(x) for negative x), float64 through libm's math.erf
# and np.exp. With libm in float64 for both, GELU forward + backward over (64, 64, 32, 32) took
# 77 ms, 8.6x PyTorch's time.
_SQRT_HALF = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327
_SQRT_2_OVER_PI = 0.7978845608028654
_GELU_CUBIC = 0.044715


@njit(inline="always", error_model="numpy")
def _tanh_phi(u, one):
    """((1 + tanh u) / 2, 1 - tanh(u)^2) from a = e^(-2|u|); ``one`` is 1 in u's dtype."""
    a = exp(-(u + u) if u >= 0 else u + u)
    r = one / (one + a)
    return (r if u >= 0 else a * r), (a + a + a + a) * r * r


@size_dispatched(parallel_from=_GELU_PARALLEL_FROM)
def gelu_forward(loop):
    def kernel(x, approximate_tanh):
        flat = x.reshape(-1)
        y = np.empty_like(flat)
        real = flat.dtype.type
        half, sqrt_half, sqrt_2_over_pi, cubic = real(0.5), real(_SQRT_HALF), real(_SQRT_2_OVER_PI), real(_GELU_CUBIC)
        for chunk in loop((flat.size + _CHUNK - 1) // _CHUNK):
            source, target = flat[chunk * _CHUNK:chunk * _CHUNK + _CHUNK], y[chunk * _CHUNK:]
            if approximate_tanh:
                for k in range(source.size):
                    v = source[k]
                    target[k] = v * _tanh_phi(sqrt_2_over_pi * (v + cubic * v * v * v), real(1))[0]
            else:
                for k in range(source.size):
                    v = source[k]
                    target[k] = half * v * one_plus_erf(v * sqrt_half)
        return y.reshape(x.shape)
    return kernel


@size_dispatched(parallel_from=_GELU_PARALLEL_FROM)
def gelu_backward(loop):
    def kernel(grad, x, approximate_tanh):
        flat_grad, flat_x = grad.reshape(-1), x.reshape(-1)
        dx = np.empty_like(flat_grad)
        real = flat_x.dtype.type
        one, half, sqrt_half = real(1), real(0.5), real(_SQRT_HALF)
        inv_sqrt_2pi, sqrt_2_over_pi, cubic = real(_INV_SQRT_2PI), real(_SQRT_2_OVER_PI), real(_GELU_CUBIC)
        for chunk in loop((flat_grad.size + _CHUNK - 1) // _CHUNK):
            start = chunk * _CHUNK
            g, source, target = flat_grad[start:start + _CHUNK], flat_x[start:], dx[start:]
            if approximate_tanh:
                for k in range(g.size):
                    v = source[k]
                    phi, sech2 = _tanh_phi(sqrt_2_over_pi * (v + cubic * v * v * v), one)
                    slope = phi + half * v * sech2 * sqrt_2_over_pi * (one + real(3) * cubic * v * v)
                    target[k] = g[k] * slope
            else:
                for k in range(g.size):
                    v = source[k]
                    target[k] = g[k] * (half * one_plus_erf(v * sqrt_half) + v * inv_sqrt_2pi * exp(-half * v * v))
        return dx.reshape(grad.shape)
    return kernel


# SiLU, y = x s(x) with s the logistic 1 / (1 + e^-x) (``elementary.exp``: SIMD in float32;
# e^-x overflows to inf for x < -88, and s to 0, as it should);  dx = dy (s + x s (1 - s)).
# The tanh form 1/2 + 1/2 tanh(x / 2) loses the far negative tail (s = 0 from x = -16, where
# x s(x) is still -1.8e-6). As NumPy expressions (np.tanh and three temporaries a pass)
# forward + backward over (64, 64, 32, 32) took 20.6 ms, 4.4x PyTorch's time.
_SILU_PARALLEL_FROM = 1 << 19


@size_dispatched(parallel_from=_SILU_PARALLEL_FROM)
def silu_forward(loop):
    def kernel(x):
        flat = x.reshape(-1)
        y = np.empty_like(flat)
        for chunk in loop((flat.size + _CHUNK - 1) // _CHUNK):
            source, target = flat[chunk * _CHUNK:chunk * _CHUNK + _CHUNK], y[chunk * _CHUNK:]
            one = source.dtype.type(1)
            for k in range(source.size):
                target[k] = source[k] * (one / (one + exp(-source[k])))
        return y.reshape(x.shape)
    return kernel


@size_dispatched(parallel_from=_SILU_PARALLEL_FROM)
def silu_backward(loop):
    def kernel(grad, x):
        flat_grad, flat_x = grad.reshape(-1), x.reshape(-1)
        dx = np.empty_like(flat_grad)
        one = flat_x.dtype.type(1)
        for chunk in loop((flat_grad.size + _CHUNK - 1) // _CHUNK):
            start = chunk * _CHUNK
            g, source, target = flat_grad[start:start + _CHUNK], flat_x[start:], dx[start:]
            for k in range(g.size):
                v = source[k]
                s = one / (one + exp(-v))
                target[k] = g[k] * (s + v * s * (one - s))
        return dx.reshape(grad.shape)
    return kernel
