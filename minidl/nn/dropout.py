"""Dropout layers: in training, zero entries (Dropout) or whole channels (Dropout1d, Dropout2d)
with probability p and scale the rest by 1/(1-p); in eval mode the identity. Masks are drawn
from minidl's generator (``minidl.manual_seed``). ``inplace`` is accepted for PyTorch's
signature; the output is computed out of place."""
from . import functional as F
from .module import Module


class Dropout(Module):
    _function = staticmethod(F.dropout)

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: p must be between 0 and 1, got {p}")
        self.p, self.inplace = p, bool(inplace)

    def forward(self, input):
        return self._function(input, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}" + (", inplace=True" if self.inplace else "")


class Dropout1d(Dropout):
    """Zeroes whole channels of (N, C, L) or (C, L) inputs."""

    _function = staticmethod(F.dropout1d)


class Dropout2d(Dropout):
    """Zeroes whole channels of (N, C, H, W) inputs (3-d inputs read as (N, C, L), as PyTorch)."""

    _function = staticmethod(F.dropout2d)
