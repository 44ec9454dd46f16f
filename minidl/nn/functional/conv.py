"""Convolutions as Functions: conv1d, conv2d, tiled_conv2d, locally_connected2d (NCHW).

All share the unfold + GEMM kernels of ``kernels/<device>/conv.py``; the formulas are in the
docstrings below and in the kernel modules.
"""
import numpy as np

from ...device import like
from ...function import Function, require_float
from ...kernels import for_device
from ...meta import MetaArray


def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    """Output length along one axis: floor((H + 2p - d (k - 1) - 1) / s) + 1."""
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def pair(value, name="argument"):
    """An int or a 2-sequence as a tuple of two ints."""
    values = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(values) != 2:
        raise ValueError(f"{name} must be an int or a pair, got {value!r}")
    return tuple(int(v) for v in values)


def output_size_2d(name, input_shape, kernel, stride, padding, dilation=(1, 1)):
    """(oh, ow) for an (N, C, H, W) input; a clear error when the kernel exceeds the padded input
    or a stride is not positive."""
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ValueError(f"{name}: stride and dilation must be >= 1 and padding >= 0, got "
                         f"stride={stride}, padding={padding}, dilation={dilation}")
    spatial = tuple(input_shape[2:])
    padded = tuple(n + 2 * p for n, p in zip(spatial, padding))
    reach = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if any(r > p for r, p in zip(reach, padded)):
        dilated = f" (dilated to {reach})" if reach != tuple(kernel) else ""
        raise ValueError(f"{name}: kernel {tuple(kernel)}{dilated} is larger than the padded input "
                         f"{padded} (input of shape {tuple(input_shape)}, padding {padding})")
    return tuple(conv_output_size(*args) for args in zip(spatial, kernel, stride, padding, dilation))


def _as_2d(array):
    """(N, C, L) -> (N, C, 1, L): a 1-d convolution is a 2-d one of height 1."""
    return array[:, :, None, :]


