"""Dense layer and dropout as Functions."""
from ...function import Function, require_float
from ...meta import MetaArray
from ...ops import same_meta
from ...random import default_generator


class Linear(Function):
    """Y = X W^T + b (rows of X are samples);  dX = dY W,  dW = dY^T X,  db = sum_rows dY."""

    @staticmethod
    def infer(x, weight, bias=None):
        return MetaArray(x.shape[:-1] + weight.shape[:1], x.dtype)

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        y = x @ weight.T
        if bias is not None:
            y += bias
        return y

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_arrays
        grad_rows = grad.reshape(-1, grad.shape[-1])
        dx = (grad @ weight) if ctx.needs_input_grad[0] else None
        dw = grad_rows.T @ x.reshape(-1, x.shape[-1]) if ctx.needs_input_grad[1] else None
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
    per channel;  dx[n, c] = dy[n, c] m[n, c] / (1 - p). A 3-d input is read as (N, C, L), as
    PyTorch 2 does (with a deprecation warning there)."""
    if input.ndim not in (3, 4):
        raise ValueError(f"dropout2d: expected input (N, C, H, W) (or (N, C, L)), got shape "
                         f"{tuple(input.shape)}")
    return dropout(input, p, training, mask_shape=tuple(input.shape[:2]) + (1,) * (input.ndim - 2))
