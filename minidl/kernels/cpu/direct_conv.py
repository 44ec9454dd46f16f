"""Direct convolution for stride 1: few channels (LeNet's, the first layer of most CNNs), and
3x3 kernels with padding 0 or 1 in blocks of output channels (the section at the end).

For small C kh kw and O, the GEMMs of im2col are too thin to run BLAS near its peak, and the
unfolded input is kh kw times the size of the input: sums over the taps straight from the
image measure faster. Each image is zero-padded into a scratch plane per channel (Hp x Wp),
and the output is computed on the padded width: the "wide" position f = i Wp + j
(i < oh, j < Wp; only j < ow are kept) reads tap (c, u, v) at f + u dh Wp + v dw of plane c,
so every tap is one multiply-add loop over all of an output plane's positions:

    Yw[o, f] = b[o] + sum_{c,u,v} K[o, c, u, v] Xp[c, f + u dh Wp + v dw]        (forward)
    dXp[c, f + u dh Wp + v dw] += K[o, c, u, v] dYw[o, f]                          (dX)
    dK[o, c, u, v] = sum_(n, f) dYw[n, o, f] Xp[n, c, f + u dh Wp + v dw]         (dK)
    db[o] = sum_(n, f) dYw[n, o, f]

with dYw zero where j >= ow, so the wide positions add nothing (except to an image holding a
NaN or inf, since 0 x inf is NaN: its dK is summed over the output positions alone). Wide positions run up to
L = (oh - 1) Wp + ow, which keeps every read inside the padded plane. dX is taken as a gather,
dXp[c, p] = sum K[o, c, u, v] dYw[o, p - u dh Wp - v dw], from a dYw with (kh - 1) dh Wp +
(kw - 1) dw zeros on either side. Each pass over an accumulator adds a whole row of kw taps
(one load and store per row instead of per tap; rows of 3 and 5 written out). Every pass is a
serial kernel over a share of the images, run concurrently by ``tasks.run`` (a third of the
compile time of a prange loop); the backward pass is one kernel, each share writing its
images' dX and its own partial dK and db (float64), summed by ``conv2d_backward``. Loops with multiply-adds only use fastmath's reassociation and
contraction (SIMD sums, FMA); NaN and inf keep their meaning.
"""
import numba
import numpy as np
from numba import njit

from . import tasks
from .elementary import row_sum

_MULTIPLY_ADD = {"reassoc", "contract"}


_BALANCE_MIN_FLOPS = 2 * 10 ** 8  # one pass of 2 N O C kh kw oh ow: about 3 ms on one core


def balanced(x_shape, weight_shape, out_size):
    """Whether a pass is long enough (_BALANCE_MIN_FLOPS) to run in several shares per thread
    (``tasks.run(balance=True)``): FashionCNN's second convolution and the bench's conv2d are,
    LeNet's and FashionCNN's first are not (more shares would cost more than they balance)."""
    n_out, channels, kh, kw = weight_shape
    return 2 * x_shape[0] * n_out * channels * kh * kw * out_size[0] * out_size[1] >= _BALANCE_MIN_FLOPS


#: most weights (O C kh kw) for the per-row loops. Against im2col in chunks of images, fwd+bwd
#: at batch 64, 2 Zen4 cores (ms, per-row / chunks): 1->6 5x5 at 28x28 (LeNet's first layer)
#: 1.05 / 1.40 and at 14x14 0.51 / 0.73; 2->6 5x5 1.60 / 1.67; 1->32 3x3 1.79 / 1.84; past it
#: chunks won: 1->32 5x5 3.8 / 3.2, 1->16 7x7 5.6 / 3.2, 3->16 5x5 at 24x24 5.1 / 3.2, and bigger
#: 3x3 layers take the blocked loops below (8->16 at 16x16: per-row 3.4, blocked 1.6, chunks 1.6).
#: Smaller 3x3 layers stay here: the blocked loops are faster on them too (4->8 at 28x28: 2.1 /
#: 1.2 ms) but compile slower, and a first conv + batch norm + pooling step with a cold cache
#: took 5.7-6.3 s through them against 3.4 s.
MAX_WEIGHTS = 300


