"""Batch normalisation layers: BatchNorm1d ((N, C) or (N, C, L)) and BatchNorm2d ((N, C, H, W)).

As PyTorch: weight = 1, bias = 0; buffers running_mean = 0, running_var = 1 and
num_batches_tracked; in training the batch statistics normalise (biased variance) and update
the running ones, r = (1 - momentum) r + momentum stat with the unbiased variance
(momentum=None: the cumulative average, momentum = 1 / num_batches_tracked); in eval the
running statistics normalise.
"""
import numpy as np

from . import functional as F
from . import init
from ..tensor import Tensor
from .conv import named_errors
from .module import Module
from .parameter import Parameter


class _BatchNorm(Module):
    _dims = ()  # accepted input ranks

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 dtype=np.float32):
        super().__init__()
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(np.empty(self.num_features, dtype=dtype))
            self.bias = Parameter(np.empty(self.num_features, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(self.num_features, dtype=dtype)))
            self.register_buffer("running_var", Tensor(np.ones(self.num_features, dtype=dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)
        self.reset_parameters()

    def reset_running_stats(self):
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            init.zeros_(self.num_batches_tracked)

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, input):
        with named_errors(self):
            if input.ndim not in self._dims or input.shape[1] != self.num_features:
                raise ValueError(f"expected input with {self.num_features} channels and "
                                 f"{' or '.join(map(str, self._dims))} dimensions, got shape "
                                 f"{tuple(input.shape)}")
            factor = 0.0 if self.momentum is None else self.momentum
            tracking = self.training and self.track_running_stats and input.device != "meta"
            if tracking and self.momentum is None:
                factor = 1.0 / (float(self.num_batches_tracked.array) + 1.0)
            use_batch = self.training or not self.track_running_stats
            output = F.batch_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                                  use_batch, factor, self.eps)
            if tracking:  # counted only once the batch passed every check
                self.num_batches_tracked.array += 1
            return output

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Per-feature normalisation of (N, C) or (N, C, L)."""

    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Per-channel normalisation of (N, C, H, W)."""

    _dims = (4,)


class LayerNorm(Module):
    """Normalise each sample over its trailing ``normalized_shape`` axes (statistics per sample,
    no running statistics), then y = weight xh + bias elementwise over normalized_shape
    (weight = 1, bias = 0 at init, as PyTorch). Formulas in ``F.layer_norm``'s Function."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, dtype=np.float32):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
        self.normalized_shape = tuple(int(n) for n in shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(np.empty(self.normalized_shape, dtype=dtype))
        else:
            self.register_parameter("weight", None)
        if elementwise_affine and bias:
            self.bias = Parameter(np.empty(self.normalized_shape, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input):
        with named_errors(self):
            return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class GroupNorm(Module):
    """Split the C channels of (N, C, *) into ``num_groups`` groups and normalise each sample's
    group; then y = weight_c xh + bias_c per channel (weight = 1, bias = 0 at init)."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, dtype=np.float32):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels={num_channels} must be divisible by "
                             f"num_groups={num_groups}")
        self.num_groups, self.num_channels = int(num_groups), int(num_channels)
        self.eps, self.affine = eps, affine
        if affine:
            self.weight = Parameter(np.empty(self.num_channels, dtype=dtype))
            self.bias = Parameter(np.empty(self.num_channels, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, input):
        with named_errors(self):
            if input.ndim < 2 or input.shape[1] != self.num_channels:
                raise ValueError(f"expected input (N, {self.num_channels}, *), got shape "
                                 f"{tuple(input.shape)}")
            return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
