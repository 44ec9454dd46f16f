"""Dense and shape layers: Linear, Identity, Flatten, Unflatten."""
import math

import numpy as np

from . import functional as F
from . import init
from .conv import named_errors
from .module import Module
from .parameter import Parameter


class Linear(Module):
    """y = x W^T + b, W of shape (out_features, in_features).

    Init as PyTorch: W, b ~ U(-1/sqrt(in_features), 1/sqrt(in_features))
    (kaiming_uniform_ with a = sqrt(5)).
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dtype=dtype))
        self.bias = Parameter(np.empty(self.out_features, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features) if self.in_features else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        with named_errors(self):
            return F.linear(input, self.weight, self.bias)

    @property
    def macs_per_output(self):
        """Multiply-accumulates per output value (read by minidl.summary)."""
        return self.in_features

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Module):
    """y = x. Constructor arguments are accepted and ignored, as in PyTorch."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Flatten(Module):
    """Flattens axes start_dim..end_dim into one: (N, C, H, W) -> (N, C H W)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Splits axis ``dim`` into ``unflattened_size``: Unflatten(1, (C, H, W)) maps (N, C H W) to
    (N, C, H, W); one entry may be -1 (inferred)."""

    def __init__(self, dim, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = int(dim), tuple(int(n) for n in unflattened_size)

    def forward(self, input):
        dim = self.dim + input.ndim if self.dim < 0 else self.dim
        if not 0 <= dim < input.ndim:
            raise ValueError(f"{self!r}: dim {self.dim} is out of range for input of shape "
                             f"{tuple(input.shape)}")
        known = int(np.prod([n for n in self.unflattened_size if n != -1]))
        size = input.shape[dim]
        fits = (known > 0 and size % known == 0) if -1 in self.unflattened_size else size == known
        if not fits:
            raise ValueError(f"{self!r}: cannot split axis {dim} of size {size} (input of shape "
                             f"{tuple(input.shape)}) into {self.unflattened_size}")
        return input.reshape(tuple(input.shape[:dim]) + self.unflattened_size + tuple(input.shape[dim + 1:]))

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