#: Grouped layers (stride 1) take the per-row loops at any size: each output channel reads only
#: its group's C / g planes, where im2col multiplies group by group. Fwd+bwd at batch 64 (ms,
#: im2col / per-row / PyTorch): depthwise 32 channels at 32x32 43 / 5.2 / 6.6, 64 channels at
#: 16x16 27 / 3.3 / 2.8, 32 -> 64 (two outputs per channel) at 32x32 8.4 / 35; groups of 4
#: 32 -> 32 at 32x32 37 / 15.6 / 11.0, groups of 2 39 / 28 / 14; ResNeXt-like 64 -> 64 in 16
#: groups at 16x16 6.0 / 7.2 (PyTorch).


def chosen(weight_shape, stride, groups):
    """Whether conv2d takes the per-row loops: stride 1, and several groups or at most
    MAX_WEIGHTS weights."""
    return tuple(stride) == (1, 1) and (groups > 1 or int(np.prod(weight_shape)) <= MAX_WEIGHTS)


# acc[f] += sum_v k[v] src[f + v dw] over all f of acc: a row of taps per pass over acc (one
# load and store of acc per row instead of per tap; 3 and 5 taps written out). The taps are
# views indexed from 0, so that Numba drops its negative-index checks and the loop vectorises.
# Each row length is its own function, and the image kernels are compiled around the one a
# shape needs (``_image_kernels``): the first call with a cold cache compiles 0.5 s less than
# with all three rows in one function.

@njit(cache=True, fastmath=_MULTIPLY_ADD)
def _add_3_taps(acc, src, k, dw):
    k0, k1, k2 = k[0], k[1], k[2]
    s0, s1, s2 = src, src[dw:], src[2 * dw:]
    for f in range(len(acc)):
        acc[f] += k0 * s0[f] + k1 * s1[f] + k2 * s2[f]


@njit(cache=True, fastmath=_MULTIPLY_ADD)
def _add_5_taps(acc, src, k, dw):
    k0, k1, k2, k3, k4 = k[0], k[1], k[2], k[3], k[4]
    s0, s1, s2, s3, s4 = src, src[dw:], src[2 * dw:], src[3 * dw:], src[4 * dw:]
    for f in range(len(acc)):
        acc[f] += k0 * s0[f] + k1 * s1[f] + k2 * s2[f] + k3 * s3[f] + k4 * s4[f]


@njit(cache=True, fastmath=_MULTIPLY_ADD)
def _add_any_taps(acc, src, k, dw):
    for v in range(len(k)):
        kv, sv = k[v], src[v * dw:]
        for f in range(len(acc)):
            acc[f] += kv * sv[f]


@njit(cache=True, fastmath=_MULTIPLY_ADD)
def _tap_dots(grad, src, dw, out, zero):
    """out[v] += sum_f grad[f] src[f + v dw] for each tap v of a row, summed from ``zero`` (0 in
    the data's dtype), then added to the float64 ``out``."""
    for v in range(len(out)):
        sv, dot = src[v * dw:], zero
        for f in range(len(grad)):
            dot += grad[f] * sv[f]
        out[v] += dot


@njit(cache=True)
def _fill_planes(image, top, left, wq, planes):
    """planes[c] (flat, rows of wq) = image[c] after ``top`` zero rows and ``left`` zero columns,
    zero everywhere else."""
    channels, height, width = image.shape
    planes[:] = 0.0
    for c in range(channels):
        for h in range(height):
            row, src = planes[c, (top + h) * wq + left:], image[c, h]
            for w in range(width):
                row[w] = src[w]


@njit(cache=True, fastmath={"reassoc"})
def finite(image):
    """Whether no entry of ``image`` is a NaN or inf: sum (v - v) in its own dtype, 0 unless one
    is. Kept apart from the copies into planes: a float64 sum of 0 x value in those loops doubled
    their time (64 float32 images of (16, 32, 32) on one Zen 5 core 0.61 -> 0.15 ms without it)."""
    flat = image.reshape(-1)
    total = flat.dtype.type(0)
    for k in range(flat.size):
        total += flat[k] - flat[k]
    return total == 0


def _weight_grad_of_nonfinite(x, dy, padding, dilation, nonfinite, dweight, stride=(1, 1)):
    """dweight += dK of the images flagged in ``nonfinite``, which the kernels skipped: summed
    over the output positions alone, because the sums over wide positions would multiply the
    zeros past ow by their NaN or inf and spread it to taps whose PyTorch gradient is finite."""
    if nonfinite.any():
        _add_exact_weight_grad(x[nonfinite], dy[nonfinite], *padding, *stride, *dilation, dweight)


