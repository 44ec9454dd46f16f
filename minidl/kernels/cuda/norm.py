"""Batch normalisation on the GPU over x viewed as (N, C, L): statistics per channel over its
n = N L values. The formulas of ``kernels.cpu.norm``:
    mu = mean(x),  var = mean((x - mu)^2) (biased),  xh = (x - mu) / sqrt(var + eps),  y = g xh + b
    db = sum dy,  dg = sum dy xh,
    dx = g / (n sqrt(var + eps)) (n dy - sum dy - xh sum(dy xh))     (batch statistics)
    dx = g dy / sqrt(var + eps)                                      (running statistics)
Two kernels each way: one thread per channel for the sums (float64, two passes for the
variance), then one thread per element for y or dx.
"""
import math

import numpy as np

from ._runtime import kernel_builder
from .array import as_cuda, empty
from .elementwise import launch

cuda = None  # numba.cuda, bound by kernel_builder on first use


@kernel_builder
def _statistics():
    @cuda.jit
    def kernel(channels, x, mean, var, n_batch, length):
        c = cuda.grid(1)
        step = cuda.gridsize(1)
        count = n_batch * length
        while c < channels:
            total = 0.0
            for n in range(n_batch):
                for k in range(length):
                    total += x[(n * channels + c) * length + k]
            mu = total / count
            spread = 0.0
            for n in range(n_batch):
                for k in range(length):
                    d = x[(n * channels + c) * length + k] - mu
                    spread += d * d
            mean[c] = mu
            var[c] = spread / count
            c += step
    return kernel