class Convolution(Function):
    """Y[o, i, j] = b[o] + sum_{c,u,v} K[o, c, u, v] Xp[c, i s + u d, j s + v d] (c in o's group).
    Backward with X' the unfolded input: dK' = dY X'^T, db = sum dY, dX = fold(K'^T dY).
    Options are 2-tuples; 3-d inputs (conv1d) run as height-1 images. An empty batch (N = 0)
    gives an empty output and zero weight gradients without calling a kernel."""

    @staticmethod
    def infer(x, weight, bias, stride, padding, dilation, groups):
        squeeze = x.ndim == 3
        shape = x.shape[:2] + (1,) + x.shape[2:] if squeeze else x.shape
        kernel = (1,) + weight.shape[2:] if squeeze else weight.shape[2:]
        out = output_size_2d("conv", shape, kernel, stride, padding, dilation)
        return MetaArray((x.shape[0], weight.shape[0]) + (out[1:] if squeeze else out), x.dtype)

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        ctx.squeeze = x.ndim == 3
        x = np.ascontiguousarray(_as_2d(x) if ctx.squeeze else x, like=like(x))
        weight = np.ascontiguousarray(_as_2d(weight) if ctx.squeeze else weight, dtype=x.dtype, like=like(x))
        bias = None if bias is None else np.ascontiguousarray(bias, dtype=x.dtype, like=like(x))
        out_size = output_size_2d("conv", x.shape, weight.shape[2:], stride, padding, dilation)
        ctx.save_for_backward(x, weight)
        ctx.options = (stride, padding, dilation, groups, bias is not None)
        if x.shape[0] == 0:
            y = np.zeros((0, weight.shape[0]) + out_size, dtype=x.dtype, like=like(x))
        else:
            y = for_device(ctx.device, "conv").conv2d_forward(x, weight, bias, stride, padding,
                                                              dilation, groups, out_size)
        return y[:, :, 0, :] if ctx.squeeze else y

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_arrays
        stride, padding, dilation, groups, has_bias = ctx.options
        grad = np.ascontiguousarray(_as_2d(grad) if ctx.squeeze else grad, dtype=x.dtype, like=like(x))
        if x.shape[0] == 0:
            dx, dw = np.zeros_like(x), np.zeros_like(weight)
            db = np.zeros(weight.shape[0], dtype=x.dtype, like=like(x))
        else:
            dx, dw, db = for_device(ctx.device, "conv").conv2d_backward(
                x, weight, grad, stride, padding, dilation, groups,
                ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        if ctx.squeeze:
            dx = None if dx is None else dx[:, :, 0, :]
            dw = None if dw is None else dw[:, :, 0, :]
        return dx, dw, (db if has_bias and ctx.needs_input_grad[2] else None)


def _check_conv(name, input, weight, bias, groups, dims):
    require_float(name, input)
    if input.ndim != dims + 2 or weight.ndim != dims + 2:
        layout = "(N, C, L)" if dims == 1 else "(N, C, H, W)"
        raise ValueError(f"{name}: expected input {layout} and a weight of {dims + 2} dimensions, got "
                         f"input of shape {tuple(input.shape)} and weight of shape {tuple(weight.shape)}")
    if groups < 1 or input.shape[1] % groups or weight.shape[0] % groups:
        raise ValueError(f"{name}: groups={groups} must divide the input channels ({input.shape[1]}) "
                         f"and the output channels ({weight.shape[0]})")
    if input.shape[1] != weight.shape[1] * groups:
        raise ValueError(f"{name}: input of shape {tuple(input.shape)} has {input.shape[1]} channels, "
                         f"but weight of shape {tuple(weight.shape)} with groups={groups} expects "
                         f"{weight.shape[1] * groups}")
    _check_bias(name, bias, weight.shape[:1])


def _check_bias(name, bias, shape):
    if bias is not None and tuple(bias.shape) != tuple(shape):
        raise ValueError(f"{name}: bias must have shape {tuple(shape)}, got {tuple(bias.shape)}")


def string_padding(name, padding, kernel, stride, dilation):
    """PyTorch's padding="valid" (none) and "same" (output size = input size; stride 1 only),
    per axis of ``kernel``: returns (symmetric padding, crop). "same" pads t = d (k - 1) in all,
    t // 2 before and t - t // 2 after; an odd t runs as symmetric padding t // 2 + 1 and drops
    the first output (crop 1), which is exactly the extra zero on the right/bottom."""
    if padding == "valid":
        return (0,) * len(kernel), (0,) * len(kernel)
    if padding != "same":
        raise ValueError(f"{name}: padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
    if any(s != 1 for s in stride):
        raise ValueError(f"{name}: padding='same' is not supported for strided convolutions "
                         f"(stride={tuple(stride)})")
    totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
    return tuple(t // 2 + t % 2 for t in totals), tuple(t % 2 for t in totals)


def _cropped(output, crop):
    """``output`` without the first crop[i] positions of spatial axis i."""
    if not any(crop):
        return output
    return output[(slice(None), slice(None)) + tuple(slice(c, None) for c in crop)]


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-d cross-correlation of (N, C, H, W) with weight (O, C / groups, kh, kw), bias (O,);
    padding an int, a pair, "same" or "valid"."""
    _check_conv("conv2d", input, weight, bias, groups, 2)
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    if isinstance(padding, str):
        padding, crop = string_padding("conv2d", padding, weight.shape[2:], stride, dilation)
    else:
        padding, crop = pair(padding, "padding"), (0, 0)
    output_size_2d("conv2d", input.shape, weight.shape[2:], stride, padding, dilation)
    return _cropped(Convolution.apply(input, weight, bias, stride=stride, padding=padding,
                                      dilation=dilation, groups=int(groups)), crop)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-d cross-correlation of (N, C, L) with weight (O, C / groups, k), bias (O,); padding an
    int, "same" or "valid"."""
    _check_conv("conv1d", input, weight, bias, groups, 1)
    stride, dilation = (1, _single(stride)), (1, _single(dilation))
    if isinstance(padding, str):
        padding, crop = string_padding("conv1d", padding, (1, weight.shape[2]), stride, dilation)
    else:
        padding, crop = (0, _single(padding)), (0, 0)
    output_size_2d("conv1d", (input.shape[0], input.shape[1], 1, input.shape[2]),
                   (1, weight.shape[2]), stride, padding, dilation)
    return _cropped(Convolution.apply(input, weight, bias, stride=stride, padding=padding,
                                      dilation=dilation, groups=int(groups)), crop[1:])


def _single(value):
    return int(value[0]) if isinstance(value, (tuple, list)) else int(value)


# ---------------------------------------------------------------- tiled and locally connected

def _shared_output(name, input, weight, stride, padding):
    """Checks common to the 6-d weights (O, a, b, C, kh, kw); returns (oh, ow)."""
    require_float(name, input)
    if input.ndim != 4 or weight.ndim != 6:
        raise ValueError(f"{name}: expected input (N, C, H, W) and weight (O, a, b, C, kh, kw), got "
                         f"input of shape {tuple(input.shape)} and weight of shape {tuple(weight.shape)}")
    if input.shape[1] != weight.shape[3]:
        raise ValueError(f"{name}: input of shape {tuple(input.shape)} has {input.shape[1]} channels, "
                         f"but weight of shape {tuple(weight.shape)} expects {weight.shape[3]}")
    return output_size_2d(name, input.shape, weight.shape[4:], stride, padding)


class TiledConvolution(Function):
    """Y[o, i, j] = b[o] + sum_{c,u,v} K[o, i mod th, j mod tw, c, u, v] Xp[c, i s + u, j s + v];
    dK[o, a, b] = sum over outputs of class (a, b) of dY X'^T, db = sum dY, dX = fold(K^T dY)."""

    @staticmethod
    def infer(x, weight, bias, stride, padding):
        out = output_size_2d("tiled_conv2d", x.shape, weight.shape[4:], stride, padding)
        return MetaArray((x.shape[0], weight.shape[0]) + out, x.dtype)

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        x = np.ascontiguousarray(x, like=like(x))
        weight = np.ascontiguousarray(weight, dtype=x.dtype, like=like(x))
        out_size = output_size_2d("tiled_conv2d", x.shape, weight.shape[4:], stride, padding)
        ctx.save_for_backward(x, weight)
        ctx.options = (stride, padding, bias is not None)
        return for_device(ctx.device, "tiled_conv").tiled_conv2d_forward(x, weight, bias, stride,
                                                                         padding, out_size)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_arrays
        stride, padding, has_bias = ctx.options
        dx, dw, dbias = for_device(ctx.device, "tiled_conv").tiled_conv2d_backward(
            x, weight, np.ascontiguousarray(grad, dtype=x.dtype, like=like(x)), stride, padding,
            ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        db = dbias.sum(axis=(1, 2)) if has_bias and ctx.needs_input_grad[2] else None
        return dx, dw, db


def tiled_conv2d(input, weight, bias=None, stride=1, padding=0):
    """Tiled convolution: weight (O, th, tw, C, kh, kw); output (i, j) uses weight[:, i % th, j % tw]
    (units a tile apart share weights); bias (O,)."""
    stride, padding = pair(stride, "stride"), pair(padding, "padding")
    out = _shared_output("tiled_conv2d", input, weight, stride, padding)
    tile = tuple(weight.shape[1:3])
    if tile[0] > out[0] or tile[1] > out[1] or min(tile) < 1:
        raise ValueError(f"tiled_conv2d: tile {tile} of weight {tuple(weight.shape)} does not fit the "
                         f"output {out} of input {tuple(input.shape)}: each side must be 1..output size")
    _check_bias("tiled_conv2d", bias, weight.shape[:1])
    return TiledConvolution.apply(input, weight, bias, stride=stride, padding=padding)


class LocallyConnected(Function):
    """Y[o, i, j] = b[o, i, j] + sum_{c,u,v} K[o, i, j, c, u, v] Xp[c, i s + u, j s + v];
    dK[o, i, j] = sum_n dY[n, o, i, j] X'[n, :, (i, j)], db = sum_n dY, dX = fold(K^T dY)."""

    @staticmethod
    def infer(x, weight, bias, stride, padding):
        return MetaArray((x.shape[0],) + weight.shape[:3], x.dtype)

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        x = np.ascontiguousarray(x, like=like(x))
        weight = np.ascontiguousarray(weight, dtype=x.dtype, like=like(x))
        ctx.save_for_backward(x, weight)
        ctx.options = (stride, padding, bias is not None)
        return for_device(ctx.device, "local").locally_connected2d_forward(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_arrays
        stride, padding, has_bias = ctx.options
        dx, dw, db = for_device(ctx.device, "local").locally_connected2d_backward(
            x, weight, np.ascontiguousarray(grad, dtype=x.dtype, like=like(x)), stride, padding,
            ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        return dx, dw, (db if has_bias and ctx.needs_input_grad[2] else None)


def locally_connected2d(input, weight, bias=None, stride=1, padding=0):
    """Locally connected layer, no weight sharing: weight (O, oh, ow, C, kh, kw), bias (O, oh, ow)."""
    stride, padding = pair(stride, "stride"), pair(padding, "padding")
    out = _shared_output("locally_connected2d", input, weight, stride, padding)
    if tuple(weight.shape[1:3]) != out:
        raise ValueError(f"locally_connected2d: weight of shape {tuple(weight.shape)} holds kernels for "
                         f"an output of {tuple(weight.shape[1:3])}, but input of shape "
                         f"{tuple(input.shape)} gives an output of {out}")
    _check_bias("locally_connected2d", bias, (weight.shape[0],) + out)
    return LocallyConnected.apply(input, weight, bias, stride=stride, padding=padding)
