"""Dense layer and dropout as Functions."""
import warnings

from ...function import Function, require_float
from ...kernels import for_device
from ...meta import MetaArray
from ...ops import same_meta
from ...random import default_generator


def _rows(a):
    """``a`` of shape (*, k) as one (rows, k) matrix: numpy's matmul of an (N, L, k) array by a
    matrix loops over N with a small GEMM each (measured 3x slower than one GEMM of the rows)."""
    return a.reshape(-1, a.shape[-1])


class Linear(Function):
    """Y = X W^T + b (rows of X are samples);  dX = dY W,  dW = dY^T X,  db = sum_rows dY.
    Inputs of shape (*, in) run as one (rows, in) GEMM of all the leading axes."""

    @staticmethod
    def infer(x, weight, bias=None):
        return MetaArray(x.shape[:-1] + weight.shape[:1], x.dtype)

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        rows = _rows(x)
        ctx.save_for_backward(rows, weight)
        ctx.x_shape = x.shape
        ctx.has_bias = bias is not None
        y = for_device(ctx.device, "matmul").product(rows, weight.T, bias)
        return y.reshape(x.shape[:-1] + weight.shape[:1])

    @staticmethod
    def backward(ctx, grad):
        rows, weight = ctx.saved_arrays
        grad_rows = _rows(grad)
        products = for_device(ctx.device, "matmul")
        dx = products.product(grad_rows, weight).reshape(ctx.x_shape) if ctx.needs_input_grad[0] else None
        dw = products.transposed_product(grad_rows, rows) if ctx.needs_input_grad[1] else None
        db = grad_rows.sum(axis=0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx, dw, db


def linear(input, weight, bias=None):
    """y = x W^T + b over the last axis of ``input`` (float32 or float64, as the weight)."""
    require_float("linear", input)
    if input.ndim < 1 or input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: expected input of shape (*, {weight.shape[1]}), got "
                         f"{tuple(input.shape)} (weight of shape {tuple(weight.shape)})")
    return Linear.apply(input, weight, bias)


# ---------------------------------------------------------------- dropout

class Dropout(Function):
    """y = x m / (1 - p) with m ~ Bernoulli(1 - p);  dx = dy m / (1 - p). Integers run in float32.
    ``mask_shape``: draw m in that shape and broadcast it (channel dropout: (N, C, 1, 1))."""

    float_inputs = True
    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x, p, mask_shape=None):
        keep = default_generator().random(x.shape if mask_shape is None else mask_shape) >= p
        scale = x.dtype.type(1.0 / (1.0 - p))
        ctx.mask = keep * scale
        return x * ctx.mask

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.mask


def dropout(input, p=0.5, training=True, inplace=False, mask_shape=None):
    """Zero each entry with probability p in training and scale the rest by 1 / (1 - p).
    ``inplace`` is accepted for PyTorch's signature; the result is computed out of place."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    return Dropout.apply(input, p=p, mask_shape=mask_shape)


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Channel dropout of (N, C, L) or (C, L): y[n, c] = x[n, c] m[n, c] / (1 - p),
    m ~ Bernoulli(1 - p) per channel;  dx[n, c] = dy[n, c] m[n, c] / (1 - p)."""
    if input.ndim not in (2, 3):
        raise ValueError(f"dropout1d: expected input (N, C, L) or (C, L), got shape {tuple(input.shape)}")
    return dropout(input, p, training, mask_shape=tuple(input.shape[:-1]) + (1,))


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Channel dropout of (N, C, H, W): y[n, c] = x[n, c] m[n, c] / (1 - p), m ~ Bernoulli(1 - p)
    per channel;  dx[n, c] = dy[n, c] m[n, c] / (1 - p). As in PyTorch 2, a 3-d input is read as
    (N, C, L), and other inputs of 2 or more dimensions (an (N, C) input: one draw per entry, as
    pytorch/examples mnist_rnn uses it) run with PyTorch's deprecation warning."""
    if input.ndim < 2:
        raise ValueError(f"dropout2d: expected input (N, C, H, W) (at least 2 dimensions), got "
                         f"shape {tuple(input.shape)}")
    if input.ndim not in (3, 4):
        warnings.warn(f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is "
                      "deprecated in PyTorch; use dropout instead (dropout2d drops channels of "
                      "(N, C, H, W) inputs)", UserWarning, stacklevel=2)
    return dropout(input, p, training, mask_shape=tuple(input.shape[:2]) + (1,) * (input.ndim - 2))
