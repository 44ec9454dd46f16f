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
    """y = x m / (1 - p) with m ~ Bernoulli(1 - p);  dx = dy m / (1 - p). Integers run in float32."""

    float_inputs = True
    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x, p):
        keep = default_generator().random(x.shape) >= p
        scale = x.dtype.type(1.0 / (1.0 - p))
        ctx.mask = keep * scale
        return x * ctx.mask

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.mask


def dropout(input, p=0.5, training=True):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    return Dropout.apply(input, p=p)
