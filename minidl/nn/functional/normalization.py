"""Batch normalisation as a Function over (N, C), (N, C, L) and (N, C, H, W) inputs.

Forward and backward are one kernel each (``kernels/<device>/norm.py``); the formulas are there.
"""
import numpy as np

from ...device import like
from ...function import Function
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
    return value if value is None else value.data
