"""Max and average pooling on the GPU over windows given per output row and column.

The formulas and window arrays of ``kernels.cpu.pool`` (output (i, j) pools rows
[h_lo[i], h_hi[i]) and columns [w_lo[j], w_hi[j]) of its plane):
    max:  Y[i, j] = X[q], q = first argmax in the window (a NaN wins);  dX[q] += dY[i, j]
    avg:  Y[i, j] = window sum / (h_count[i] w_count[j]);  dX[h, w] += dY[i, j] / count
One thread per output element. Windows may overlap, so the backward passes add into dX with
atomic adds (the order of those float additions is not fixed: last-bit differences only).
"""
import numpy as np

from ._runtime import kernel_builder
from .array import as_cuda, empty, full
from .elementwise import launch

cuda = None  # numba.cuda, bound by kernel_builder on first use


def _windows(*arrays):
    return tuple(as_cuda(np.ascontiguousarray(a, dtype=np.int64) if isinstance(a, np.ndarray) else a)
                 .astype(np.int64, copy=False).flat() for a in arrays)


@kernel_builder
def _max_forward():
    @cuda.jit
    def kernel(total, x, h_lo, h_hi, w_lo, w_hi, y, argmax, oh, ow, height, width):
        t = cuda.grid(1)
        step = cuda.gridsize(1)
        while t < total:
            j = t % ow
            i = (t // ow) % oh
            plane = (t // (ow * oh)) * height * width
            q = h_lo[i] * width + w_lo[j]
            best = x[plane + q]
            for h in range(h_lo[i], h_hi[i]):
                for w in range(w_lo[j], w_hi[j]):
                    value = x[plane + h * width + w]
                    if (value > best or value != value) and best == best:
                        best = value
                        q = h * width + w
            y[t] = best
            argmax[t] = q
            t += step
    return kernel


@kernel_builder
def _max_backward():
    @cuda.jit
    def kernel(total, dy, argmax, dx, oh, ow, plane_size):
        t = cuda.grid(1)
        step = cuda.gridsize(1)
        while t < total:
            plane = t // (oh * ow)
            cuda.atomic.add(dx, plane * plane_size + argmax[t], dy[t])
            t += step
    return kernel


@kernel_builder
def _avg_forward():
    @cuda.jit
    def kernel(total, x, h_lo, h_hi, h_count, w_lo, w_hi, w_count, y, oh, ow, height, width):
        t = cuda.grid(1)
        step = cuda.gridsize(1)
        while t < total:
            j = t % ow
            i = (t // ow) % oh
            plane = (t // (ow * oh)) * height * width
            acc = 0.0
            for h in range(h_lo[i], h_hi[i]):
                for w in range(w_lo[j], w_hi[j]):
                    acc += x[plane + h * width + w]
            y[t] = acc / (h_count[i] * w_count[j])
            t += step
    return kernel


@kernel_builder
def _avg_backward():
    @cuda.jit
    def kernel(total, dy, h_lo, h_hi, h_count, w_lo, w_hi, w_count, dx, oh, ow, height, width):
        t = cuda.grid(1)
        step = cuda.gridsize(1)
        while t < total:
            j = t % ow
            i = (t // ow) % oh
            plane = (t // (ow * oh)) * height * width
            share = dy[t] / (h_count[i] * w_count[j])
            for h in range(h_lo[i], h_hi[i]):
                for w in range(w_lo[j], w_hi[j]):
                    cuda.atomic.add(dx, plane + h * width + w, share)
            t += step
    return kernel


def max_pool2d_forward(x, h_lo, h_hi, w_lo, w_hi):
    """(y, argmax): argmax[n, c, i, j] is the winner's flat index h W + w in its plane (int32)."""
    x = as_cuda(x).ascontiguous()
    n_batch, channels, height, width = x.shape
    oh, ow = len(h_lo), len(w_lo)
    y = empty((n_batch, channels, oh, ow), x.dtype)
    argmax = empty((n_batch, channels, oh, ow), np.int32)
    launch(_max_forward(), y.size, x.flat(), *_windows(h_lo, h_hi, w_lo, w_hi), y.base,
           argmax.base, oh, ow, height, width)
    return y, argmax


def max_pool2d_backward(dy, argmax, height, width):
    """dX[winner of (i, j)] += dY[i, j]."""
    dy = as_cuda(dy).ascontiguous()
    n_batch, channels, oh, ow = dy.shape
    dx = full((n_batch, channels, height, width), 0, dy.dtype)
    launch(_max_backward(), dy.size, dy.flat(), as_cuda(argmax).flat(), dx.base, oh, ow,
           height * width)
    return dx


def avg_pool2d_forward(x, h_lo, h_hi, h_count, w_lo, w_hi, w_count):
    """Y[i, j] = sum of X over the window / (h_count[i] w_count[j])."""
    x = as_cuda(x).ascontiguous()
    n_batch, channels, height, width = x.shape
    oh, ow = len(h_lo), len(w_lo)
    y = empty((n_batch, channels, oh, ow), x.dtype)
    launch(_avg_forward(), y.size, x.flat(), *_windows(h_lo, h_hi, h_count, w_lo, w_hi, w_count),
           y.base, oh, ow, height, width)
    return y


def avg_pool2d_backward(dy, h_lo, h_hi, h_count, w_lo, w_hi, w_count, height, width):
    """dX[h, w] += dY[i, j] / (h_count[i] w_count[j]) over each window."""
    dy = as_cuda(dy).ascontiguous()
    n_batch, channels, oh, ow = dy.shape
    dx = full((n_batch, channels, height, width), 0, dy.dtype)
    launch(_avg_backward(), dy.size, dy.flat(), *_windows(h_lo, h_hi, h_count, w_lo, w_hi, w_count),
           dx.base, oh, ow, height, width)
    return dx
