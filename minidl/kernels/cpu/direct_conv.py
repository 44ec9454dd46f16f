"""Direct convolution for stride 1 and few channels (LeNet's, the first layer of most CNNs).

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

with dYw zero where j >= ow, so the wide positions add nothing. Wide positions run up to
L = (oh - 1) Wp + ow, which keeps every read inside the padded plane. dX is taken as a gather,
dXp[c, p] = sum K[o, c, u, v] dYw[o, p - u dh Wp - v dw], from a dYw with (kh - 1) dh Wp +
(kw - 1) dw zeros on either side. Each pass over an accumulator adds a whole row of kw taps
(one load and store per row instead of per tap; rows of 3 and 5 written out). The backward pass is one
kernel: images in chunks, each chunk writing its images' dX and its own partial dK and db
(float64), summed by ``conv2d_backward``. Loops with multiply-adds only use fastmath's reassociation and
contraction (SIMD sums, FMA); NaN and inf keep their meaning.
"""
import numpy as np
from numba import njit, prange

_MULTIPLY_ADD = {"reassoc", "contract"}
_CHUNKS = 16  # tasks of the backward pass (each holds a partial dK)


def chosen(weight_shape, stride, groups):
    """Whether conv2d takes the direct path: stride 1, one group, at most 32 output channels and
    75 taps (C kh kw). Measured on a shared 2-core Zen4, F.conv2d fwd+bwd (ms, direct / im2col),
    batch 256: 1->6 5x5 at 28x28 (LeNet) 7.4 / 9.3, 1->32 3x3 at 28x28 (FashionCNN) 10.4 / 12.1;
    batch 64: 3->16 5x5 at 32x32 11.6 / 15.3. Past the limits im2col won: 6->16 5x5 at 14x14
    (LeNet) 17.5 / 12.1, 1->64 3x3 32 / 23, 16->32 3x3 at 32x32 48 / 30."""
    n_out, channels, kh, kw = weight_shape
    return tuple(stride) == (1, 1) and groups == 1 and n_out <= 32 and channels * kh * kw <= 75


@njit(cache=True, fastmath=_MULTIPLY_ADD)
def _add_taps(acc, src, k, dw):
    """acc[f] += sum_v k[v] src[f + v dw] over all f of acc: a row of taps per pass over acc
    (one load and store of acc per row instead of per tap; 3 and 5 taps written out). The taps
    are views indexed from 0, so that Numba drops its negative-index checks and the loop
    vectorises."""
    if len(k) == 3:
        k0, k1, k2 = k[0], k[1], k[2]
        s0, s1, s2 = src, src[dw:], src[2 * dw:]
        for f in range(len(acc)):
            acc[f] += k0 * s0[f] + k1 * s1[f] + k2 * s2[f]
    elif len(k) == 5:
        k0, k1, k2, k3, k4 = k[0], k[1], k[2], k[3], k[4]
        s0, s1, s2, s3, s4 = src, src[dw:], src[2 * dw:], src[3 * dw:], src[4 * dw:]
        for f in range(len(acc)):
            acc[f] += k0 * s0[f] + k1 * s1[f] + k2 * s2[f] + k3 * s3[f] + k4 * s4[f]
    else:
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
def _pad_image(image, ph, pw, out):
    """out[c] (flat Hp x Wp) = image[c] with ph zero rows and pw zero columns on each side."""
    channels, height, width = image.shape
    padded_width = width + 2 * pw
    out[:] = 0.0
    for c in range(channels):
        for h in range(height):
            row = out[c, (h + ph) * padded_width + pw:]
            src = image[c, h]
            for w in range(width):
                row[w] = src[w]


def conv2d_forward(x, weight, bias, padding, dilation, out_size):
    """Y = K * X + b for stride 1; bias (O,) or None."""
    shift = np.zeros(weight.shape[0], dtype=x.dtype) if bias is None else bias
    return _forward(x, weight, shift, *padding, *dilation, *out_size)


