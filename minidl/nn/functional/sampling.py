"""Resampling and padding: interpolate (nearest, linear, bilinear), pad (constant, reflect,
replicate, circular), pixel_shuffle / pixel_unshuffle. PyTorch's arguments and index rules."""
import math

import numpy as np

from ...device import like
from ...function import Function, require_float
from ...kernels import for_device
from ...meta import MetaArray
from ...tensor import Tensor

# ---------------------------------------------------------------- interpolate


def _source_tables(in_size, out_size, mode, align_corners, scale_factor, dtype):
    """Per output index i: the two input indices (i0, i1) it reads and the weight a of i1.

    nearest: i0 = i1 = min(floor(i scale), H - 1), a = 0, scale = 1 / scale_factor (or H / out),
    computed in float32 as PyTorch. linear: src = i (H - 1) / (out - 1) with align_corners, else
    max((i + 1/2) scale - 1/2, 0); i0 = floor(src), i1 = min(i0 + 1, H - 1), a = src - i0."""
    dst = np.arange(out_size)
    if mode == "nearest":
        scale = np.float32(1.0 / scale_factor if scale_factor else in_size / out_size)
        i0 = np.minimum(np.floor(dst.astype(np.float32) * scale).astype(np.int64), in_size - 1)
        return i0, i0, np.zeros(out_size, dtype=dtype)
    if align_corners:
        scale = dtype.type((in_size - 1) / (out_size - 1) if out_size > 1 else 0.0)
        src = scale * dst.astype(dtype)
    else:
        scale = dtype.type(1.0 / scale_factor if scale_factor else in_size / out_size)
        src = np.maximum(scale * (dst.astype(dtype) + dtype.type(0.5)) - dtype.type(0.5), 0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, np.clip(src - i0, 0, 1).astype(dtype)


def _inverse_tables(in_size, i0, i1, a):
    """The transposed map as CSR over the input index h: taps starts[h]..starts[h + 1] list the
    output indices that read h, with their weights (zero weights left out)."""
    outputs = np.concatenate([np.arange(len(i0))] * 2)
    inputs = np.concatenate([i0, i1])
    weights = np.concatenate([1 - a, a])
    keep = weights != 0
    order = np.argsort(inputs[keep], kind="stable")
    inputs, outputs, weights = inputs[keep][order], outputs[keep][order], weights[keep][order]
    starts = np.searchsorted(inputs, np.arange(in_size + 1)).astype(np.int64)
    return starts, outputs.astype(np.int64), weights


class Interpolate(Function):
    """Y[i, j] = sum of the (at most 2 x 2) taps (1 - a_i | a_i) (1 - b_j | b_j) X[i0|i1, j0|j1];
    dX[h, w] = sum over the taps that read (h, w) of their weight times dY (kernels/*/sampling).
    ``tables``: (i0, i1, a) per axis; 3-d inputs run as height-1 images."""

    @staticmethod
    def infer(x, tables):
        return MetaArray(x.shape[:2] + tuple(len(t[0]) for t in tables[-(x.ndim - 2):]), x.dtype)

    @staticmethod
    def forward(ctx, x, tables):
        ctx.squeeze, ctx.tables, ctx.size = x.ndim == 3, tables, x.shape[2:]
        x = np.ascontiguousarray(x[:, :, None] if ctx.squeeze else x, like=like(x))
        y = for_device(ctx.device, "sampling").interpolate_forward(x, *tables[0], *tables[1])
        return y[:, :, 0] if ctx.squeeze else y

    @staticmethod
    def backward(ctx, grad):
        grad = np.ascontiguousarray(grad[:, :, None] if ctx.squeeze else grad, like=like(grad))
        sizes = (1,) + ctx.size if ctx.squeeze else ctx.size
        inverse = [_inverse_tables(n, *t) for n, t in zip(sizes, ctx.tables)]
        dx = for_device(ctx.device, "sampling").interpolate_backward(grad, *inverse[0], *inverse[1])
        return dx[:, :, 0] if ctx.squeeze else dx


_MODES = {3: ("nearest", "linear"), 4: ("nearest", "bilinear")}


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None):
    """Resize (N, C, L) or (N, C, H, W) to ``size`` or by ``scale_factor`` (output
    floor(H scale_factor)): mode "nearest", "linear" (3-d) or "bilinear" (4-d), with PyTorch's
    source indices (``_source_tables``)."""
    require_float("interpolate", input)
    if input.ndim not in _MODES or mode not in _MODES[input.ndim]:
        modes = " | ".join(f"{m} for {d}-d input" for d, ms in _MODES.items() for m in ms)
        raise NotImplementedError(f"interpolate: mode {mode!r} on input of shape {tuple(input.shape)} "
                                  f"is not implemented; supported: {modes}")
    if align_corners is not None and mode == "nearest":
        raise ValueError("interpolate: align_corners can only be set with the interpolating modes "
                         "linear | bilinear")
    dims = input.ndim - 2
    spatial = tuple(input.shape[2:])
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor")
    if size is not None:
        size = (int(size),) * dims if np.isscalar(size) else tuple(int(n) for n in size)
        factors = (None,) * dims
    else:
        factors = (float(scale_factor),) * dims if np.isscalar(scale_factor) else tuple(map(float, scale_factor))
        size = tuple(int(math.floor(n * f)) for n, f in zip(spatial, factors))
        if recompute_scale_factor:
            factors = (None,) * dims
    if len(size) != dims or len(factors) != dims or min(size) < 1:
        raise ValueError(f"interpolate: input of shape {tuple(input.shape)} needs {dims} positive "
                         f"output sizes, got size={size}, scale_factor={scale_factor}")
    dtype = np.dtype(input.dtype)
    tables = tuple(_source_tables(n, out, mode, bool(align_corners), f, dtype)
                   for n, out, f in zip(spatial, size, factors))
    if dims == 1:
        tables = ((np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, dtype)),) + tables
    return Interpolate.apply(input, tables=tables)


