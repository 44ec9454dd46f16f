"""Convolution layers: Conv1d, Conv2d, TiledConv2d, LocallyConnected2d, ConvTranspose1d/2d (NCHW).

Arguments, defaults and initialisation as PyTorch: weight and bias ~ U(-1/sqrt(fan_in),
1/sqrt(fan_in)) with fan_in = the inputs one output unit sees (C / groups * kh * kw), which is
kaiming_uniform_ with a = sqrt(5).
"""
import contextlib
import math

import numpy as np

from . import functional as F
from . import init
from .functional.conv import conv_output_size, pair, string_padding
from .functional.conv_transpose import transposed_output_size
from .module import Module
from .parameter import Parameter


@contextlib.contextmanager
def named_errors(layer):
    """Re-raise a shape or dtype error of the functional op with the layer (its repr) named first."""
    try:
        yield
    except (ValueError, TypeError) as error:
        kind = TypeError if isinstance(error, TypeError) else ValueError
        raise kind(f"{layer!r}: {error}") from error


def check_sizes(layer, minimum, **arguments):
    """Raise a ValueError naming ``layer`` and the argument when an int or tuple argument has an
    entry below ``minimum`` (a kernel_size of 0 would divide by zero in the init)."""
    for name, value in arguments.items():
        if min(value if isinstance(value, tuple) else (value,)) < minimum:
            raise ValueError(f"{layer}: {name} must be >= {minimum}, got {value}")


def _uniform_fan_in(parameter, fan_in):
    bound = 1.0 / math.sqrt(fan_in) if fan_in else 0.0
    init.uniform_(parameter, -bound, bound)


