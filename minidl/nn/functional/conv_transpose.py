"""Transposed convolutions, conv_transpose1d/2d (NCHW), on the convolution kernels.

A convolution with weight K (as the matrix K', O x (C kh kw)) maps X to Y = K' unfold(X); its
input gradient is dX = fold(K'^T dY). The transposed convolution *is* that input gradient,
applied to its input X (N, C_in, H, W) with its weight K (C_in, C_out / groups, kh, kw) -- the
layout of a convolution from C_out to C_in channels, as PyTorch stores it:
    Y = fold(K'^T X) + b,   Y[n, o, i s - p + u d, j s - p + v d] += K[c, o, u, v] X[n, c, i, j]
and its output has (H - 1) s - 2 p + d (k - 1) + output_padding + 1 rows (columns alike).
Backward, from the adjoint of fold (unfold):
    dX = K' unfold(dY)            (a plain convolution of dY with K, stride s, padding p)
    dK' = X unfold(dY)^T          (the convolution's weight gradient, dY as its input, X as its dY)
    db = sum_(n, i, j) dY
So no new kernel: forward = ``conv2d_backward`` (input gradient only), dX = ``conv2d_forward``,
dK = ``conv2d_backward`` (weight gradient only), on either device; dX and dK together by
``conv2d_forward_and_weight_grad``, which unfolds dY once where the cpu runs it in chunks.
"""
import numpy as np

from ...device import like
from ...function import Function, require_float
from ...kernels import for_device
from ...meta import MetaArray
from .conv import _as_2d, _check_bias, _single, pair