def conv2d_backward(x, weight, dy, padding, dilation, need_dx=True, need_dw=True):
    """(dx, dweight, dbias), dx / dweight None when not needed."""
    flipped = np.ascontiguousarray(weight[:, :, :, ::-1])  # taps v = kw - 1 ... 0, for dX
    dx, dweight_parts, dbias_parts = _backward(x, weight, flipped, dy, *padding, *dilation, need_dx, need_dw)
    dbias = dbias_parts.sum(axis=0).astype(x.dtype)
    return (dx if need_dx else None), (dweight_parts.sum(axis=0).astype(x.dtype) if need_dw else None), dbias


@njit(cache=True, parallel=True, fastmath=_MULTIPLY_ADD)
def _forward(x, weight, bias, ph, pw, dh, dw, oh, ow):
    """One task per image."""
    n_batch, channels, height, width = x.shape
    n_out, _, kh, kw = weight.shape
    hp, wp = height + 2 * ph, width + 2 * pw
    length = (oh - 1) * wp + ow
    y = np.empty((n_batch, n_out, oh, ow), dtype=x.dtype)
    for n in prange(n_batch):
        xp = np.empty((channels, hp * wp), dtype=x.dtype)
        _pad_image(x[n], ph, pw, xp)
        wide = np.empty(length, dtype=x.dtype)
        for o in range(n_out):
            wide[:] = bias[o]
            for c in range(channels):
                for u in range(kh):
                    _add_taps(wide, xp[c, u * dh * wp:], weight[o, c, u], dw)
            out = y[n, o]
            for i in range(oh):
                row, src = out[i], wide[i * wp:]
                for j in range(ow):
                    row[j] = src[j]
    return y


@njit(cache=True, parallel=True, fastmath=_MULTIPLY_ADD)
def _backward(x, weight, flipped, dy, ph, pw, dh, dw, need_dx, need_dw):
    """(dx, per-task dK, per-task db), tasks of consecutive images; dx is garbage unless need_dx.
    (Summing the parts and flipping the kernel happen outside: in here they took 2.5 s of the
    first call's compilation.)"""
    n_batch, channels, height, width = x.shape
    n_out, _, kh, kw = weight.shape
    oh, ow = dy.shape[2:]
    hp, wp = height + 2 * ph, width + 2 * pw
    length = (oh - 1) * wp + ow
    margin = (kh - 1) * dh * wp + (kw - 1) * dw
    dx = np.empty_like(x)
    chunks = min(n_batch, _CHUNKS)
    dweight_parts = np.zeros((chunks, n_out, channels, kh, kw))
    dbias_parts = np.zeros((chunks, n_out))
    for chunk in prange(chunks):
        xp = np.empty((channels, hp * wp), dtype=x.dtype)
        dxp = np.empty((channels, hp * wp), dtype=x.dtype)
        dyw = np.zeros((n_out, margin + length + margin), dtype=x.dtype)  # gaps and margins stay 0
        zero = np.zeros(1, dtype=x.dtype)[0]
        dweight, dbias = dweight_parts[chunk], dbias_parts[chunk]
        for n in range(chunk * n_batch // chunks, (chunk + 1) * n_batch // chunks):
            for o in range(n_out):
                total = 0.0
                for i in range(oh):
                    row, src = dyw[o, margin + i * wp:], dy[n, o, i]
                    for j in range(ow):
                        row[j] = src[j]
                        total += src[j]
                dbias[o] += total
            if need_dw:
                _pad_image(x[n], ph, pw, xp)
                for o in range(n_out):
                    grad = dyw[o, margin:margin + length]
                    for c in range(channels):
                        for u in range(kh):
                            _tap_dots(grad, xp[c, u * dh * wp:], dw, dweight[o, c, u], zero)
            if need_dx:
                dxp[:] = 0.0
                for c in range(channels):
                    for o in range(n_out):
                        for u in range(kh):
                            _add_taps(dxp[c], dyw[o, margin - u * dh * wp - (kw - 1) * dw:], flipped[o, c, u], dw)
                    for h in range(height):
                        row, src = dx[n, c, h], dxp[c, (h + ph) * wp + pw:]
                        for w in range(width):
                            row[w] = src[w]
    return dx, dweight_parts, dbias_parts
