"""Separable interpolation (nearest, bilinear) on the GPU; formulas and tables as
``kernels.cpu.sampling``. One thread per output element forward, one per input element
backward (the gather over the inverse tables), so no two threads write the same place."""
import numpy as np

from ._runtime import kernel_builder
from .array import as_cuda, empty
from .elementwise import launch

cuda = None  # numba.cuda, bound by kernel_builder on first use


def _table(array, dtype):
    return as_cuda(np.ascontiguousarray(array, dtype=dtype)).flat()


@kernel_builder
def _forward_kernel():
    @cuda.jit
    def kernel(total, x, i0, i1, a, j0, j1, b, y, oh, ow, height, width):
        t = cuda.grid(1)
        step = cuda.gridsize(1)
        while t < total:
            j = t % ow
            i = (t // ow) % oh
            plane = (t // (ow * oh)) * height * width
            top, bottom = plane + i0[i] * width, plane + i1[i] * width
            right = b[j]
            left = 1 - right
            y[t] = ((1 - a[i]) * (left * x[top + j0[j]] + right * x[top + j1[j]])
                    + a[i] * (left * x[bottom + j0[j]] + right * x[bottom + j1[j]]))
            t += step
    return kernel


@kernel_builder
def _backward_kernel():
    @cuda.jit
    def kernel(total, dy, starts_h, taps_h, weights_h, starts_w, taps_w, weights_w, dx,
               oh, ow, height, width, zero):
        t = cuda.grid(1)
        step = cuda.gridsize(1)
        while t < total:
            w = t % width
            h = (t // width) % height
            plane = (t // (width * height)) * oh * ow
            acc = zero
            for p in range(starts_h[h], starts_h[h + 1]):
                row = plane + taps_h[p] * ow
                for q in range(starts_w[w], starts_w[w + 1]):
                    acc += weights_h[p] * weights_w[q] * dy[row + taps_w[q]]
            dx[t] = acc
            t += step
    return kernel


def interpolate_forward(x, i0, i1, a, j0, j1, b):
    x = as_cuda(x).ascontiguous()
    n_batch, channels, height, width = x.shape
    oh, ow = len(i0), len(j0)
    y = empty((n_batch, channels, oh, ow), x.dtype)
    launch(_forward_kernel(), y.size, x.flat(), _table(i0, np.int64), _table(i1, np.int64),
           _table(a, x.dtype), _table(j0, np.int64), _table(j1, np.int64), _table(b, x.dtype),
           y.base, oh, ow, height, width)
    return y


def interpolate_backward(dy, starts_h, taps_h, weights_h, starts_w, taps_w, weights_w):
    dy = as_cuda(dy).ascontiguous()
    n_batch, channels, oh, ow = dy.shape
    height, width = len(starts_h) - 1, len(starts_w) - 1
    dx = empty((n_batch, channels, height, width), dy.dtype)
    launch(_backward_kernel(), dx.size, dy.flat(), _table(starts_h, np.int64), _table(taps_h, np.int64),
           _table(weights_h, dy.dtype), _table(starts_w, np.int64), _table(taps_w, np.int64),
           _table(weights_w, dy.dtype), dx.base, oh, ow, height, width, dy.dtype.type(0))
    return dx