@njit(cache=True)
def _add_exact_weight_grad(x, dy, ph, pw, sh, sw, dh, dw, dweight):
    """dweight[o, c', u, v] += sum_{n, i < oh, j < ow} dy[n, o, i, j] Xp[n, c, i sh + u dh, j sw + v dw]
    for the input channels c = g C / g + c' of output o's group g."""
    n_out, oh, ow = dy.shape[1:]
    channels, height, width = x.shape[1:]
    per_group, kh, kw = dweight.shape[1:]
    out_per_group = n_out // (channels // per_group)
    wp = width + 2 * pw
    planes = np.empty((channels, (height + 2 * ph) * wp), dtype=x.dtype)
    for n in range(x.shape[0]):
        _fill_planes(x[n], ph, pw, wp, planes)
        for o in range(n_out):
            first = o // out_per_group * per_group
            for c in range(per_group):
                for u in range(kh):
                    for v in range(kw):
                        total = 0.0
                        for i in range(oh):
                            row, grad = planes[first + c, (i * sh + u * dh) * wp + v * dw:], dy[n, o, i]
                            for j in range(ow):
                                total += grad[j] * row[j * sw]
                        dweight[o, c, u, v] += total


def conv2d_forward(x, weight, bias, padding, dilation, out_size):
    """Y = K * X + b for stride 1; bias (O,) or None."""
    shift = np.zeros(weight.shape[0], dtype=x.dtype) if bias is None else bias
    y = np.empty((x.shape[0], weight.shape[0]) + tuple(out_size), dtype=x.dtype)
    forward_images = _KERNELS.get(weight.shape[3], _ANY_ROW)[0]
    tasks.run(forward_images, x.shape[0], x, weight, shift, *padding, *dilation, y,
              balance=balanced(x.shape, weight.shape, out_size))
    return y


def conv2d_backward(x, weight, dy, padding, dilation, need_dx=True, need_dw=True):
    """(dx, dweight, dbias), dx / dweight None when not needed."""
    flipped = np.ascontiguousarray(weight[:, :, :, ::-1])  # taps v = kw - 1 ... 0, for dX
    dx = np.empty_like(x)
    balance = balanced(x.shape, weight.shape, dy.shape[2:])
    shares = tasks.shares(x.shape[0], balance=balance)
    dweight_parts = np.zeros((shares,) + weight.shape)
    dbias_parts = np.zeros((shares, weight.shape[0]))
    nonfinite = np.zeros(x.shape[0], dtype=np.bool_)
    backward_images = _KERNELS.get(weight.shape[3], _ANY_ROW)[1]
    tasks.run(backward_images, x.shape[0], x, weight, flipped, dy, *padding, *dilation, need_dx, need_dw,
              dx, dweight_parts, dbias_parts, nonfinite, balance=balance)
    dweight = None
    if need_dw:
        dweight = dweight_parts.sum(axis=0)
        _weight_grad_of_nonfinite(x, dy, padding, dilation, nonfinite, dweight)
        dweight = dweight.astype(x.dtype)
    return (dx if need_dx else None), dweight, dbias_parts.sum(axis=0).astype(x.dtype)


