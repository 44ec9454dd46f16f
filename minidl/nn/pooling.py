"""Pooling layers: MaxPool1d, MaxPool2d, AvgPool1d, AvgPool2d, AdaptiveAvgPool2d (NCHW)."""
from . import functional as F
from .conv import named_errors
from .module import Module


class _Pool(Module):
    _function = None  # the functional op, set by each subclass

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding

    def _options(self):
        return {}

    def forward(self, input):
        with named_errors(self):
            return self._function(input, self.kernel_size, self.stride, self.padding, **self._options())

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool):
    """Y[n, c, i, j] = max of X[n, c] over the window at (i s - p, j s - p); stride defaults to
    kernel_size."""

    _function = staticmethod(F.max_pool2d)


class MaxPool1d(_Pool):
    """max_pool2d over (N, C, L)."""

    _function = staticmethod(F.max_pool1d)


class AvgPool2d(_Pool):
    """Mean of each window; count_include_pad counts the padding zeros in the divisor."""

    _function = staticmethod(F.avg_pool2d)

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True):
        super().__init__(kernel_size, stride, padding)
        self.count_include_pad = count_include_pad

    def _options(self):
        return {"count_include_pad": self.count_include_pad}


class AvgPool1d(AvgPool2d):
    """avg_pool2d over (N, C, L)."""

    _function = staticmethod(F.avg_pool1d)


class AdaptiveAvgPool2d(Module):
    """Mean over windows [floor(i H / oh), ceil((i + 1) H / oh)) to give output_size (oh, ow)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        with named_errors(self):
            return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"
