"""Activation layers; each wraps its functional form (formulas in minidl.ops)."""
from . import functional as F
from .module import Module


class ReLU(Module):
    """y = max(x, 0)."""

    def forward(self, input):
        return F.relu(input)


class LeakyReLU(Module):
    """y = x for x > 0, negative_slope * x otherwise."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, input):
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    """y = 1 / (1 + e^-x)."""

    def forward(self, input):
        return F.sigmoid(input)


class Tanh(Module):
    """y = tanh x."""

    def forward(self, input):
        return F.tanh(input)


class Softmax(Module):
    """y_i = e^(x_i) / sum_k e^(x_k) along ``dim``."""

    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.softmax(input, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """y = log softmax(x) along ``dim``."""

    def forward(self, input):
        return F.log_softmax(input, self.dim)


class GELU(Module):
    """y = x Phi(x) (Phi the standard normal CDF); ``approximate='tanh'``: Phi(x) ~
    (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2."""

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    """y = x / (1 + e^-x) (swish)."""

    def forward(self, input):
        return F.silu(input)


class ELU(Module):
    """y = x for x > 0, alpha (e^x - 1) otherwise."""

    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = alpha

    def forward(self, input):
        return F.elu(input, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class Softplus(Module):
    """y = log(1 + e^(beta x)) / beta; y = x where beta x > threshold."""

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, input):
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class Mish(Module):
    """y = x tanh(softplus(x))."""

    def forward(self, input):
        return F.mish(input)


class Hardtanh(Module):
    """y = min(max(x, min_val), max_val)."""

    def __init__(self, min_val=-1.0, max_val=1.0):
        super().__init__()
        self.min_val, self.max_val = min_val, max_val

    def forward(self, input):
        return F.hardtanh(input, self.min_val, self.max_val)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}"