def transposed_output_size(size, kernel_size, stride=1, padding=0, output_padding=0, dilation=1):
    """Output length along one axis: (H - 1) s - 2 p + d (k - 1) + output_padding + 1."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1


def _output_size(x_shape, kernel, stride, padding, output_padding, dilation):
    return tuple(transposed_output_size(*args) for args in
                 zip(x_shape[2:], kernel, stride, padding, output_padding, dilation))


class TransposedConvolution(Function):
    """Y = fold(K'^T X) + b;  dX = K' unfold(dY),  dK' = X unfold(dY)^T,  db = sum dY (module
    docstring). Options are 2-tuples; 3-d inputs (conv_transpose1d) run as height-1 images."""

    @staticmethod
    def infer(x, weight, bias, stride, padding, output_padding, dilation, groups):
        squeeze = x.ndim == 3
        shape = x.shape[:2] + (1,) + x.shape[2:] if squeeze else x.shape
        kernel = (1,) + weight.shape[2:] if squeeze else weight.shape[2:]
        out = _output_size(shape, kernel, stride, padding, output_padding, dilation)
        return MetaArray((x.shape[0], weight.shape[1] * groups) + (out[1:] if squeeze else out), x.dtype)

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, output_padding, dilation, groups):
        ctx.squeeze = x.ndim == 3
        x = np.ascontiguousarray(_as_2d(x) if ctx.squeeze else x, like=like(x))
        weight = np.ascontiguousarray(_as_2d(weight) if ctx.squeeze else weight, dtype=x.dtype, like=like(x))
        out_size = _output_size(x.shape, weight.shape[2:], stride, padding, output_padding, dilation)
        out_shape = (x.shape[0], weight.shape[1] * groups) + out_size
        ctx.save_for_backward(x, weight)
        ctx.options = (stride, padding, dilation, groups, bias is not None)
        if x.shape[0] == 0:
            y = np.zeros(out_shape, dtype=x.dtype, like=like(x))
        else:
            # the convolution Y -> X whose input gradient this is; only Y's shape is read
            conv_input = np.empty(out_shape, dtype=x.dtype, like=like(x))
            y, _, _ = for_device(ctx.device, "conv").conv2d_backward(
                conv_input, weight, x, stride, padding, dilation, groups, True, False)
        if bias is not None:
            for_device(ctx.device, "conv").add_channel_bias(y, np.asarray(bias, dtype=x.dtype, like=like(x)))
        return y[:, :, 0, :] if ctx.squeeze else y

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_arrays
        stride, padding, dilation, groups, has_bias = ctx.options
        grad = np.ascontiguousarray(_as_2d(grad) if ctx.squeeze else grad, dtype=x.dtype, like=like(x))
        need_dx, need_dw = ctx.needs_input_grad[:2]
        dx = dw = None
        if x.shape[0] == 0:
            dx, dw = np.zeros_like(x), np.zeros_like(weight)
        else:
            kernels = for_device(ctx.device, "conv")
            if need_dx and need_dw:  # both from one unfold of dY where the cpu chunks it
                dx, dw = kernels.conv2d_forward_and_weight_grad(grad, weight, x, stride, padding, dilation,
                                                                groups, x.shape[2:])
            elif need_dx:
                dx = kernels.conv2d_forward(grad, weight, None, stride, padding, dilation, groups,
                                            x.shape[2:])
            elif need_dw:
                _, dw, _ = kernels.conv2d_backward(grad, weight, x, stride, padding, dilation,
                                                   groups, False, True)
        db = for_device(ctx.device, "conv").bias_grad(grad) if has_bias and ctx.needs_input_grad[2] else None
        if ctx.squeeze:
            dx = None if dx is None else dx[:, :, 0, :]
            dw = None if dw is None else dw[:, :, 0, :]
        return dx, dw, db


def _check(name, input, weight, bias, groups, dims, stride, padding, output_padding, dilation):
    require_float(name, input)
    if input.ndim != dims + 2 or weight.ndim != dims + 2:
        layout = "(N, C, L)" if dims == 1 else "(N, C, H, W)"
        raise ValueError(f"{name}: expected input {layout} and a weight of {dims + 2} dimensions, got "
                         f"input of shape {tuple(input.shape)} and weight of shape {tuple(weight.shape)}")
    if groups < 1 or weight.shape[0] % groups:
        raise ValueError(f"{name}: groups={groups} must divide the input channels ({weight.shape[0]})")
    if input.shape[1] != weight.shape[0]:
        raise ValueError(f"{name}: input of shape {tuple(input.shape)} has {input.shape[1]} channels, "
                         f"but weight of shape {tuple(weight.shape)} (in_channels, out_channels / "
                         f"groups, ...) expects {weight.shape[0]}")
    _check_bias(name, bias, (weight.shape[1] * groups,))
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0 or min(output_padding) < 0:
        raise ValueError(f"{name}: stride and dilation must be >= 1, padding and output_padding >= 0, "
                         f"got stride={stride}, padding={padding}, dilation={dilation}, "
                         f"output_padding={output_padding}")
    if any(op >= max(s, d) for op, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"{name}: output_padding {output_padding} must be smaller than stride "
                         f"{stride} or dilation {dilation}")
    kernel = (1,) * (2 - dims) + tuple(weight.shape[2:])
    spatial = (1,) * (2 - dims) + tuple(input.shape[2:])
    out = _output_size((0, 0) + spatial, kernel, stride, padding, output_padding, dilation)
    if min(out) < 1:
        raise ValueError(f"{name}: input of shape {tuple(input.shape)} with kernel {tuple(weight.shape[2:])}, "
                         f"stride {stride[2 - dims:]} and padding {padding[2 - dims:]} gives an empty "
                         f"output {out[2 - dims:]}")


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed 2-d convolution of (N, C_in, H, W) with weight (C_in, C_out / groups, kh, kw),
    bias (C_out,): the input gradient of conv2d (module docstring)."""
    stride, padding, dilation = pair(stride, "stride"), pair(padding, "padding"), pair(dilation, "dilation")
    output_padding = pair(output_padding, "output_padding")
    _check("conv_transpose2d", input, weight, bias, groups, 2, stride, padding, output_padding, dilation)
    return TransposedConvolution.apply(input, weight, bias, stride=stride, padding=padding,
                                       output_padding=output_padding, dilation=dilation,
                                       groups=int(groups))


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed 1-d convolution of (N, C_in, L) with weight (C_in, C_out / groups, k), bias (C_out,)."""
    stride, padding, dilation = (1, _single(stride)), (0, _single(padding)), (1, _single(dilation))
    output_padding = (0, _single(output_padding))
    _check("conv_transpose1d", input, weight, bias, groups, 1, stride, padding, output_padding, dilation)
    return TransposedConvolution.apply(input, weight, bias, stride=stride, padding=padding,
                                       output_padding=output_padding, dilation=dilation,
                                       groups=int(groups))