def _image_kernels(taps):
    """(forward_images, backward_images) for rows of ``taps`` taps (0: any number). ``taps`` is a
    constant of the closure, so Numba prunes the branches for other rows and compiles one.
    Groups: output o reads the C / g input channels of its group, weight (O, C / g, kh, kw)."""
    @njit(cache=True, nogil=True, fastmath=_MULTIPLY_ADD)
    def forward_images(share, first, last, x, weight, bias, ph, pw, dh, dw, y):
        """y[n] for the images first <= n < last."""
        channels, height, width = x.shape[1:]
        n_out, per_group, kh, kw = weight.shape
        out_per_group = n_out // (channels // per_group)
        oh, ow = y.shape[2:]
        hp, wp = height + 2 * ph, width + 2 * pw
        length = (oh - 1) * wp + ow
        xp = np.empty((channels, hp * wp), dtype=x.dtype)
        wide = np.empty(length, dtype=x.dtype)
        for n in range(first, last):
            _fill_planes(x[n], ph, pw, wp, xp)
            for o in range(n_out):
                wide[:] = bias[o]
                group_first = o // out_per_group * per_group
                for c in range(per_group):
                    for u in range(kh):
                        row_source = xp[group_first + c, u * dh * wp:]
                        if taps == 3:
                            _add_3_taps(wide, row_source, weight[o, c, u], dw)
                        elif taps == 5:
                            _add_5_taps(wide, row_source, weight[o, c, u], dw)
                        else:
                            _add_any_taps(wide, row_source, weight[o, c, u], dw)
                out = y[n, o]
                for i in range(oh):
                    row, src = out[i], wide[i * wp:]
                    for j in range(ow):
                        row[j] = src[j]

    @njit(cache=True, nogil=True, fastmath=_MULTIPLY_ADD)
    def backward_images(share, first, last, x, weight, flipped, dy, ph, pw, dh, dw, need_dx, need_dw, dx,
                         dweight_parts, dbias_parts, nonfinite):
        """dx[n] (when need_dx) for the images first <= n < last, and their dK and db added to this
        share's part (an image holding a NaN or inf is flagged in ``nonfinite`` instead)."""
        channels, height, width = x.shape[1:]
        n_out, per_group, kh, kw = weight.shape
        out_per_group = n_out // (channels // per_group)
        oh, ow = dy.shape[2:]
        hp, wp = height + 2 * ph, width + 2 * pw
        length = (oh - 1) * wp + ow
        margin = (kh - 1) * dh * wp + (kw - 1) * dw
        xp = np.empty((channels, hp * wp), dtype=x.dtype)
        dxp = np.empty((channels, hp * wp), dtype=x.dtype)
        # np.empty and x.dtype.type, not np.zeros: each np.zeros signature compiled for 0.1-0.2 s
        # with a cold cache, in the first step of every model with a small convolution
        dyw = np.empty((n_out, margin + length + margin), dtype=x.dtype)
        zero = x.dtype.type(0)
        for o in range(n_out):  # gaps and margins stay 0
            for k in range(dyw.shape[1]):
                dyw[o, k] = zero
        dweight, dbias = dweight_parts[share], dbias_parts[share]
        for n in range(first, last):
            for o in range(n_out):
                for i in range(oh):
                    row, src = dyw[o, margin + i * wp:], dy[n, o, i]
                    for j in range(ow):
                        row[j] = src[j]
                dbias[o] += row_sum(dy[n, o].reshape(-1))
            if need_dw and not finite(x[n]):
                nonfinite[n] = True
            elif need_dw:
                _fill_planes(x[n], ph, pw, wp, xp)
                for o in range(n_out):
                    grad = dyw[o, margin:margin + length]
                    group_first = o // out_per_group * per_group
                    for c in range(per_group):
                        for u in range(kh):
                            _tap_dots(grad, xp[group_first + c, u * dh * wp:], dw, dweight[o, c, u], zero)
            if need_dx:
                dxp[:] = 0.0
                for c in range(channels):
                    group_first, k = c // per_group * out_per_group, c % per_group
                    for o in range(group_first, group_first + out_per_group):
                        for u in range(kh):
                            grad_row = dyw[o, margin - u * dh * wp - (kw - 1) * dw:]
                            if taps == 3:
                                _add_3_taps(dxp[c], grad_row, flipped[o, k, u], dw)
                            elif taps == 5:
                                _add_5_taps(dxp[c], grad_row, flipped[o, k, u], dw)
                            else:
                                _add_any_taps(dxp[c], grad_row, flipped[o, k, u], dw)
                    for h in range(height):
                        row, src = dx[n, c, h], dxp[c, (h + ph) * wp + pw:]
                        for w in range(width):
                            row[w] = src[w]

    return forward_images, backward_images


_KERNELS = {3: _image_kernels(3), 5: _image_kernels(5)}
_ANY_ROW = _image_kernels(0)


