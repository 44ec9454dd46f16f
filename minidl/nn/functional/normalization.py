"""Batch normalisation as a Function over (N, C), (N, C, L) and (N, C, H, W) inputs.

Forward and backward are one kernel each (``kernels/<device>/norm.py``); the formulas are there.
"""
import numpy as np

from ...device import like
from ...function import Function, require_float
from ...kernels import for_device
from ...ops import same_meta


class BatchNorm(Function):
    """y = g (x - mu) / sqrt(var + eps) + b per channel; db = sum dy, dg = sum dy xh,
    dx = g / (n sqrt(var + eps)) (n dy - sum dy - xh sum(dy xh)) with batch statistics."""

    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps):
        """running_mean / running_var (arrays or None) are updated in place when training."""
        rows = np.ascontiguousarray(x.reshape(x.shape[0], x.shape[1], -1), like=like(x))
        channels, count = rows.shape[1], rows.shape[0] * rows.shape[2]
        if training:
            mean, var = np.empty(channels, like=like(x)), np.empty(channels, like=like(x))
        else:
            mean, var = running_mean.astype(np.float64), running_var.astype(np.float64)
        weight = (np.ones(channels, x.dtype, like=like(x)) if weight is None
                  else np.ascontiguousarray(weight, x.dtype, like=like(x)))
        shift = (np.zeros(channels, x.dtype, like=like(x)) if bias is None
                 else np.ascontiguousarray(bias, x.dtype, like=like(x)))
        y = for_device(ctx.device, "norm").batch_norm_forward(rows, mean, var, weight, shift, eps, training)
        if training and running_mean is not None:
            # running statistics use the unbiased variance n / (n - 1) var, as PyTorch
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += momentum * var * count / (count - 1)
        ctx.save_for_backward(rows, mean, var, weight)
        ctx.options = (training, eps, x.shape)
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        rows, mean, var, weight = ctx.saved_arrays
        training, eps, shape = ctx.options
        dy = np.ascontiguousarray(grad.reshape(rows.shape), dtype=rows.dtype, like=like(rows))
        dx, dweight, dbias = for_device(ctx.device, "norm").batch_norm_backward(
            rows, dy, mean, var, weight, eps, training)
        return dx.reshape(shape), dweight, dbias


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Normalise each channel (axis 1) by the batch's statistics (``training``) or the running
    ones; when training, update running_mean / running_var in place:
    r = (1 - momentum) r + momentum batch_stat (unbiased variance for r)."""
    require_float("batch_norm", input)
    shape = tuple(input.shape)
    if input.ndim not in (2, 3, 4):
        raise ValueError(f"batch_norm: expected input (N, C), (N, C, L) or (N, C, H, W), got shape {shape}")
    channels = shape[1]
    for name, value in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
        if value is not None and tuple(value.shape) != (channels,):
            raise ValueError(f"batch_norm: input of shape {shape} has {channels} channels, but "
                             f"{name} has shape {tuple(value.shape)}")
    if training and shape[0] * int(np.prod(shape[2:])) < 2:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got "
                         f"input of shape {shape}")
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm: running_mean and running_var are needed when not training")
    return BatchNorm.apply(input, weight, bias, running_mean=_data(running_mean),
                           running_var=_data(running_var), training=bool(training),
                           momentum=float(momentum), eps=float(eps))


def _data(value):
    return value if value is None else value.array


# ---------------------------------------------------------------- layer and group normalisation

def _affine(array, size, fill, x):
    """The affine weight or bias as a flat contiguous array of x's dtype (``fill`` when None)."""
    if array is None:
        return np.full(size, fill, dtype=x.dtype, like=like(x))
    return np.ascontiguousarray(array.reshape(-1), dtype=x.dtype, like=like(x))


