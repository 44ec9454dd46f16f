"""Activations and reshaping as functions (derivatives in minidl.ops, and below for the
activations of recent models)."""
import numpy as np

from ... import ops
from ...device import like
from ...function import Function
from ...kernels import for_device
from ...ops import same_meta


def relu(input):
    return ops.ReLU.apply(input)


def leaky_relu(input, negative_slope=0.01):
    return ops.LeakyReLU.apply(input, negative_slope=negative_slope)


def sigmoid(input):
    return ops.Sigmoid.apply(input)


def tanh(input):
    return ops.Tanh.apply(input)


def softmax(input, dim=-1):
    return ops.Softmax.apply(input, dim=dim)


def log_softmax(input, dim=-1):
    return ops.LogSoftmax.apply(input, dim=dim)


def flatten(input, start_dim=1, end_dim=-1):
    return input.flatten(start_dim, end_dim)


# ---------------------------------------------------------------- the activations of recent models
# Each Function saves its input x only and recomputes what the derivative needs from it.

class GELU(Function):
    """y = x Phi(x), Phi the standard normal CDF (or its tanh approximation);
    dx = dy (Phi(x) + x Phi'(x)). One kernel pass each way (kernels/<device>/activation.py)."""

    float_inputs = True  # bool and integer inputs run in float32
    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x, approximate_tanh):
        x = np.ascontiguousarray(x, like=like(x))
        ctx.save_for_backward(x)
        ctx.approximate_tanh = approximate_tanh
        return for_device(ctx.device, "activation").gelu_forward(x, approximate_tanh)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_arrays
        grad = np.ascontiguousarray(grad, dtype=x.dtype, like=like(x))
        return for_device(ctx.device, "activation").gelu_backward(grad, x, ctx.approximate_tanh)


def _sigmoid(x):
    """1 / (1 + e^-x) as 1/2 + 1/2 tanh(x/2): no overflow."""
    half = x.dtype.type(0.5)
    return half + half * np.tanh(half * x)


class SiLU(Function):
    """y = x s(x), s the logistic;  dx = dy (s + x s (1 - s)). One kernel pass each way."""

    float_inputs = True  # bool and integer inputs run in float32
    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x):
        x = np.ascontiguousarray(x, like=like(x))
        ctx.save_for_backward(x)
        return for_device(ctx.device, "activation").silu_forward(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_arrays
        grad = np.ascontiguousarray(grad, dtype=x.dtype, like=like(x))
        return for_device(ctx.device, "activation").silu_backward(grad, x)


class ELU(Function):
    """y = x for x > 0, alpha (e^x - 1) otherwise;  dx = dy for x > 0, dy alpha e^x otherwise."""

    float_inputs = True  # bool and integer inputs run in float32
    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = x.dtype.type(alpha)
        return np.where(x > 0, x, ctx.alpha * np.expm1(np.minimum(x, 0)))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_arrays
        return grad * np.where(x > 0, 1, ctx.alpha * np.exp(np.minimum(x, 0))).astype(grad.dtype)


def _softplus(z):
    """log(1 + e^z) = max(z, 0) + log1p(e^-|z|): no overflow."""
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


class Softplus(Function):
    """y = log(1 + e^(beta x)) / beta, and y = x where beta x > threshold (as PyTorch);
    dx = dy s(beta x) (s the logistic), dy where beta x > threshold."""

    float_inputs = True  # bool and integer inputs run in float32
    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x, beta, threshold):
        ctx.save_for_backward(x)
        ctx.options = (x.dtype.type(beta), threshold)
        z = ctx.options[0] * x
        return np.where(z > threshold, x, _softplus(z) / ctx.options[0])

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_arrays
        beta, threshold = ctx.options
        z = beta * x
        return grad * np.where(z > threshold, 1, _sigmoid(z)).astype(grad.dtype)


class Mish(Function):
    """y = x tanh(softplus(x));  with t = tanh(softplus(x)): dx = dy (t + x s(x) (1 - t^2))
    (d softplus / dx = s, the logistic)."""

    float_inputs = True  # bool and integer inputs run in float32
    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * np.tanh(_softplus(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_arrays
        t = np.tanh(_softplus(x))
        return grad * (t + x * _sigmoid(x) * (1 - t * t))


class Hardtanh(Function):
    """y = min(max(x, lo), hi);  dx = dy where lo < x < hi, 0 elsewhere (PyTorch's choice at
    the kinks)."""

    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x, min_val, max_val):
        ctx.save_for_backward(x)
        ctx.bounds = (min_val, max_val)
        return np.clip(x, x.dtype.type(min_val), x.dtype.type(max_val))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_arrays
        lo, hi = ctx.bounds
        return grad * ((x > lo) & (x < hi))


def gelu(input, approximate="none"):
    """GELU, exact (``approximate='none'``) or with the tanh approximation (``'tanh'``)."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(input, approximate_tanh=approximate == "tanh")


def silu(input):
    return SiLU.apply(input)


def elu(input, alpha=1.0):
    return ELU.apply(input, alpha=float(alpha))


def softplus(input, beta=1.0, threshold=20.0):
    return Softplus.apply(input, beta=float(beta), threshold=float(threshold))


def mish(input):
    return Mish.apply(input)


def hardtanh(input, min_val=-1.0, max_val=1.0):
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val={min_val} must not exceed max_val={max_val}")
    return Hardtanh.apply(input, min_val=float(min_val), max_val=float(max_val))