class Conv2d(Module):
    """Y[n, o] = b[o] + sum_c K[o, c] * X[n, c] (cross-correlation), weight (O, C / groups, kh, kw).

    ``padding``: an int, a tuple, "valid" (none) or "same" (output size = input size, stride 1;
    an odd total puts the extra zero on the right/bottom, as PyTorch). ``padding_mode``: only
    "zeros"; PyTorch's "reflect", "replicate" and "circular" raise NotImplementedError."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", dtype=np.float32):
        super().__init__()
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size, self.stride = self._tuple(kernel_size), self._tuple(stride)
        self.dilation = self._tuple(dilation)
        name = type(self).__name__
        if padding_mode in ("reflect", "replicate", "circular"):
            raise NotImplementedError(f"{name}: padding_mode={padding_mode!r} is not implemented in "
                                      f"minidl; only 'zeros' is (pad the input yourself otherwise)")
        if padding_mode != "zeros":
            raise ValueError(f"{name}: padding_mode must be one of 'zeros', 'reflect', 'replicate', "
                             f"'circular', got {padding_mode!r}")
        self.padding_mode = padding_mode
        check_sizes(name, 1, in_channels=self.in_channels, out_channels=self.out_channels,
                    groups=self.groups, kernel_size=self.kernel_size, stride=self.stride,
                    dilation=self.dilation)
        if isinstance(padding, str):
            string_padding(name, padding, self.kernel_size, self.stride, self.dilation)
            self.padding = padding
        else:
            self.padding = self._tuple(padding)
            check_sizes(name, 0, padding=self.padding)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"{name}: groups={groups} must divide in_channels "
                             f"({in_channels}) and out_channels ({out_channels})")
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        self.bias = Parameter(np.empty(self.out_channels, dtype=dtype)) if bias else None
        self.reset_parameters()

    _tuple = staticmethod(pair)
    _function = staticmethod(F.conv2d)

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            _uniform_fan_in(self.bias, self.macs_per_output)

    def forward(self, input):
        with named_errors(self):
            return self._function(input, self.weight, self.bias, self.stride, self.padding,
                                  self.dilation, self.groups)

    @property
    def macs_per_output(self):
        """Multiply-accumulates per output value (read by minidl.summary)."""
        return self.in_channels // self.groups * int(np.prod(self.kernel_size))

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * len(self.kernel_size):
            text += f", padding={self.padding}"
        if any(d != 1 for d in self.dilation):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text + ("" if self.bias is not None else ", bias=False")


class Conv1d(Conv2d):
    """Y[n, o] = b[o] + sum_c K[o, c] * X[n, c] over (N, C, L), weight (O, C / groups, k)."""

    _tuple = staticmethod(lambda value: (int(value[0]) if isinstance(value, (tuple, list)) else int(value),))
    _function = staticmethod(F.conv1d)


class TiledConv2d(Module):
    """Tiled convolution: output (i, j) uses kernel weight[:, i % th, j % tw], so only units a
    tile apart share weights. weight (O, th, tw, C, kh, kw), bias (O,); init U(+-1/sqrt(C kh kw))."""

    def __init__(self, in_channels, out_channels, kernel_size, tile_size, stride=1, padding=0,
                 bias=True, dtype=np.float32):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.tile_size = pair(kernel_size, "kernel_size"), pair(tile_size, "tile_size")
        self.stride, self.padding = pair(stride, "stride"), pair(padding, "padding")
        check_sizes("TiledConv2d", 1, in_channels=self.in_channels, out_channels=self.out_channels,
                    kernel_size=self.kernel_size, tile_size=self.tile_size, stride=self.stride)
        check_sizes("TiledConv2d", 0, padding=self.padding)
        shape = (self.out_channels,) + self.tile_size + (self.in_channels,) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        self.bias = Parameter(np.empty(self.out_channels, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        for parameter in (self.weight, self.bias):
            if parameter is not None:
                _uniform_fan_in(parameter, self.macs_per_output)

    def forward(self, input):
        with named_errors(self):
            return F.tiled_conv2d(input, self.weight, self.bias, self.stride, self.padding)

    @property
    def macs_per_output(self):
        return self.in_channels * int(np.prod(self.kernel_size))

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"tile_size={self.tile_size}, stride={self.stride}, padding={self.padding}"
                + ("" if self.bias is not None else ", bias=False"))


class LocallyConnected2d(Module):
    """Convolution without weight sharing: every output position (i, j) has its own kernel.
    weight (O, oh, ow, C, kh, kw), bias (O, oh, ow); init U(+-1/sqrt(C kh kw))."""

    def __init__(self, in_channels, out_channels, input_size, kernel_size, stride=1, padding=0,
                 bias=True, dtype=np.float32):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.input_size, self.kernel_size = pair(input_size, "input_size"), pair(kernel_size, "kernel_size")
        self.stride, self.padding = pair(stride, "stride"), pair(padding, "padding")
        check_sizes("LocallyConnected2d", 1, in_channels=self.in_channels, out_channels=self.out_channels,
                    input_size=self.input_size, kernel_size=self.kernel_size, stride=self.stride)
        check_sizes("LocallyConnected2d", 0, padding=self.padding)
        self.output_size = tuple(conv_output_size(*args) for args in zip(
            self.input_size, self.kernel_size, self.stride, self.padding))
        if min(self.output_size) < 1:
            raise ValueError(f"{type(self).__name__}: kernel {self.kernel_size} is larger than the padded "
                             f"input {tuple(n + 2 * p for n, p in zip(self.input_size, self.padding))}")
        positions = (self.out_channels,) + self.output_size
        self.weight = Parameter(np.empty(positions + (self.in_channels,) + self.kernel_size, dtype=dtype))
        self.bias = Parameter(np.empty(positions, dtype=dtype)) if bias else None
        self.reset_parameters()

    reset_parameters = TiledConv2d.reset_parameters
    macs_per_output = TiledConv2d.macs_per_output

    def forward(self, input):
        with named_errors(self):
            if input.ndim != 4 or tuple(input.shape[1:]) != (self.in_channels,) + self.input_size:
                raise ValueError(f"expected input of shape (N, {self.in_channels}, {self.input_size[0]}, "
                                 f"{self.input_size[1]}), got {tuple(input.shape)}")
            return F.locally_connected2d(input, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, input_size={self.input_size}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
                + ("" if self.bias is not None else ", bias=False"))


class ConvTranspose2d(Module):
    """The input gradient of a convolution as a layer: Y = fold(K'^T X) + b, with weight
    (in_channels, out_channels / groups, kh, kw) as PyTorch; output side
    (H - 1) s - 2 p + d (k - 1) + output_padding + 1. ``forward(input, output_size=None)``:
    an output_size (the spatial sizes, or with N and C in front) picks the output_padding
    that gives it, as PyTorch. Init as PyTorch: fan_in = out_channels / groups * kh * kw."""

    _tuple = staticmethod(pair)
    _function = staticmethod(F.conv_transpose2d)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 groups=1, bias=True, dilation=1, padding_mode="zeros", dtype=np.float32):
        super().__init__()
        name = type(self).__name__
        if padding_mode != "zeros":
            raise ValueError(f"{name}: only padding_mode='zeros' is supported (as PyTorch), "
                             f"got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size, self.stride = self._tuple(kernel_size), self._tuple(stride)
        self.padding, self.dilation = self._tuple(padding), self._tuple(dilation)
        self.output_padding = self._tuple(output_padding)
        check_sizes(name, 1, in_channels=self.in_channels, out_channels=self.out_channels,
                    groups=self.groups, kernel_size=self.kernel_size, stride=self.stride,
                    dilation=self.dilation)
        check_sizes(name, 0, padding=self.padding, output_padding=self.output_padding)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"{name}: groups={groups} must divide in_channels "
                             f"({in_channels}) and out_channels ({out_channels})")
        if any(op >= max(s, d) for op, s, d in zip(self.output_padding, self.stride, self.dilation)):
            raise ValueError(f"{name}: output_padding {self.output_padding} must be smaller than "
                             f"stride {self.stride} or dilation {self.dilation}")
        shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        self.bias = Parameter(np.empty(self.out_channels, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            _uniform_fan_in(self.bias, self.out_channels // self.groups * int(np.prod(self.kernel_size)))

    def _output_padding(self, input, output_size):
        """PyTorch's rule: output_size (spatial, or with N and C first) minus the smallest output
        size must lie in [0, stride)."""
        if output_size is None:
            return self.output_padding
        dims = len(self.kernel_size)
        output_size = tuple(int(n) for n in output_size)[-dims:]
        smallest = tuple(transposed_output_size(n, k, s, p, 0, d) for n, k, s, p, d in zip(
            input.shape[2:], self.kernel_size, self.stride, self.padding, self.dilation))
        if len(output_size) != dims or any(not 0 <= o - m < s for o, m, s in
                                           zip(output_size, smallest, self.stride)):
            largest = tuple(m + s - 1 for m, s in zip(smallest, self.stride))
            raise ValueError(f"requested an output size of {output_size}, but valid sizes range from "
                             f"{smallest} to {largest} (for an input of shape {tuple(input.shape)})")
        return tuple(o - m for o, m in zip(output_size, smallest))

    def forward(self, input, output_size=None):
        with named_errors(self):
            return self._function(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups, self.dilation)

    @property
    def macs_per_output(self):
        """Multiply-accumulates per output value, on average (each input value is spread over
        out_channels / groups * kh * kw outputs; there are prod(stride) outputs per input)."""
        return (self.in_channels // self.groups * int(np.prod(self.kernel_size))
                // int(np.prod(self.stride)))

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        for name, default in (("padding", 0), ("output_padding", 0), ("dilation", 1)):
            if getattr(self, name) != (default,) * len(self.kernel_size):
                text += f", {name}={getattr(self, name)}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text + ("" if self.bias is not None else ", bias=False")


class ConvTranspose1d(ConvTranspose2d):
    """Transposed convolution over (N, C, L), weight (in_channels, out_channels / groups, k)."""

    _tuple = staticmethod(Conv1d._tuple)
    _function = staticmethod(F.conv_transpose1d)