@kernel_builder
def _normalize():
    @cuda.jit
    def kernel(total, x, mean, var, weight, bias, eps, y, channels, length):
        t = cuda.grid(1)
        step = cuda.gridsize(1)
        while t < total:
            c = (t // length) % channels
            scale = weight[c] / math.sqrt(var[c] + eps)
            y[t] = x[t] * scale + (bias[c] - mean[c] * scale)
            t += step
    return kernel


@kernel_builder
def _grad_sums():
    @cuda.jit
    def kernel(channels, x, dy, mean, var, eps, dweight, dbias, n_batch, length):
        c = cuda.grid(1)
        step = cuda.gridsize(1)
        while c < channels:
            inv_std = 1.0 / math.sqrt(var[c] + eps)
            sum_dy = 0.0
            sum_dy_xh = 0.0
            for n in range(n_batch):
                for k in range(length):
                    at = (n * channels + c) * length + k
                    sum_dy += dy[at]
                    sum_dy_xh += dy[at] * (x[at] - mean[c]) * inv_std
            dweight[c] = sum_dy_xh
            dbias[c] = sum_dy
            c += step
    return kernel


@kernel_builder
def _input_grad():
    @cuda.jit
    def kernel(total, x, dy, mean, var, weight, eps, dweight, dbias, use_batch_stats, dx,
               channels, length, count):
        t = cuda.grid(1)
        step = cuda.gridsize(1)
        while t < total:
            c = (t // length) % channels
            inv_std = 1.0 / math.sqrt(var[c] + eps)
            scale = weight[c] * inv_std
            if use_batch_stats:
                xh = (x[t] - mean[c]) * inv_std
                dx[t] = scale / count * (count * dy[t] - dbias[c] - xh * dweight[c])
            else:
                dx[t] = scale * dy[t]
            t += step
    return kernel


def batch_norm_forward(x, mean, var, weight, bias, eps, use_batch_stats):
    """y = g (x - mu) / sqrt(var + eps) + b. With ``use_batch_stats`` mu and var are the batch's,
    written into ``mean`` and ``var`` (float64 device arrays of shape (C,)); otherwise read from them."""
    x, mean, var, weight, bias = (as_cuda(a) for a in (x, mean, var, weight, bias))
    x = x.ascontiguous()
    n_batch, channels, length = x.shape
    if use_batch_stats:
        launch(_statistics(), channels, x.flat(), mean.flat(), var.flat(), n_batch, length)
    y = empty(x.shape, x.dtype)
    launch(_normalize(), x.size, x.flat(), mean.flat(), var.flat(), weight.flat(), bias.flat(),
           np.float64(eps), y.base, channels, length)
    return y


def batch_norm_backward(x, dy, mean, var, weight, eps, use_batch_stats):
    """(dx, dweight, dbias) by the closed form in the module docstring."""
    x, dy, mean, var, weight = (as_cuda(a).ascontiguous() for a in (x, dy, mean, var, weight))
    n_batch, channels, length = x.shape
    sums = empty((2, channels), np.float64)
    dweight, dbias = sums[0], sums[1]
    launch(_grad_sums(), channels, x.flat(), dy.flat(), mean.flat(), var.flat(), np.float64(eps),
           dweight.flat(), dbias.flat(), n_batch, length)
    dx = empty(x.shape, x.dtype)
    launch(_input_grad(), x.size, x.flat(), dy.flat(), mean.flat(), var.flat(), weight.flat(),
           np.float64(eps), dweight.flat(), dbias.flat(), bool(use_batch_stats), dx.base,
           channels, length, n_batch * length)
    return dx, dweight.astype(x.dtype), dbias.astype(x.dtype)


# ---------------------------------------------------------------- layer normalisation
# The formulas of ``kernels.cpu.norm`` over x (R, D), statistics per row:
#     xh = (x - mu) r,  r = 1 / sqrt(var + eps),  y = g xh + b;  db = sum_rows dy,
#     dg = sum_rows dy xh,  dx = r / D (D dxh - sum dxh - xh sum(dxh xh)) with dxh = g dy.
# One thread per row for the statistics, y and dx; one thread per feature for dg and db.

@kernel_builder
def _layer_norm_rows():
    @cuda.jit
    def kernel(rows, x, weight, bias, eps, y, mean, rstd, features):
        r = cuda.grid(1)
        step = cuda.gridsize(1)
        while r < rows:
            total = 0.0
            for k in range(features):
                total += x[r * features + k]
            mu = total / features
            spread = 0.0
            for k in range(features):
                d = x[r * features + k] - mu
                spread += d * d
            inv = 1.0 / math.sqrt(spread / features + eps)
            mean[r] = mu
            rstd[r] = inv
            for k in range(features):
                y[r * features + k] = (x[r * features + k] - mu) * inv * weight[k] + bias[k]
            r += step
    return kernel


@kernel_builder
def _layer_norm_input_grad():
    @cuda.jit
    def kernel(rows, x, dy, mean, rstd, weight, dx, features):
        r = cuda.grid(1)
        step = cuda.gridsize(1)
        while r < rows:
            mu = mean[r]
            inv = rstd[r]
            sum_g = 0.0
            sum_g_xh = 0.0
            for k in range(features):
                g = dy[r * features + k] * weight[k]
                sum_g += g
                sum_g_xh += g * (x[r * features + k] - mu) * inv
            a = sum_g / features
            b = sum_g_xh / features
            for k in range(features):
                at = r * features + k
                dx[at] = inv * (dy[at] * weight[k] - a - (x[at] - mu) * inv * b)
            r += step
    return kernel


@kernel_builder
def _layer_norm_affine_grad():
    @cuda.jit
    def kernel(features, x, dy, mean, rstd, dweight, dbias, rows):
        k = cuda.grid(1)
        step = cuda.gridsize(1)
        while k < features:
            sum_dy = 0.0
            sum_dy_xh = 0.0
            for r in range(rows):
                at = r * features + k
                sum_dy += dy[at]
                sum_dy_xh += dy[at] * (x[at] - mean[r]) * rstd[r]
            dweight[k] = sum_dy_xh
            dbias[k] = sum_dy
            k += step
    return kernel


def layer_norm_forward(x, weight, bias, eps):
    """x (R, D), weight and bias (D,): (y, mean, rstd), the statistics (R,) in float64."""
    x, weight, bias = (as_cuda(a).ascontiguous() for a in (x, weight, bias))
    rows, features = x.shape
    stats = empty((2, rows), np.float64)
    y = empty(x.shape, x.dtype)
    launch(_layer_norm_rows(), rows, x.flat(), weight.flat(), bias.flat(), np.float64(eps), y.base,
           stats[0].flat(), stats[1].flat(), features)
    return y, stats[0], stats[1]


def layer_norm_backward(x, dy, mean, rstd, weight):
    """(dx, dweight, dbias) by the closed form above."""
    x, dy, mean, rstd, weight = (as_cuda(a).ascontiguous() for a in (x, dy, mean, rstd, weight))
    rows, features = x.shape
    dx = empty(x.shape, x.dtype)
    launch(_layer_norm_input_grad(), rows, x.flat(), dy.flat(), mean.flat(), rstd.flat(),
           weight.flat(), dx.base, features)
    sums = empty((2, features), np.float64)
    launch(_layer_norm_affine_grad(), features, x.flat(), dy.flat(), mean.flat(), rstd.flat(),
           sums[0].flat(), sums[1].flat(), rows)
    return dx, sums[0].astype(x.dtype), sums[1].astype(x.dtype)