class LayerNorm(Function):
    """Per row of M = prod(normalized_shape) values, r = 1 / sqrt(var + eps):
    xh = (x - mu) r,  y = g xh + b;  db = sum_rows dy,  dg = sum_rows dy xh,
    dx = r / M (M dxh - sum dxh - xh sum(dxh xh)) with dxh = g dy.
    Saves x and the per-row (mu, r) only; backward recomputes xh."""

    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x, weight, bias, normalized_shape, eps):
        features = int(np.prod(normalized_shape))
        rows = np.ascontiguousarray(x.reshape(-1, features), like=like(x))
        weight, bias = _affine(weight, features, 1, x), _affine(bias, features, 0, x)
        y, mean, rstd = for_device(ctx.device, "norm").layer_norm_forward(rows, weight, bias, eps)
        ctx.save_for_backward(rows, mean, rstd, weight)
        ctx.shapes = (x.shape, normalized_shape)
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        rows, mean, rstd, weight = ctx.saved_arrays
        shape, normalized_shape = ctx.shapes
        dy = np.ascontiguousarray(grad.reshape(rows.shape), dtype=rows.dtype, like=like(rows))
        dx, dweight, dbias = for_device(ctx.device, "norm").layer_norm_backward(rows, dy, mean, rstd, weight)
        return dx.reshape(shape), dweight.reshape(normalized_shape), dbias.reshape(normalized_shape)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the trailing ``normalized_shape`` axes of ``input`` (formulas in LayerNorm)."""
    require_float("layer_norm", input)
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    shape = tuple(input.shape)
    if not normalized_shape or shape[len(shape) - len(normalized_shape):] != normalized_shape:
        raise ValueError(f"layer_norm: expected input of shape (*, {', '.join(map(str, normalized_shape))}), "
                         f"got {shape}")
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None and tuple(value.shape) != normalized_shape:
            raise ValueError(f"layer_norm: {name} has shape {tuple(value.shape)}, expected "
                             f"normalized_shape {normalized_shape}")
    return LayerNorm.apply(input, weight, bias, normalized_shape=normalized_shape, eps=float(eps))


class GroupNorm(Function):
    """x (N, C, *) split into G groups of C / G channels; per (sample, group) of M values,
    r = 1 / sqrt(var + eps): xh = (x - mu) r,  y = g_c xh + b_c (per channel c);
    db_c = sum dy,  dg_c = sum dy xh (over samples and positions),
    dx = r / M (M dxh - sum dxh - xh sum(dxh xh)) with dxh = g_c dy, sums within the group.
    Saves x and the per-group (mu, r) only."""

    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x, weight, bias, num_groups, eps):
        channels = x.shape[1]
        blocks = np.ascontiguousarray(x.reshape(x.shape[0], num_groups, channels // num_groups, -1),
                                      like=like(x))
        weight, bias = _affine(weight, channels, 1, x), _affine(bias, channels, 0, x)
        y, mean, rstd = for_device(ctx.device, "norm").group_norm_forward(blocks, weight, bias, eps)
        ctx.save_for_backward(blocks, mean, rstd, weight)
        ctx.shape = x.shape
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        blocks, mean, rstd, weight = ctx.saved_arrays
        dy = np.ascontiguousarray(grad.reshape(blocks.shape), dtype=blocks.dtype, like=like(blocks))
        dx, dweight, dbias = for_device(ctx.device, "norm").group_norm_backward(blocks, dy, mean, rstd, weight)
        return dx.reshape(ctx.shape), dweight, dbias


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalise x (N, C, *) over each of ``num_groups`` groups of C / num_groups channels
    (formulas in GroupNorm); weight and bias (C,) scale and shift each channel."""
    require_float("group_norm", input)
    shape = tuple(input.shape)
    if input.ndim < 2 or shape[1] % num_groups:
        raise ValueError(f"group_norm: expected input (N, C, *) with C divisible by num_groups="
                         f"{num_groups}, got shape {shape}")
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None and tuple(value.shape) != (shape[1],):
            raise ValueError(f"group_norm: input of shape {shape} has {shape[1]} channels, but "
                             f"{name} has shape {tuple(value.shape)}")
    return GroupNorm.apply(input, weight, bias, num_groups=int(num_groups), eps=float(eps))
