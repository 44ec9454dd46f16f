"""Direct convolution in register tiles (float32): kh x kw kernels of SIZES, stride 1, dilation 1,
one group, padding 0 to k - 1 on each side.

Every pass is a correlation of zero-padded planes stored Wq wide, as in ``direct_conv``: with
f = i Wq + j the "wide" position of output (i, j) (only j < ow kept), tap (c, u, v) of output
f reads plane c at f + u Wq + v. For a correlation of planes P (rows oh + kh - 1) into an output
of width ow, Wq = ow + kw - 1:

    Y[o, f]   = b[o] + sum_(c,u,v) K[o, c, u, v] Xq[c, f + u Wq + v]           (forward)
    dX[c, f]  = sum_(o,u,v) K[o, c, kh-1-u, kw-1-v] dYq[o, f + u Wq + v]       (dX, Wq = W + kw - 1)
    dK[o, c, u, v] = sum_(f < L) dYq[o, g0 + f] Xq[c, f + u Wq + v],  g0 = (kh-1-ph) Wq + kw-1-pw

Xq is x after ph zero rows and pw zero columns, dYq is dy after kh-1-ph rows and kw-1-pw columns
(the "full" padding), both Wq = W + kw - 1 wide in the backward pass; dYq is zero at every
position that is not an output, so the wide positions add nothing to dK (L = (oh - 1) Wq + ow).

Forward and dX run ``register_tiles.correlate_tile``: TILE_ROWS output channels (8 with AVX-512)
x TILE_LANES wide positions (32) summed over all input channels and taps in vector registers,
the tiles of each block of channels in turn over chunks of TILE_CHUNK positions (which stay in
L1 between blocks). dK runs ``weight_grad_tile``: WEIGHT_GRAD_ROWS output channels (2) x up to 9
taps of one input channel in vector registers over all wide positions of an image. Batch 64
on 2 Zen4 cores, ms (GFLOP/s), ``direct_conv``'s blocked loops / tiles: forward 16->32 3x3 at
32x32 5.0-6.3 / 3.2 (188), 32->64 at 14x14 4.5-5.6 / 2.6 (178); backward (dX, dK, db) 8.0 / 7.2
and 7.9 / 6.5.

The backward pass is one kernel over shares of the images (``tasks.run``), each share adding
its images' dK and db to partial sums of its own (float64), summed in share order; an image
holding a NaN or inf is left to ``direct_conv``'s exact sum over the output positions (a wide
position's 0 x inf would be NaN).
"""
import functools

import numpy as np
from numba import literally, njit

from . import tasks
from .direct_conv import _cache_aligned, _fill_planes, balanced, image_parts, run_backward
from .elementary import row_sum
from .register_tiles import LANES, TILE_LANES, TILE_ROWS, WEIGHT_GRAD_ROWS, correlate_tile, weight_grad_tile

SIZES = ((3, 3), (5, 5))  # kernel windows with tiles of their own

#: fewest output channels for which a small layer (at most direct_conv.MAX_WEIGHTS weights)
#: takes the tiles rather than direct_conv's per-row loops: fwd+bwd at batch 64 (ms, per-row /
#: tiles) 1->32 3x3 at 28x28 (FashionCNN's first layer, no dX) 1.97 / 0.95 (batch 256: 5.5 /
#: 4.4), 3->16 at 32x32 1.85 / 1.84; with fewer outputs (4->8 at 16x16: 0.72 / 0.41) the per-row
#: loops stay, whose first call compiles faster: a first conv + batch norm + pooling step on
#: 4->8 with a cold cache took 3.9-4.1 s through them and 4.1-4.4 s through the tiles.
MIN_OUTPUTS = 16

TILE_CHUNK = 8 * TILE_LANES  # wide positions swept by every block of output channels in turn


def supported(weight_shape, stride, padding, dilation, groups):
    """Whether the tiles compute this convolution (float32 only; see the module docstring)."""
    kernel = tuple(weight_shape[2:])
    return (kernel in SIZES and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1) and groups == 1
            and all(0 <= p < k for p, k in zip(padding, kernel)))


