"""Weight initialisation, in place, with PyTorch's names and formulas.

fan_in / fan_out of a weight of shape (out, in, *kernel): in * prod(kernel) / out * prod(kernel).
Kaiming (He): std = gain / sqrt(fan), uniform bound = sqrt(3) std.
Xavier (Glorot): std = gain sqrt(2 / (fan_in + fan_out)), uniform bound = sqrt(3) std.
"""
import math

import numpy as np

from ..function import no_grad
from ..random import default_generator


def calculate_gain(nonlinearity, param=None):
    """The recommended gain: relu sqrt(2), tanh 5/3, leaky_relu sqrt(2 / (1 + a^2)), else 1."""
    if nonlinearity in ("linear", "identity", "sigmoid") or nonlinearity.startswith("conv"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def calculate_fan_in_and_fan_out(tensor):
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor of 2 or more dimensions, got shape {tensor.shape}")
    receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor, mode):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    return fan_in if mode == "fan_in" else fan_out


def _fill(tensor, draw):
    """Write ``draw(shape)`` into the tensor in place (nothing to write on the meta device)."""
    if tensor.device == "meta":
        return tensor
    with no_grad():
        tensor.array[...] = np.asarray(draw(tensor.shape)).astype(tensor.dtype, copy=False)
    return tensor


def uniform_(tensor, a=0.0, b=1.0):
    return _fill(tensor, lambda shape: default_generator().uniform(a, b, shape))


def normal_(tensor, mean=0.0, std=1.0):
    return _fill(tensor, lambda shape: default_generator().normal(mean, std, shape))


def constant_(tensor, value):
    return _fill(tensor, lambda shape: np.full(shape, value))


def zeros_(tensor):
    return constant_(tensor, 0)


def ones_(tensor):
    return constant_(tensor, 1)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode)))


def xavier_uniform_(tensor, gain=1.0):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain=1.0):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))