# ---------------------------------------------------------------- 3x3, padding 0 or 1, in blocks
# For 3x3 stride-1 convolutions with padding 0 or 1 the passes read the input in blocks of
# _BLOCK = 4 output channels: one sweep over the wide positions of a channel's plane loads the
# 9 shifted rows once and adds all 36 products into the 4 accumulators (36 multiply-adds per 13
# loads and 4 stores, where the per-row loops above do 3 per 5 memory operations), which holds
# about 110 GFLOP/s, half of this machine's GEMM peak, on (64,16,32,32) x (32,16,3,3).
#
# Every plane, input or gradient, is stored Wq = W + 2 wide: the input x with ph zero rows and
# pw zero columns before it (Xq), the output gradient with 2 - ph rows and 2 - pw columns
# (dYq, H + 2 rows: the "full" padding). Then, with f = i Wq + j (only j < ow kept) and
# L = (oh - 1) Wq + ow, every pass is a sum over shifted planes:
#
#     Yw[o, f]  = b[o] + sum_{c,u,v} K[o, c, u, v] Xq[c, f + u Wq + v]
#     dXw[c, f] = sum_{o,u,v} K[o, c, 2 - u, 2 - v] dYq[o, f + u Wq + v]      (f = h Wq + w)
#     dK[o, c, u, v] = sum_{f < L} dYq[o, g0 + f] Xq[c, f + u Wq + v],   g0 = (2 - ph) Wq + 2 - pw
#
# the last because dYq is zero at every position that is not an output (its padding), so
# the wide positions with j >= ow add nothing; dX is the forward pass run on dYq with the
# flipped, transposed kernel.
#
# These loops compute float64 (gradient checks); float32 layers of this shape run in register
# tiles instead (``register_conv``), about 1.7x faster.

_BLOCK = 4
_ACCUMULATOR = 1024  # wide positions per pass (4 channels x 4 KB of float32: stays in L1)
# Sweeps run over a multiple of _LANES positions (16 float32 in an AVX-512 register), so that
# LLVM's scalar remainder loop has nothing to do (on a 14 x 14 plane it took 14 of 222
# positions one at a time; the backward measured 2-6% faster). Every plane ends in _SLACK
# zeros so that those reads stay inside it; the extra sums land in scratch or, for dK,
# multiply the zero padding of dYq.
_LANES = 16
_SLACK = 2 + _LANES


@njit(inline="always")
def _lanes(length):
    """length rounded up to a multiple of _LANES."""
    return -(-length // _LANES) * _LANES


@njit(inline="always")
def _plane_size(height, wq):
    """Floats per (height + 2) x wq plane and its trailing zeros, rounded up to a whole number
    of cache lines (so that every plane of a ``_cache_aligned`` stack starts on one)."""
    return _lanes((height + 2) * wq + _SLACK)


# Vector loads and stores that start on a 64-byte line split none: with the planes and the
# accumulator on line boundaries (Numba's np.empty gives 32 bytes) the sweep over 16 channels
# of (4, 1024) accumulators measured 95 GFLOP/s on one core, against 64-72 with the planes off
# by 16 bytes.
_ALIGN = 64


@njit(inline="always")
def _cache_aligned(size, dtype):
    """An uninitialised array of ``size`` elements whose data starts on a 64-byte boundary."""
    raw = np.empty(size + _ALIGN, dtype=dtype)
    skip = (-raw.ctypes.data % _ALIGN) // raw.itemsize
    return raw[skip:skip + size]


# The 4 channels of the accumulator sit one cache line more than _ACCUMULATOR floats apart: at
# exactly 4 KB apart, the loads and stores of a sweep's four rows alias in L1 (the same set
# and the same low address bits), and a sweep of 14 x 14 planes measured 50 GFLOP/s on one
# core against 73-75 with the line between them (32 x 32 planes: 59-91 against 94).

@njit(inline="always")
def _accumulator_stride(wq):
    """Floats per channel of the accumulator: _ACCUMULATOR, or a whole wide row when longer,
    and one cache line (_LANES floats) more."""
    return max(_ACCUMULATOR, _lanes(wq)) + _LANES


def chosen_3x3(weight_shape, stride, padding, dilation, groups, out_size):
    """Whether conv2d takes the blocked 3x3 path: 3x3 kernel, stride 1, dilation 1, one group,
    padding 0 or 1. On small planes too: fwd+bwd at batch 64 (ms, register tiles / im2col in
    chunks) 32->32 at 8x8 2.2 / 4.5, at 4x4 1.1 / 1.4; 48->48 at 8x8 4.7 / 5.7; 64->64 at 7x7
    6.6 / 8.2; 96->96 at 7x7 14.6 / 15.2 (wider layers there go to im2col: conv._algorithm)."""
    return (tuple(weight_shape[2:]) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)
            and groups == 1 and all(p in (0, 1) for p in padding))