def conv2d_forward(x, weight, bias, padding):
    """Y = K * X + b (float32); bias (O,) or None."""
    n_out, kh, kw = weight.shape[0], weight.shape[2], weight.shape[3]
    out_size = tuple(s + 2 * p - k + 1 for s, p, k in zip(x.shape[2:], padding, (kh, kw)))
    y = np.empty((x.shape[0], n_out) + out_size, dtype=x.dtype)
    shift = np.zeros(n_out, dtype=x.dtype) if bias is None else bias
    return _correlate(x, weight, shift, padding, y)


def conv2d_backward(x, weight, dy, padding, need_dx=True, need_dw=True):
    """(dx, dweight, dbias) (float32), dx / dweight None when not needed."""
    kh, kw = weight.shape[2:]
    flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))  # K[o, c, kh-1-u, kw-1-v]
    return run_backward(_kernels(kh, kw)[1], _packed(flipped), x, weight, dy, padding, need_dx, need_dw,
                        WEIGHT_GRAD_ROWS)


def _correlate(x, weight, bias, padding, y):
    """y[n, o] = bias[o] + sum_(c,u,v) weight[o, c, u, v] Xp[n, c, i + u, j + v], Xp: x after
    padding[0] zero rows and padding[1] zero columns. Returns y."""
    n_batch, (n_out, _, kh, kw) = x.shape[0], weight.shape
    parts = image_parts(-(-n_out // TILE_ROWS), n_batch)
    tasks.run(_kernels(kh, kw)[0], n_batch * parts, x, _packed(weight), bias, padding[0], padding[1], parts, y,
              balance=balanced(x.shape, weight.shape, y.shape[2:]))
    return y


def _packed(weight):
    """(O, C, kh, kw) -> flat (ceil(O / TILE_ROWS), C, kh kw, TILE_ROWS): each tile's kernels, tap
    t = kw u + v, output channel last; the missing channels of the last tile are zero."""
    n_out, channels, kh, kw = weight.shape
    n_tiles = -(-n_out // TILE_ROWS)
    packed = np.zeros((n_tiles * TILE_ROWS, channels, kh * kw), dtype=weight.dtype)
    packed[:n_out] = weight.reshape(n_out, channels, kh * kw)
    return np.ascontiguousarray(packed.reshape(n_tiles, TILE_ROWS, channels, kh * kw).transpose(0, 2, 3, 1)).reshape(-1)


@njit(inline="always")
def _rounded(length, step):
    return -(-length // step) * step


@njit(cache=True)
def _correlate_blocks(kh, kw, stack, size, wq, channels, kernels, bias, first_block, last_block, out, acc):
    """out[o] = bias[o] + the kh x kw correlation of planes stack[c size:] (Wq wide, followed by the
    tiles' slack) with the tile-packed kernels of blocks [first_block, last_block); ``acc``:
    TILE_ROWS x length floats per block."""
    n_out, oh, ow = out.shape
    length = _rounded((oh - 1) * wq + ow, TILE_LANES)
    for chunk in range(0, length, TILE_CHUNK):
        for block in range(first_block, last_block):
            rows = (block - first_block) * TILE_ROWS * length
            for start in range(chunk, min(chunk + TILE_CHUNK, length), TILE_LANES):
                correlate_tile(literally(kh), literally(kw), kernels, block * channels * kh * kw * TILE_ROWS, stack,
                               start, size, wq, channels, acc, rows + start, length)
    for o in range(first_block * TILE_ROWS, min(last_block * TILE_ROWS, n_out)):
        channel, shift = out[o], bias[o]
        for i in range(oh):
            row, src = channel[i], acc[(o - first_block * TILE_ROWS) * length + i * wq:]
            for j in range(ow):
                row[j] = src[j] + shift


@njit(inline="always")
def _stack_of(count, rows, wq, dtype):
    """Zeroed planes (count, size) of ``rows`` rows Wq wide in one cache-aligned stack, and the
    flat stack with the tiles' slack after them."""
    size = _rounded(rows * wq + LANES, LANES)
    stack = _cache_aligned(count * size + rows * wq + 2 * TILE_LANES, dtype)
    stack[:] = 0.0
    return stack, stack[:count * size].reshape(count, size)


@functools.lru_cache(maxsize=None)
def _kernels(kh, kw):
    """(correlate, backward): the task kernels of ``_correlate`` and ``conv2d_backward`` for a
    kh x kw window, compiled around its tiles."""
    taps = kh * kw

    @njit(cache=True, nogil=True)
    def correlate(share, first, last, x, kernels, bias, top, left, parts, y):
        """Tasks (image n, part of its blocks of TILE_ROWS output channels) = divmod(t, parts)."""
        channels = x.shape[1]
        n_out, oh, ow = y.shape[1:]
        n_blocks = -(-n_out // TILE_ROWS)
        wq = ow + kw - 1
        stack, planes = _stack_of(channels, oh + kh - 1, wq, x.dtype)
        length = _rounded((oh - 1) * wq + ow, TILE_LANES)
        acc = _cache_aligned(-(-n_blocks // parts) * TILE_ROWS * length, x.dtype)  # a part's blocks
        for task in range(first, last):
            n, part = task // parts, task % parts
            if task == first or part == 0:
                _fill_planes(x[n], top, left, wq, planes)
            _correlate_blocks(kh, kw, stack, planes.shape[1], wq, channels, kernels, bias, part * n_blocks // parts,
                             (part + 1) * n_blocks // parts, y[n], acc)

    @njit(cache=True, nogil=True)
    def backward(share, first, last, x, flipped_kernels, dy, ph, pw, need_dx, need_dw, dx, dweight_parts,
                 dbias_parts, nonfinite):
        """dx[n] (when need_dx) for the images first <= n < last, and their dK and db added to this
        share's part (an image holding a NaN or inf is flagged in ``nonfinite`` instead)."""
        channels, height, width = x.shape[1:]
        n_out, oh, ow = dy.shape[1:]
        wq = width + kw - 1
        grad_stack, grad_planes = _stack_of(dweight_parts.shape[1], height + kh - 1, wq, x.dtype)
        stack, planes = _stack_of(channels, height + kh - 1, wq, x.dtype)
        size = planes.shape[1]
        length = _rounded((oh - 1) * wq + ow, LANES)
        start = (kh - 1 - ph) * wq + kw - 1 - pw  # g0: where output (0, 0) sits in dYq
        n_blocks = -(-channels // TILE_ROWS)
        acc = _cache_aligned(n_blocks * TILE_ROWS * _rounded((height - 1) * wq + width, TILE_LANES), x.dtype)
        no_bias = np.zeros(channels, dtype=x.dtype)
        dweight, dbias = dweight_parts[share].reshape(-1), dbias_parts[share]
        for n in range(first, last):
            _fill_planes(dy[n], kh - 1 - ph, kw - 1 - pw, wq, grad_planes[:n_out])
            for o in range(n_out):
                dbias[o] += row_sum(dy[n, o].reshape(-1))
            if need_dw and not _fill_planes(x[n], ph, pw, wq, planes):
                nonfinite[n] = True
            elif need_dw:
                for o in range(0, dweight_parts.shape[1], WEIGHT_GRAD_ROWS):
                    for c in range(channels):
                        weight_grad_tile(kh, kw, grad_stack, o * size + start, size, stack, c * size, wq, length,
                                         dweight, (o * channels + c) * taps, channels * taps)
            if need_dx:
                _correlate_blocks(kh, kw, grad_stack, size, wq, n_out, flipped_kernels, no_bias, np.int64(0), n_blocks,
                                 dx[n], acc)

    return correlate, backward
