"""Direct convolution in register tiles (float32): kh x kw kernels of SIZES, stride 1 or 2,
dilation 1, one group, padding 0 to k - 1 on each side.

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

Stride 2 runs on phase planes, P_pq[c, m, n] = Xp[c, 2m + p, 2n + q] (p, q < 2): the output is
the sum over the four phases of stride-1 correlations with the taps (2du + p, 2dv + q) of each,

    Y[o, f]   = b[o] + sum_(p,q) sum_(c,du,dv) K[o, c, 2du + p, 2dv + q] P_pq[c, f + du Wq + dv]

and dX's phase (p, q) is a stride-1 correlation of dYq (dY after ceil(kh / 2) - 1 zero rows
and ceil(kw / 2) - 1 zero columns) with the taps that reach it,

    dXp[c, 2m + p, 2n + q] = sum_(o,du,dv) K[o, c, 2du + p, 2dv + q] dY[o, m - du, n - dv],

dK[o, c, 2du + p, 2dv + q] = sum_f dYq[o, g0 + f] P_pq[c, f + du Wq + dv]; the tiles take the
taps of each phase as ``register_tiles.tap_groups`` lists them, no zero taps. A transposed
convolution is such a convolution run backwards (nn.functional.conv_transpose): the bench's
ConvTranspose2d(32, 16, 3, stride 2) at batch 64, per pass (ms, im2col chunks / tiles),
forward of the convolution it transposes 1.73 / 0.77 (193 GFLOP/s), whole layer fwd+bwd 5.1 /
2.6 on 2 Zen 5 cores (with the fills below and ConvTranspose2d's bias on conv's loops). The
four phases' sums then go into dX together, row by row, in vector stores (``_interleave_phases``):
0.93 -> 0.51 ms for that dX (296 GFLOP/s), 2.6-2.8 -> 2.1-2.2 ms for the layer.

Filling the planes costs as much as a pass's tiles on small images unless its loops vectorise:
rows copied in loops of constant steps (stride 2 as two interleaved streams), no division per
row, and the finiteness test apart from them (``direct_conv.finite``): 64 images of
(16, 32, 32) on one Zen 5 core 0.61 -> 0.15 ms (stride 2: 0.74 -> 0.29).

3x3 stride-1 layers that ``register_winograd.chosen`` picks run their passes by Winograd F(2x2,
3x3) on the same tiles instead (``register_winograd``), from the same planes.

The backward pass is one kernel over shares of the images (``tasks.run``), each share adding
its images' dK and db to partial sums of its own (float64), summed in share order; an image
holding a NaN or inf is left to ``direct_conv``'s exact sum over the output positions (a wide
position's 0 x inf would be NaN).
"""
import functools

import numpy as np
from numba import literally, njit, types
from numba.extending import overload

from . import register_winograd, tasks
from .direct_conv import _cache_aligned, balanced, finite, image_parts, run_backward
from .elementary import row_sum
from .register_tiles import (LANES, TILE_LANES, TILE_ROWS, WEIGHT_GRAD_ROWS, correlate_tile, interleave_lanes,
                             tap_groups, weight_grad_tile)

SIZES = ((3, 3), (5, 5))  # kernel windows with tiles of their own
STRIDES = ((1, 1), (2, 2))

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
    return (kernel in SIZES and tuple(stride) in STRIDES and tuple(dilation) == (1, 1) and groups == 1
            and all(0 <= p < k for p, k in zip(padding, kernel)))


