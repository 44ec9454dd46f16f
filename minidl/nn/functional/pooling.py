"""Pooling as Functions: max and average (1-d and 2-d) and adaptive average, NCHW.

Each op turns its arguments into per-output windows [lo, hi) along each axis and runs the
device's pool kernels; formulas in ``kernels/<device>/pool.py``. 1-d pooling is 2-d pooling of
height 1.
"""
import numpy as np

from ...device import like
from ...function import Function
from ...kernels import for_device
from ...meta import MetaArray
from .conv import output_size_2d, pair


def _windows(size, kernel, stride, padding, out):
    """lo, hi (clipped to the input) and the count including padding, for a fixed window."""
    start = np.arange(out, dtype=np.int64) * stride - padding
    lo, hi = np.maximum(start, 0), np.minimum(start + kernel, size)
    return lo, hi, np.minimum(start + kernel, size + padding) - start


def _adaptive_windows(size, out):
    """lo = floor(i H / oh), hi = ceil((i + 1) H / oh)."""
    i = np.arange(out, dtype=np.int64)
    lo, hi = (i * size) // out, ((i + 1) * size + out - 1) // out
    return lo, hi, hi - lo


class MaxPool(Function):
    """Y[i, j] = max over the window;  dX[argmax] += dY[i, j], zero elsewhere."""

    @staticmethod
    def infer(x, rows, cols):
        return MetaArray(x.shape[:2] + (len(rows[0]), len(cols[0])), x.dtype)

    @staticmethod
    def forward(ctx, x, rows, cols):
        y, ctx.argmax = for_device(ctx.device, "pool").max_pool2d_forward(
            np.ascontiguousarray(x, like=like(x)), rows[0], rows[1], cols[0], cols[1])
        ctx.input_shape = x.shape
        return y

    @staticmethod
    def backward(ctx, grad):
        height, width = ctx.input_shape[2:]
        return for_device(ctx.device, "pool").max_pool2d_backward(
            np.ascontiguousarray(grad, like=like(grad)), ctx.argmax, height, width)


class AvgPool(Function):
    """Y[i, j] = sum over the window / count;  dX[h, w] += dY[i, j] / count over each window.
    Integer inputs are averaged in float32 (like mean), never truncated."""

    float_inputs = True

    infer = MaxPool.infer

    @staticmethod
    def forward(ctx, x, rows, cols):
        ctx.windows, ctx.input_shape = rows + cols, x.shape
        return for_device(ctx.device, "pool").avg_pool2d_forward(np.ascontiguousarray(x, like=like(x)),
                                                                 *rows, *cols)

    @staticmethod
    def backward(ctx, grad):
        height, width = ctx.input_shape[2:]
        return for_device(ctx.device, "pool").avg_pool2d_backward(
            np.ascontiguousarray(grad, like=like(grad)), *ctx.windows, height, width)


def _fixed_windows(name, input, kernel_size, stride, padding):
    kernel = pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else pair(stride, "stride")
    padding = pair(padding, "padding")
    if input.ndim != 4:
        raise ValueError(f"{name}: expected input (N, C, H, W), got shape {tuple(input.shape)}")
    if any(2 * p > k for p, k in zip(padding, kernel)):
        raise ValueError(f"{name}: padding {padding} must be at most half the kernel {kernel}")
    out = output_size_2d(name, input.shape, kernel, stride, padding)
    return tuple(_windows(n, k, s, p, o)
                 for n, k, s, p, o in zip(input.shape[2:], kernel, stride, padding, out))


def max_pool2d(input, kernel_size, stride=None, padding=0):
    """Max over kernel_size windows every stride (default: kernel_size); pads with -inf.
    Integer inputs give integer outputs (a max is exact), as in PyTorch."""
    rows, cols = _fixed_windows("max_pool2d", input, kernel_size, stride, padding)
    return MaxPool.apply(input, rows=rows[:2], cols=cols[:2])


def avg_pool2d(input, kernel_size, stride=None, padding=0, count_include_pad=True):
    """Mean over each window; with count_include_pad the zeros of the padding count too."""
    rows, cols = _fixed_windows("avg_pool2d", input, kernel_size, stride, padding)
    if not count_include_pad:
        rows, cols = ((w[0], w[1], w[1] - w[0]) for w in (rows, cols))
    return AvgPool.apply(input, rows=rows, cols=cols)


def _as_1d(pool_2d, name, input, kernel_size, stride, padding, **options):
    if input.ndim != 3:
        raise ValueError(f"{name}: expected input (N, C, L), got shape {tuple(input.shape)}")
    stride = None if stride is None else (1, _single(stride))
    n, c, length = input.shape
    y = pool_2d(input.reshape(n, c, 1, length), (1, _single(kernel_size)), stride, (0, _single(padding)),
                **options)
    return y.reshape(n, c, y.shape[3])


def _single(value):
    return int(value[0]) if isinstance(value, (tuple, list)) else int(value)


def max_pool1d(input, kernel_size, stride=None, padding=0):
    """max_pool2d over (N, C, L) as (N, C, 1, L)."""
    return _as_1d(max_pool2d, "max_pool1d", input, kernel_size, stride, padding)


def avg_pool1d(input, kernel_size, stride=None, padding=0, count_include_pad=True):
    """avg_pool2d over (N, C, L) as (N, C, 1, L)."""
    return _as_1d(avg_pool2d, "avg_pool1d", input, kernel_size, stride, padding,
                  count_include_pad=count_include_pad)


def adaptive_avg_pool2d(input, output_size):
    """Mean over windows [floor(i H / oh), ceil((i + 1) H / oh)); None keeps that axis's size."""
    if input.ndim != 4:
        raise ValueError(f"adaptive_avg_pool2d: expected input (N, C, H, W), got shape {tuple(input.shape)}")
    sizes = (output_size, output_size) if output_size is None or isinstance(output_size, int) else output_size
    out = tuple(n if o is None else int(o) for n, o in zip(input.shape[2:], sizes))
    if min(out) < 1:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be positive, got {output_size}")
    rows, cols = (_adaptive_windows(n, o) for n, o in zip(input.shape[2:], out))
    return AvgPool.apply(input, rows=rows, cols=cols)
