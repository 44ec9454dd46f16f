"""LowRankLinear: a dense layer whose weight is a product U V W of rank at most r."""
import math

import numpy as np

from . import functional as F
from . import init
from .conv import named_errors
from .module import Module
from .parameter import Parameter


class LowRankLinear(Module):
    """y = U V W x + b with U (out_features, r), V (r, r), W (r, in_features).

    r (in + r + out) weights instead of in * out; the product's rank is at most r. A fresh
    layer starts as two Linear layers (W, then U, each with Linear's init) with V = identity.
    ``from_linear`` / ``factorize_linear`` make one from a trained Linear by SVD.
    """

    def __init__(self, in_features, out_features, rank, bias=True, dtype=np.float32):
        super().__init__()
        self.in_features, self.out_features, self.rank = int(in_features), int(out_features), int(rank)
        if not 1 <= self.rank <= min(self.in_features, self.out_features):
            raise ValueError(f"LowRankLinear: rank must be in 1..min(in_features, out_features) = "
                             f"{min(self.in_features, self.out_features)}, got {rank}")
        self.U = Parameter(np.empty((self.out_features, self.rank), dtype=dtype))
        self.V = Parameter(np.empty((self.rank, self.rank), dtype=dtype))
        self.W = Parameter(np.empty((self.rank, self.in_features), dtype=dtype))
        self.bias = Parameter(np.empty(self.out_features, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.W, a=math.sqrt(5))
        init.kaiming_uniform_(self.U, a=math.sqrt(5))
        init.zeros_(self.V)
        if self.V.device != "meta":
            np.fill_diagonal(self.V.array, 1)
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        with named_errors(self):
            return F.low_rank_linear(input, self.U, self.V, self.W, self.bias)

    def full_weight(self):
        """The (out_features, in_features) matrix U V W."""
        return self.U.array @ self.V.array @ self.W.array

    @classmethod
    def from_linear(cls, linear, rank):
        """The best rank-r approximation of a Linear layer (Eckart-Young), by SVD.

        With A = P diag(s) Q^T (singular values s_1 >= s_2 >= ...):
            U = P[:, :r] (left singular vectors),  V = diag(s_1..s_r),  W = Q[:, :r]^T;
        U V W is the truncated SVD, the rank-r matrix closest to A in the Frobenius and the
        spectral norm (the Frobenius error is sqrt(sum_(k > r) s_k^2)). At full rank r =
        min(in, out) it is A itself. The bias is copied.
        """
        weight = linear.weight.array
        layer = cls(linear.in_features, linear.out_features, rank, bias=linear.bias is not None,
                    dtype=weight.dtype)
        left, singular, right_t = np.linalg.svd(weight.astype(np.float64), full_matrices=False)
        for param, value in ((layer.U, left[:, :rank]), (layer.V, np.diag(singular[:rank])),
                             (layer.W, right_t[:rank])):
            param.array[...] = value
        if linear.bias is not None:
            layer.bias.array[...] = linear.bias.array
        return layer

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"rank={self.rank}, bias={self.bias is not None}")


def factorize_linear(linear, rank):
    """``LowRankLinear.from_linear(linear, rank)``: a trained Linear's best rank-r factorisation."""
    return LowRankLinear.from_linear(linear, rank)