def conv2d_forward(x, weight, bias, stride, padding, winograd=False):
    """Y = K * X + b (float32); bias (O,) or None. ``winograd``: a 3x3 stride-1 layer by
    register_winograd's F(2x2, 3x3) tiles (an image holding a NaN or inf, or every image when
    the weight or bias does, by the direct tiles)."""
    n_out, kh, kw = weight.shape[0], weight.shape[2], weight.shape[3]
    out_size = tuple((s + 2 * p - k) // stride[0] + 1 for s, p, k in zip(x.shape[2:], padding, (kh, kw)))
    y = np.empty((x.shape[0], n_out) + out_size, dtype=x.dtype)
    shift = np.zeros(n_out, dtype=x.dtype) if bias is None else bias
    if winograd and finite(np.ascontiguousarray(weight)) and finite(shift):
        return _winograd_correlate(x, weight, shift, padding, y)
    return _correlate(x, weight, shift, stride[0], padding, y)


def conv2d_backward(x, weight, dy, stride, padding, need_dx=True, need_dw=True, winograd_dx=False, winograd_dk=False):
    """(dx, dweight, dbias) (float32), dx / dweight None when not needed. ``winograd_dx``: dX of a
    3x3 stride-1 layer by register_winograd's tiles (an image of dY holding a NaN or inf, or
    every image when the weight does, by the direct tiles); ``winograd_dk``: its dK too (padding
    at most 1; images holding a NaN or inf by the direct tiles)."""
    kh, kw = weight.shape[2:]
    step = stride[0]
    transposed = weight.transpose(1, 0, 2, 3)  # dX's rows are x's channels
    dx_kernels = winograd_kernels = np.zeros(0, dtype=x.dtype)
    if need_dx and step == 1:  # the correlation of dYq with the flipped kernel, K[o, c, kh-1-u, kw-1-v]
        dx_kernels = _packed(transposed[:, :, ::-1, ::-1], 1, -1)
        if winograd_dx and finite(np.ascontiguousarray(weight)):
            winograd_kernels = register_winograd.transformed_kernels(transposed[:, :, ::-1, ::-1])
    elif need_dx:  # each phase of dX by the taps that reach it
        dx_kernels = np.concatenate([_packed(transposed, step, phase) for phase in range(step * step)])
    winograd_dk = bool(winograd_dk and need_dw and step == 1 and max(padding) <= 1)
    return run_backward(_kernels(kh, kw, step)[1], (dx_kernels, winograd_kernels, winograd_dk), x, weight, dy,
                        padding, need_dx, need_dw, WEIGHT_GRAD_ROWS, tuple(stride))


def _correlate(x, weight, bias, stride, padding, y):
    """y[n, o] = bias[o] + sum_(c,u,v) weight[o, c, u, v] Xp[n, c, s i + u, s j + v], Xp: x after
    padding[0] zero rows and padding[1] zero columns. Returns y."""
    n_batch, (n_out, _, kh, kw) = x.shape[0], weight.shape
    parts = image_parts(-(-n_out // TILE_ROWS), n_batch)
    tasks.run(_kernels(kh, kw, stride)[0], n_batch * parts, x, _packed(weight, stride, -1), bias,
              padding[0], padding[1], parts, y, balance=balanced(x.shape, weight.shape, y.shape[2:]))
    return y


def _winograd_correlate(x, weight, bias, padding, y):
    """``_correlate`` at stride 1 by register_winograd's tiles; the images holding a NaN or inf by
    the direct tiles. Returns y."""
    nonfinite = np.zeros(x.shape[0], dtype=np.bool_)
    per_image = register_winograd.blocks(*y.shape[2:])
    tasks.run(_winograd_blocks, x.shape[0] * per_image, x, register_winograd.transformed_kernels(weight), bias,
              padding[0], padding[1], per_image, y, nonfinite, balance=balanced(x.shape, weight.shape, y.shape[2:]))
    held = np.flatnonzero(nonfinite)
    if held.size:
        y[held] = _correlate(x[held], weight, bias, 1, padding, np.empty_like(y[held]))
    return y


@njit(cache=True, nogil=True)
def _winograd_blocks(share, first, last, x, kernels, bias, top, left, per_image, y, nonfinite):
    """Tasks (image n, block of its tiles) = divmod(t, per_image) of ``_winograd_correlate``: the
    image's planes as wide and tall as its tiles' windows reach (2 ceil(o / 2) + 2); an image
    holding a NaN or inf is flagged in ``nonfinite`` and skipped."""
    channels = x.shape[1]
    oh, ow = y.shape[2:]
    wq, rows = 2 * -(-ow // 2) + 2, 2 * -(-oh // 2) + 2
    stack, planes = _stack_of(channels, rows, wq, x.dtype)
    v, m = register_winograd.workspaces(channels, x.dtype)
    for task in range(first, last):
        n, block = task // per_image, task % per_image
        if task == first or block == 0:
            nonfinite[n] = not finite(x[n])
            if not nonfinite[n]:
                _fill_phases(x[n], top, left, 1, wq, rows, planes)
        if not nonfinite[n]:
            register_winograd.correlate(stack, planes.shape[1], wq, channels, kernels, bias, block, block + 1, y[n],
                                        v, m)


def _packed(weight, stride, phase):
    """(O, C, kh, kw) -> flat, for every tile of TILE_ROWS output channels in turn and in it for
    every group of ``tap_groups(kh, kw, stride, phase)``: (C, the group's taps, TILE_ROWS), output
    channel last; the missing channels of the last tile are zero. One gather (``_pack_order``):
    a group at a time took 27 us for a (32, 16, 3, 3) weight at stride 2."""
    n_out, channels, kh, kw = weight.shape
    n_tiles = -(-n_out // TILE_ROWS)
    rows = np.zeros((n_tiles * TILE_ROWS, channels * kh * kw), dtype=weight.dtype)
    rows[:n_out] = weight.reshape(n_out, -1)
    gathered = rows.reshape(n_tiles, TILE_ROWS, -1)[:, :, _pack_order(kh, kw, stride, phase, channels)]
    return np.ascontiguousarray(gathered.transpose(0, 2, 1)).reshape(-1)


@functools.lru_cache(maxsize=None)
def _pack_order(kh, kw, stride, phase, channels):
    """The flat (c, u, v) index of each weight ``_packed`` lists for one output channel: for each
    group of ``tap_groups``, for each channel, the group's taps."""
    return np.array([(c * kh + u) * kw + v for _, taps in tap_groups(kh, kw, stride, phase)
                     for c in range(channels) for u, v, _, _ in taps])


@njit(inline="always")
def _rounded(length, step):
    return -(-length // step) * step


@njit(cache=True)
def _correlate_tiles(kh, kw, stride, phase, taps, stack, size, wq, channels, kernels, kernel_base, first_block,
                     last_block, acc, length):
    """The tiles of ``tap_groups(kh, kw, stride, phase)`` (``taps`` in all) over the planes of
    ``stack`` (``size`` apart, Wq wide, followed by the tiles' slack) and the tile-packed kernels
    from kernel_base, for blocks [first_block, last_block) of output channels and ``length`` wide
    positions (a multiple of TILE_LANES): acc[(o - TILE_ROWS first_block) length + f] = output
    channel o's sum at wide position f."""
    for chunk in range(0, length, TILE_CHUNK):
        for block in range(first_block, last_block):
            acc_start = (block - first_block) * TILE_ROWS * length
            for start in range(chunk, min(chunk + TILE_CHUNK, length), TILE_LANES):
                correlate_tile(literally(kh), literally(kw), literally(stride), literally(phase), kernels,
                               kernel_base + block * channels * taps * TILE_ROWS, stack, start, size, wq, channels,
                               acc, acc_start + start, length)


@njit(cache=True)
def _correlate_blocks(kh, kw, stride, phase, taps, stack, size, wq, channels, kernels, kernel_base, bias, first_block,
                      last_block, out, acc, rows, cols):
    """``_correlate_tiles`` over rows x cols positions, then out[o, i, j] = bias[o] + position (i,
    j)'s sum. ``acc``: TILE_ROWS x length floats per block."""
    n_out = out.shape[0]
    length = _rounded((rows - 1) * wq + cols, TILE_LANES)
    _correlate_tiles(kh, kw, stride, phase, taps, stack, size, wq, channels, kernels, kernel_base, first_block,
                     last_block, acc, length)
    for o in range(first_block * TILE_ROWS, min(last_block * TILE_ROWS, n_out)):
        channel, shift = out[o], bias[o]
        for i in range(rows):
            row, src = channel[i], acc[(o - first_block * TILE_ROWS) * length + i * wq:]
            for j in range(cols):
                row[j] = src[j] + shift


def _transposed(stride, kh, kw, taps, phase_taps, taps_before, stack, size, wq, channels, kernels, bias, n_blocks,
                out, acc, rows, cols, ph, pw):
    """dX = the transposed correlation of the dYq planes in ``stack`` with ``conv2d_backward``'s
    dx_kernels, for a constant ``stride``: with stride 1 the correlation with the flipped kernel
    over rows x cols positions of x; with stride 2 its four phases (p, q), each by the taps that
    reach it into a quarter of ``acc``, then interleaved into dX row by row."""


@overload(_transposed, prefer_literal=True)
def _transposed_at(stride, kh, kw, taps, phase_taps, taps_before, stack, size, wq, channels, kernels, bias, n_blocks,
                   out, acc, rows, cols, ph, pw):
    if not isinstance(stride, types.IntegerLiteral):
        return None
    if stride.literal_value == 1:
        def unit(stride, kh, kw, taps, phase_taps, taps_before, stack, size, wq, channels, kernels, bias, n_blocks,
                 out, acc, rows, cols, ph, pw):
            _correlate_blocks(kh, kw, 1, -1, taps, stack, size, wq, channels, kernels, 0, bias, np.int64(0), n_blocks,
                              out, acc, rows, cols)
        return unit

    def phases(stride, kh, kw, taps, phase_taps, taps_before, stack, size, wq, channels, kernels, bias, n_blocks,
               out, acc, rows, cols, ph, pw):
        per_tap = n_blocks * TILE_ROWS * channels  # floats of ``kernels`` per tap of a phase
        quarter = acc.size // 4
        _phase_tiles(kh, kw, 0, phase_taps[0], taps_before[0] * per_tap, stack, size, wq, channels, kernels,
                     n_blocks, out.shape[1:], acc[:quarter], ph, pw)
        _phase_tiles(kh, kw, 1, phase_taps[1], taps_before[1] * per_tap, stack, size, wq, channels, kernels,
                     n_blocks, out.shape[1:], acc[quarter:], ph, pw)
        _phase_tiles(kh, kw, 2, phase_taps[2], taps_before[2] * per_tap, stack, size, wq, channels, kernels,
                     n_blocks, out.shape[1:], acc[2 * quarter:], ph, pw)
        _phase_tiles(kh, kw, 3, phase_taps[3], taps_before[3] * per_tap, stack, size, wq, channels, kernels,
                     n_blocks, out.shape[1:], acc[3 * quarter:], ph, pw)
        _interleave_phases(acc, quarter, wq, ph, pw, out)  # dX has no bias
    return phases


@njit(cache=True)
def _phase_tiles(kh, kw, phase, taps, kernel_base, stack, size, wq, channels, kernels, n_blocks, shape, acc, ph, pw):
    """Phase (p, q) = (phase // 2, phase % 2) of a stride-2 dX of ``shape`` (H, W) into ``acc``: the
    correlation of the dYq planes with the ``taps`` that reach it (``kernels`` from kernel_base),
    over the phase positions that hold x's (``_phase_span``), ``_phase_length`` wide."""
    top, _ = _phase_span(shape[0], ph, phase >> 1)
    left, _ = _phase_span(shape[1], pw, phase & 1)
    _correlate_tiles(kh, kw, 2, phase, taps, stack[top * wq + left:], size, wq, channels, kernels, kernel_base,
                     np.int64(0), n_blocks, acc, _phase_length(shape, wq, ph, pw, phase))


@njit(inline="always")
def _phase_length(shape, wq, ph, pw, phase):
    """Wide positions of phase (p, q)'s sums: its rows x cols positions, rounded to whole tiles."""
    rows = _phase_span(shape[0], ph, phase >> 1)[1]
    return _rounded((rows - 1) * wq + _phase_span(shape[1], pw, phase & 1)[1], TILE_LANES)


@njit(cache=True)
def _interleave_phases(acc, quarter, wq, ph, pw, out):
    """out[o, r, c] = phase ((r + ph) % 2, (c + pw) % 2)'s sum at ((r + ph) // 2, (c + pw) //
    2), from the four phases' sums ``_phase_tiles`` left ``quarter`` floats apart in ``acc``. A row
    of out takes its even and odd columns from two phases, LANES of each at a time
    (``interleave_lanes``). One phase at a time, every other column, the stores took 0.56 of the
    1.62 ms of a ConvTranspose2d(32, 16, 3, stride 2) forward pass at batch 64 on one core."""
    n_out, height, width = out.shape
    flat = out.reshape(-1)  # flat indices: a view a row cost more than its 32 stores
    even_q, odd_q = pw & 1, (1 + pw) & 1  # the phases of columns 2k and 2k + 1
    even_left, odd_left = _phase_span(width, pw, even_q)[0], _phase_span(width, pw, odd_q)[0]
    vectors = (width >> 1) - (width >> 1) % LANES  # column pairs stored LANES at a time
    for r in range(height):
        p = (r + ph) & 1
        i = ((r + ph) >> 1) - _phase_span(height, ph, p)[0]
        even_length = _phase_length((height, width), wq, ph, pw, 2 * p + even_q)
        odd_length = _phase_length((height, width), wq, ph, pw, 2 * p + odd_q)
        even_base = (2 * p + even_q) * quarter + i * wq + (pw >> 1) - even_left
        odd_base = (2 * p + odd_q) * quarter + i * wq + ((1 + pw) >> 1) - odd_left
        for o in range(n_out):
            start = (o * height + r) * width
            even, odd = even_base + o * even_length, odd_base + o * odd_length
            for k in range(0, vectors, LANES):
                interleave_lanes(acc, even + k, acc, odd + k, flat, start + 2 * k)
            for k in range(vectors, width >> 1):
                flat[start + 2 * k] = acc[even + k]
                flat[start + 2 * k + 1] = acc[odd + k]
            if width & 1:
                flat[start + width - 1] = acc[even + (width >> 1)]


@njit(inline="always")
def _phase_span(length, pad, phase):
    """(first, count) of the phase-``phase`` positions m (2m + phase - pad = a position of x) that
    fall inside x's ``length``: dX's phase tiles start there, not on padding."""
    first = max(0, (pad - phase + 1) >> 1)
    return first, ((length - 1 + pad - phase) >> 1) - first + 1


@njit(cache=True)
def _fill_phases(image, top, left, stride, wq, rows, planes):
    """planes[(s p + q) C + c] (flat, ``rows`` rows Wq wide) = phase (p, q) of image[c] (s = 1 or 2)
    after ``top`` zero rows and ``left`` zero columns, P[m, n] = Xp[s m + p, s n + q], zero
    elsewhere (positions past the rows or Wq dropped)."""
    channels, height, width = image.shape
    planes[:] = 0.0
    for c in range(channels):
        for h in range(height):
            if stride == 1:  # rows of constant steps (no division): the copies vectorise
                if h + top >= rows:
                    break
                row, src = planes[c, (h + top) * wq + left:], image[c, h]
                for k in range(min(width, wq - left)):
                    row[k] = src[k]
            else:
                m, p = (h + top) >> 1, (h + top) & 1
                if m >= rows:
                    break
                # columns 2k and 2k + 1 go to phases (left & 1) and ((1 + left) & 1), at k + offset
                src = image[c, h]
                even = planes[(2 * p + (left & 1)) * channels + c, m * wq + (left >> 1):]
                odd = planes[(2 * p + ((1 + left) & 1)) * channels + c, m * wq + ((1 + left) >> 1):]
                pairs = min(width >> 1, wq - ((1 + left) >> 1))
                for k in range(pairs):  # two streams of constant steps: vectorised as interleaved loads
                    even[k] = src[2 * k]
                    odd[k] = src[2 * k + 1]
                for w in range(2 * pairs, width):  # an odd width's last column, or columns past Wq
                    if (w + left) >> 1 < wq:
                        planes[(2 * p + ((w + left) & 1)) * channels + c, m * wq + ((w + left) >> 1)] = src[w]


@njit(inline="always")
def _stack_of(count, rows, wq, dtype):
    """Zeroed planes (count, size) of ``rows`` rows Wq wide in one cache-aligned stack, and the
    flat stack with the tiles' slack after them."""
    size = _rounded(rows * wq + LANES, LANES)
    stack = _cache_aligned(count * size + rows * wq + 2 * TILE_LANES, dtype)
    stack[:] = 0.0
    return stack, stack[:count * size].reshape(count, size)


@functools.lru_cache(maxsize=None)
def _kernels(kh, kw, stride):
    """(correlate, backward): the task kernels of ``_correlate`` and ``conv2d_backward`` for a
    kh x kw window at ``stride``, compiled around its tiles."""
    taps = kh * kw
    tap_rows, tap_cols = -(-kh // stride), -(-kw // stride)  # taps per phase plane, at most
    phases = stride * stride
    phase_taps = tuple(len(tap_groups(kh, kw, stride, phase)[0][1]) for phase in range(phases))
    taps_before = tuple(sum(phase_taps[:phase]) for phase in range(phases))

    @njit(cache=True, nogil=True)
    def correlate(share, first, last, x, kernels, bias, top, left, parts, y):
        """Tasks (image n, part of its blocks of TILE_ROWS output channels) = divmod(t, parts)."""
        channels = x.shape[1]
        n_out, oh, ow = y.shape[1:]
        n_blocks = -(-n_out // TILE_ROWS)
        wq, rows = ow + tap_cols - 1, oh + tap_rows - 1
        stack, planes = _stack_of(phases * channels, rows, wq, x.dtype)
        length = _rounded((oh - 1) * wq + ow, TILE_LANES)
        acc = _cache_aligned(-(-n_blocks // parts) * TILE_ROWS * length, x.dtype)  # a part's blocks
        for task in range(first, last):
            n, part = task // parts, task % parts
            if task == first or part == 0:
                _fill_phases(x[n], top, left, stride, wq, rows, planes)
            _correlate_blocks(kh, kw, stride, -1, taps, stack, planes.shape[1], wq, channels, kernels, 0, bias,
                              part * n_blocks // parts, (part + 1) * n_blocks // parts, y[n], acc, oh, ow)

    @njit(cache=True, nogil=True)
    def backward(share, first, last, x, dx_kernels, dy, ph, pw, need_dx, need_dw, dx, dweight_parts, dbias_parts,
                 nonfinite):
        """dx[n] (when need_dx) for the images first <= n < last, and their dK and db added to this
        share's part (an image holding a NaN or inf is flagged in ``nonfinite`` instead).
        dx_kernels: (the packed direct kernels, ``register_winograd.transformed_kernels`` of the
        flipped kernel or nothing, whether dK runs on the Winograd tiles): dX by the Winograd tiles
        where given and dY[n] is finite, dK where asked and x[n] and dY[n] are."""
        dx_kernels, winograd_kernels, winograd_dk = dx_kernels
        channels, height, width = x.shape[1:]
        n_out, oh, ow = dy.shape[1:]
        if stride == 1:  # planes as wide as x's rows and their kw - 1 zeros (and as Winograd's windows reach)
            rows, cols = height, width
            odd = 1 if winograd_kernels.size or winograd_dk else 0
            wq, plane_rows = width + kw - 1 + (width & odd), height + kh - 1 + (height & odd)
            grad_top, grad_left = kh - 1 - ph, kw - 1 - pw
        else:  # the phase planes of x and their dX rows and columns
            rows, cols = -(-(height + ph) // stride), -(-(width + pw) // stride)
            wq, plane_rows = cols + tap_cols - 1, rows + tap_rows - 1
            grad_top, grad_left = tap_rows - 1, tap_cols - 1
        grad_stack, grad_planes = _stack_of(dweight_parts.shape[1], plane_rows, wq, x.dtype)
        stack, planes = _stack_of(phases * channels, plane_rows, wq, x.dtype)
        size = planes.shape[1]
        length = _rounded((oh - 1) * wq + ow, LANES)
        start = grad_top * wq + grad_left  # where output (0, 0) sits in dYq
        n_blocks = -(-channels // TILE_ROWS)
        acc = _cache_aligned(phases * n_blocks * TILE_ROWS * _rounded((rows - 1) * wq + cols, TILE_LANES), x.dtype)
        no_bias = np.zeros(channels, dtype=x.dtype)
        v, m = register_winograd.workspaces(n_out if winograd_kernels.size else 0, x.dtype)
        dweight, dbias = dweight_parts[share].reshape(-1), dbias_parts[share]
        dk_v, dk_m, du, chunk = register_winograd.weight_grad_workspaces(
            channels if winograd_dk else 0, dweight_parts.shape[1], -(-oh // 2) * -(-ow // 2), x.dtype)
        for n in range(first, last):
            _fill_phases(dy[n], grad_top, grad_left, 1, wq, plane_rows, grad_planes[:n_out])
            for o in range(n_out):
                dbias[o] += row_sum(dy[n, o].reshape(-1))
            grad_finite = (winograd_dk or winograd_kernels.size > 0) and finite(dy[n])  # for the Winograd tiles
            if need_dw and finite(x[n]):
                _fill_phases(x[n], ph, pw, stride, wq, plane_rows, planes)
                if winograd_dk and grad_finite:
                    register_winograd.weight_grad(grad_stack, start, stack, size, wq, channels, oh, ow, dk_v, dk_m,
                                                  du, chunk)
                else:
                    for o in range(0, dweight_parts.shape[1], WEIGHT_GRAD_ROWS):
                        for c in range(channels):
                            weight_grad_tile(kh, kw, stride, grad_stack, o * size + start, size, stack, c * size,
                                             channels * size, wq, length, dweight, (o * channels + c) * taps,
                                             channels * taps)
            elif need_dw:
                nonfinite[n] = True  # its dK is summed apart, over the output positions alone
            if need_dx and winograd_kernels.size and grad_finite:
                register_winograd.correlate(grad_stack, size, wq, n_out, winograd_kernels, no_bias, 0,
                                            register_winograd.blocks(height, width), dx[n], v, m)
            elif need_dx:
                _transposed(stride, kh, kw, taps, phase_taps, taps_before, grad_stack, size, wq, n_out, dx_kernels,
                            no_bias, n_blocks, dx[n], acc, rows, cols, ph, pw)
        if winograd_dk:
            register_winograd.add_weight_grad(du, channels, dweight)

    return correlate, backward