def _blocked(weight):
    """(O, C, 3, 3) -> (ceil(O / 4), C, 4, 9): the kernels of each block of 4 output channels,
    tap t = 3 u + v; the missing channels of the last block are zero."""
    n_out, channels = weight.shape[:2]
    n_blocks = -(-n_out // _BLOCK)
    blocks = np.zeros((n_blocks * _BLOCK, channels, 9), dtype=weight.dtype)
    blocks[:n_out] = weight.reshape(n_out, channels, 9)
    return np.ascontiguousarray(blocks.reshape(n_blocks, _BLOCK, channels, 9).transpose(0, 2, 1, 3))


@njit(cache=True, fastmath=_MULTIPLY_ADD)
def _add_block_taps(acc, stride, length, plane, wq, k):
    """acc[q stride + f] += sum_t k[q, t] plane[f + (t // 3) wq + t % 3] for f < length and the
    4 channels q of a block: the 36 weights in scalars, the 9 shifted rows as views from 0."""
    a0, a1, a2, a3 = acc[:length], acc[stride:stride + length], acc[2 * stride:2 * stride + length], \
        acc[3 * stride:3 * stride + length]
    r0, r1, r2 = plane, plane[1:], plane[2:]
    r3, r4, r5 = plane[wq:], plane[wq + 1:], plane[wq + 2:]
    r6, r7, r8 = plane[2 * wq:], plane[2 * wq + 1:], plane[2 * wq + 2:]
    k00, k01, k02, k03, k04, k05, k06, k07, k08 = k[0, 0], k[0, 1], k[0, 2], k[0, 3], k[0, 4], k[0, 5], k[0, 6], k[0, 7], k[0, 8]
    k10, k11, k12, k13, k14, k15, k16, k17, k18 = k[1, 0], k[1, 1], k[1, 2], k[1, 3], k[1, 4], k[1, 5], k[1, 6], k[1, 7], k[1, 8]
    k20, k21, k22, k23, k24, k25, k26, k27, k28 = k[2, 0], k[2, 1], k[2, 2], k[2, 3], k[2, 4], k[2, 5], k[2, 6], k[2, 7], k[2, 8]
    k30, k31, k32, k33, k34, k35, k36, k37, k38 = k[3, 0], k[3, 1], k[3, 2], k[3, 3], k[3, 4], k[3, 5], k[3, 6], k[3, 7], k[3, 8]
    for f in range(length):
        s0, s1, s2, s3, s4, s5, s6, s7, s8 = r0[f], r1[f], r2[f], r3[f], r4[f], r5[f], r6[f], r7[f], r8[f]
        a0[f] += k00 * s0 + k01 * s1 + k02 * s2 + k03 * s3 + k04 * s4 + k05 * s5 + k06 * s6 + k07 * s7 + k08 * s8
        a1[f] += k10 * s0 + k11 * s1 + k12 * s2 + k13 * s3 + k14 * s4 + k15 * s5 + k16 * s6 + k17 * s7 + k18 * s8
        a2[f] += k20 * s0 + k21 * s1 + k22 * s2 + k23 * s3 + k24 * s4 + k25 * s5 + k26 * s6 + k27 * s7 + k28 * s8
        a3[f] += k30 * s0 + k31 * s1 + k32 * s2 + k33 * s3 + k34 * s4 + k35 * s5 + k36 * s6 + k37 * s7 + k38 * s8


@njit(cache=True, fastmath=_MULTIPLY_ADD)
def _add_block_dots(grad, stride, length, plane, wq, out, zero):
    """out[q, u, v] += sum_{f < length} grad[q stride + f] plane[f + u wq + v] for the 4
    channels q of a block (12 sums per sweep, one sweep per kernel row u), each summed from
    ``zero`` (0 in the data's dtype)."""
    g0, g1, g2, g3 = grad[:length], grad[stride:stride + length], grad[2 * stride:2 * stride + length], \
        grad[3 * stride:3 * stride + length]
    for u in range(3):
        r0, r1, r2 = plane[u * wq:], plane[u * wq + 1:], plane[u * wq + 2:]
        d00 = d01 = d02 = d10 = d11 = d12 = d20 = d21 = d22 = d30 = d31 = d32 = zero
        for f in range(length):
            s0, s1, s2 = r0[f], r1[f], r2[f]
            e0, e1, e2, e3 = g0[f], g1[f], g2[f], g3[f]
            d00 += e0 * s0
            d01 += e0 * s1
            d02 += e0 * s2
            d10 += e1 * s0
            d11 += e1 * s1
            d12 += e1 * s2
            d20 += e2 * s0
            d21 += e2 * s1
            d22 += e2 * s2
            d30 += e3 * s0
            d31 += e3 * s1
            d32 += e3 * s2
        out[0, u, 0] += d00
        out[0, u, 1] += d01
        out[0, u, 2] += d02
        out[1, u, 0] += d10
        out[1, u, 1] += d11
        out[1, u, 2] += d12
        out[2, u, 0] += d20
        out[2, u, 1] += d21
        out[2, u, 2] += d22
        out[3, u, 0] += d30
        out[3, u, 1] += d31
        out[3, u, 2] += d32


@njit(cache=True, fastmath=_MULTIPLY_ADD)
def _correlate_blocks(planes, wq, kernels, bias, first_block, last_block, out, acc):
    """out[o, i, j] = bias[o] + sum_{c,u,v} K[o, c, u, v] planes[c, (i + u) wq + j + v] for the
    output channels of blocks [first_block, last_block); ``acc`` is a 4-channel scratch of
    _accumulator_stride(wq) floats per channel."""
    n_out, oh, ow = out.shape
    stride = acc.size // _BLOCK
    passes = -(-oh // max(1, stride // wq))
    rows = -(-oh // passes)  # the same number of rows in each pass (32 rows: 16 + 16, not 30 + 2)
    for block in range(first_block, last_block):
        for i0 in range(0, oh, rows):
            n_rows = min(rows, oh - i0)
            length = _lanes((n_rows - 1) * wq + ow)
            for q in range(_BLOCK):
                acc[q * stride:q * stride + length] = bias[min(block * _BLOCK + q, n_out - 1)]
            for c in range(planes.shape[0]):
                _add_block_taps(acc, stride, length, planes[c, i0 * wq:], wq, kernels[block, c])
            for q in range(min(_BLOCK, n_out - block * _BLOCK)):
                channel = out[block * _BLOCK + q]
                for r in range(n_rows):
                    row, src = channel[i0 + r], acc[q * stride + r * wq:]
                    for j in range(ow):
                        row[j] = src[j]


def image_parts(n_blocks, n_batch):
    """Parts each image's ``n_blocks`` blocks of output channels go in, one task each: enough
    tasks for the threads (two per thread) when the batch is small."""
    return min(n_blocks, -(-2 * numba.get_num_threads() // n_batch))


def conv3x3_forward(x, weight, bias, padding):
    """Y = K * X + b for the blocked 3x3 path; bias (O,) or None."""
    shift = np.zeros(weight.shape[0], dtype=x.dtype) if bias is None else bias
    n_batch, n_out, (height, width) = x.shape[0], weight.shape[0], x.shape[2:]
    parts = image_parts(-(-n_out // _BLOCK), n_batch)
    y = np.empty((n_batch, n_out, height + 2 * padding[0] - 2, width + 2 * padding[1] - 2), dtype=x.dtype)
    tasks.run(_forward_3x3, n_batch * parts, x, _blocked(weight), shift, padding[0], padding[1], parts, y,
              balance=balanced(x.shape, weight.shape, y.shape[2:]))
    return y


@njit(cache=True, nogil=True)
def _forward_3x3(share, first, last, x, kernels, bias, ph, pw, parts, y):
    """Tasks (image n, part of its output blocks) = divmod(t, parts) for first <= t < last."""
    channels, height, width = x.shape[1:]
    n_blocks = kernels.shape[0]
    wq = width + 2
    size = _plane_size(height, wq)
    planes = _cache_aligned(channels * size, x.dtype).reshape(channels, size)
    acc = _cache_aligned(_BLOCK * _accumulator_stride(wq), x.dtype)
    for task in range(first, last):
        n, part = task // parts, task % parts
        if task == first or part == 0:
            _fill_planes(x[n], ph, pw, wq, planes)
        _correlate_blocks(planes, wq, kernels, bias, part * n_blocks // parts, (part + 1) * n_blocks // parts,
                          y[n], acc)


def conv3x3_backward(x, weight, dy, padding, need_dx=True, need_dw=True):
    """(dx, dweight, dbias) of the blocked 3x3 path, dx / dweight None when not needed."""
    flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))  # K[o, c, 2-u, 2-v] as (C, O)
    return run_backward(_backward_3x3, _blocked(flipped), x, weight, dy, padding, need_dx, need_dw, _BLOCK)


def run_backward(kernel, flipped_kernels, x, weight, dy, padding, need_dx, need_dw, rows, stride=(1, 1)):
    """(dx, dweight, dbias), dx / dweight None when not needed, from a per-image backward kernel
    run over shares of the images, kernel(share, first, last, x, flipped_kernels, dy, ph, pw,
    need_dx, need_dw, dx, dweight_parts, dbias_parts, nonfinite): each share adds its images' dK
    and db to its own parts (float64; dK's output channels padded to a multiple of ``rows``),
    summed here in share order, and flags images holding a NaN or inf, whose dK is summed
    exactly (``_weight_grad_of_nonfinite``, at ``stride``)."""
    n_out, channels = weight.shape[:2]
    dx = np.empty_like(x)
    balance = balanced(x.shape, weight.shape, dy.shape[2:])
    shares = tasks.shares(x.shape[0], balance=balance)
    dweight_parts = np.zeros((shares, -(-n_out // rows) * rows) + weight.shape[1:])
    dbias_parts = np.zeros((shares, n_out))
    nonfinite = np.zeros(x.shape[0], dtype=np.bool_)
    tasks.run(kernel, x.shape[0], x, flipped_kernels, dy, padding[0], padding[1], need_dx, need_dw, dx,
              dweight_parts, dbias_parts, nonfinite, balance=balance)
    dweight = None
    if need_dw:
        dweight = dweight_parts.sum(axis=0)[:n_out]
        _weight_grad_of_nonfinite(x, dy, padding, (1, 1), nonfinite, dweight, stride)
        dweight = dweight.astype(x.dtype)
    return (dx if need_dx else None), dweight, dbias_parts.sum(axis=0).astype(x.dtype)


@njit(cache=True, nogil=True, fastmath=_MULTIPLY_ADD)
def _backward_3x3(share, first, last, x, flipped_kernels, dy, ph, pw, need_dx, need_dw, dx, dweight_parts,
                  dbias_parts, nonfinite):
    """dx[n] (when need_dx) for the images first <= n < last, and their dK (in blocks of 4 output
    channels) and db added to this share's part (an image holding a NaN or inf is flagged in
    ``nonfinite`` instead)."""
    channels, height, width = x.shape[1:]
    n_out, oh, ow = dy.shape[1:]
    n_blocks = -(-n_out // _BLOCK)
    wq = width + 2
    size = _plane_size(height, wq)
    length = _lanes((oh - 1) * wq + ow)
    start = (2 - ph) * wq + 2 - pw  # g0: where output (0, 0) sits in dYq
    no_bias = np.zeros(channels, dtype=x.dtype)
    first_block = np.int64(0)  # not the literal 0: that would compile _correlate_blocks a second time
    zero = no_bias[0]
    grad = _cache_aligned(n_blocks * _BLOCK * size, x.dtype)
    grad[:] = 0.0  # the rows past O stay 0
    grad_planes = grad[:n_out * size].reshape(n_out, size)
    planes = _cache_aligned(channels * size, x.dtype).reshape(channels, size)
    acc = _cache_aligned(_BLOCK * _accumulator_stride(wq), x.dtype)
    dweight, dbias = dweight_parts[share], dbias_parts[share]
    for n in range(first, last):
        _fill_planes(dy[n], 2 - ph, 2 - pw, wq, grad_planes)
        for o in range(n_out):
            dbias[o] += row_sum(dy[n, o].reshape(-1))
        if need_dw and not finite(x[n]):
            nonfinite[n] = True
        elif need_dw:
            _fill_planes(x[n], ph, pw, wq, planes)
            for block in range(n_blocks):
                rows = grad[block * _BLOCK * size + start:]
                for c in range(channels):
                    _add_block_dots(rows, size, length, planes[c], wq,
                                    dweight[block * _BLOCK:block * _BLOCK + _BLOCK, c], zero)
        if need_dx:
            _correlate_blocks(grad_planes, wq, flipped_kernels, no_bias, first_block, flipped_kernels.shape[0],
                              dx[n], acc)