# ---------------------------------------------------------------- pad


def _pad_index(size, before, after, mode):
    """The source index of each padded position along one axis (-1: the constant value):
    position k of the output reads input index k - before, mapped back inside by the mode
    (reflect: mirrored without repeating the edge, replicate: clamped, circular: modulo)."""
    k = np.arange(-before, size + after)
    if mode == "constant":
        return np.where((k >= 0) & (k < size), k, -1)
    if mode == "replicate":
        return np.clip(k, 0, size - 1)
    if mode == "circular":
        return k % size
    period = 2 * (size - 1)  # reflect
    k = np.abs(k) % period if period else np.zeros_like(k)
    return np.where(k < size, k, period - k)


class Pad(Function):
    """y[k] = x[src(k)] along each padded axis (value where src(k) = -1);
    dx[h] = sum of dy[k] over the positions k with src(k) = h (``_pad_index``)."""

    @staticmethod
    def infer(x, indices, value):
        shape = list(x.shape)
        for axis, src in indices:
            shape[axis] = len(src)
        return MetaArray(tuple(shape), x.dtype)

    @staticmethod
    def forward(ctx, x, indices, value):
        ctx.indices, ctx.shape = indices, x.shape
        y = x
        for axis, src in indices:
            lead = (slice(None),) * axis
            y = y[lead + (np.maximum(src, 0),)]
            if (src < 0).any():
                y[lead + (np.flatnonzero(src < 0),)] = value
        return np.ascontiguousarray(y, like=like(x))

    @staticmethod
    def backward(ctx, grad):
        shape = list(ctx.shape)
        for axis, src in reversed(ctx.indices):
            lead = (slice(None),) * axis
            shape[axis] = ctx.shape[axis]
            dx = np.zeros(tuple(shape[:axis + 1]) + grad.shape[axis + 1:], dtype=grad.dtype, like=like(grad))
            inside = np.flatnonzero(src >= 0)
            np.add.at(dx, lead + (src[inside],), grad[lead + (inside,)])
            grad = dx
        return grad


def pad(input, pad, mode="constant", value=None):
    """Pad the last len(pad) // 2 axes: pad = (left of the last axis, right of it, left of the
    one before, ...); negative amounts crop (constant mode). Modes as PyTorch: "constant"
    (``value``, default 0), "reflect" (pads < the axis size), "replicate", "circular"
    (pads <= the axis size)."""
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise ValueError(f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}")
    if not isinstance(input, Tensor):
        raise TypeError(f"pad: argument 'input' must be Tensor, not {type(input).__name__}")
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: padding {pad} must have an even length of at most 2 * {input.ndim} "
                         f"for input of shape {tuple(input.shape)}")
    if mode != "constant" and value:
        raise ValueError(f"pad: padding mode {mode!r} doesn't take in value argument")
    indices = []
    for i in range(len(pad) // 2):
        axis = input.ndim - 1 - i
        size, before, after = input.shape[axis], pad[2 * i], pad[2 * i + 1]
        limit = {"reflect": size - 1, "circular": size, "replicate": None, "constant": None}[mode]
        if mode != "constant" and (min(before, after) < 0 or size == 0
                                   or (limit is not None and max(before, after) > limit)):
            raise ValueError(f"pad: {mode} padding ({before}, {after}) does not fit dimension {axis} of "
                             f"size {size} in input of shape {tuple(input.shape)} (each pad must be "
                             f"{'<' if mode == 'reflect' else '<='} the size, and >= 0)")
        if size + before + after < 0:
            raise ValueError(f"pad: padding ({before}, {after}) leaves a negative size for dimension "
                             f"{axis} of input of shape {tuple(input.shape)}")
        indices.append((axis, _pad_index(size, before, after, mode)))
    fill = 0 if value is None else value
    return Pad.apply(input, indices=tuple(indices), value=fill)


# ---------------------------------------------------------------- pixel shuffle


def pixel_shuffle(input, upscale_factor):
    """(N, C r^2, H, W) -> (N, C, H r, W r): Y[n, c, h r + i, w r + j] = X[n, c r^2 + i r + j, h, w]
    (a reshape and a permutation, whose gradients move dY back the same way)."""
    r = int(upscale_factor)
    *lead, channels, height, width = input.shape
    if input.ndim < 3 or r < 1 or channels % (r * r):
        raise ValueError(f"pixel_shuffle: input of shape {tuple(input.shape)} needs (*, C r^2, H, W) "
                         f"channels divisible by upscale_factor^2 = {r * r}")
    k = len(lead)
    x = input.reshape(*lead, channels // (r * r), r, r, height, width)
    order = tuple(range(k + 1)) + (k + 3, k + 1, k + 4, k + 2)
    return x.permute(*order).reshape(*lead, channels // (r * r), height * r, width * r)


def pixel_unshuffle(input, downscale_factor):
    """(N, C, H r, W r) -> (N, C r^2, H, W), the inverse of ``pixel_shuffle``."""
    r = int(downscale_factor)
    *lead, channels, height, width = input.shape
    if input.ndim < 3 or r < 1 or height % r or width % r:
        raise ValueError(f"pixel_unshuffle: input of shape {tuple(input.shape)} needs (*, C, H, W) with "
                         f"H and W divisible by downscale_factor = {r}")
    k = len(lead)
    x = input.reshape(*lead, channels, height // r, r, width // r, r)
    order = tuple(range(k + 1)) + (k + 2, k + 4, k + 1, k + 3)
    return x.permute(*order).reshape(*lead, channels * r * r, height // r, width // r)
