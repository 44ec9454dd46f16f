"""Winograd convolution F(2x2, 3x3) and F(4x4, 3x3): 3x3 kernels, stride 1, dilation 1, one group.

Each m x m block of outputs (a "tile") of one image and output channel o is
    Y_t = A^T [ sum_c (G K[o, c] G^T) . (B^T D[c, t] B) ] A
where D[c, t] is the (m + 2) x (m + 2) window of the zero-padded input under the tile and .
multiplies elementwise: (m + 2)^2 multiplications per tile and channel pair instead of 9 m^2
(2.25x fewer for m = 2, 4x for m = 4). For m = 2 (alpha = 4):

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

(m = 4 further below). Laid out by transform-domain position k = alpha a + b, the sum over c is
alpha^2 GEMMs:
    U[k] = (G K G^T)[k] (O x C),  V[k] = (B^T D B)[k] (C x tiles),  M[k] = U[k] V[k] (O x tiles),
then Y = A^T M A tile by tile. The input transform (V), output transform (Y) and their
adjoints are the @njit kernels below, one task per image plane; the GEMMs are numpy matmul
(BLAS). U and dK are computed in float64 (G holds 1/6, 1/24) and cast.

Backward is the adjoint of each step (Y is linear in K and in D):
    dM_t = A dY_t A^T,   dU[k] = sum over tiles dM[k] V[k]^T,   dK = G^T dU G,
    dV[k] = U[k]^T dM[k],   dX = sum over tiles of B dV_t B^T added back into the window,
the forward's transforms read backwards: dX is the Winograd convolution of dY with the
flipped, transposed kernel (a full-padding forward), dW the one of X with dY, and dM is
shared by both.

Images go in chunks so that the V and M workspaces stay within CHUNK_BYTES. When the whole
batch is one chunk, the backward of the same input reuses the forward's V.
"""
import os

import numpy as np
from numba import njit, prange

from .conv import _contents, weight_grad_product, workspace

B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)

#: bytes of V + M per chunk of images (V: alpha^2 C floats per tile, M: alpha^2 O). Each chunk
#: costs 4-7 more kernel launches and alpha^2 more BLAS calls: 16 MB chunks measured 10-30%
#: slower than one chunk; the cap bounds the workspaces' memory (FashionCNN's second conv at
#: batch 256 would hold 77 MB in one chunk).
CHUNK_BYTES = int(os.environ.get("MINIDL_WINOGRAD_CHUNK_BYTES", 64 << 20))

#: output tile of the Winograd path: 2 (F(2x2, 3x3)), 4 (F(4x4, 3x3)) or 0 (``tile_for`` the shape)
TILE = int(os.environ.get("MINIDL_WINOGRAD_TILE", 0))

#: "auto" (Winograd where ``chosen`` says it pays), "winograd" (wherever ``supported``) or "im2col"
#: (the reference path for every shape: neither Winograd nor ``direct_conv``)
ALGORITHM = os.environ.get("MINIDL_CONV_ALGORITHM", "auto")

#: fewest input and output channels for which "auto" takes Winograd. Measured on a shared 2-core
#: Zen4 (fwd+bwd through F.conv2d, best of 11, ms, im2col / F2 / F4; runs minutes apart differ by
#: 20-30%): 64->64 at 16x16 batch 64: 39 / 31 / 35 (earlier 48 / 46 / 40): faster in most runs;
#: 16->32 at 32x32: 26-38 / 26-30 / 22-32 and 8->16 at 32x32: 14 / 15 / 13: a wash; 32->64 at
#: 14x14 batch 256: 65 / 76 (61 in one chunk) / 84 and 1->32 at 28x28: 9 / 46 / 46: slower. So
#: FashionCNN and LeNet take the direct paths; MINIDL_CONV_ALGORITHM=winograd takes Winograd wherever supported.
#: Since float32 3x3 layers run in register tiles (direct_conv, "direct 3x3"), those beat
#: Winograd below 128 channels (fwd+bwd ms, tiles / Winograd, same minutes): 64->64 batch 64 at
#: 16x16 22.3 / 25.8, at 14x14 17.8 / 25.5; 128 -> 64 batch 32 at 14x14 18.6 / 24.8; 96->96 at
#: 14x14 20.4 / 20.4-25.5; 128->128 at 16x16 43.6 / 44.2-51.1, at 14x14 34.7 / 32.2, batch 16 at
#: 28x28 59.6 / 52.3-55.0. So Winograd from 128.
MIN_CHANNELS = 128

#: fewest output positions (oh ow) for which "auto" takes Winograd. Measured as above, fwd+bwd
#: ms, Winograd / im2col / PyTorch: 64->64 batch 64 at 16x16: 25-28 / 34 / 18, at 12x12: 20 / 20 / 10,
#: at 10x10: 14.5 / 13.3 / 7, at 8x8: 9-11 / 9 / 4; 128->128 batch 32 at 8x8: 18.4 / 13.4 / 7.8;
#: 256->256 at 8x8: 61-64 / 46-47 / 30, at 4x4 (batch 16): 33 / 8 / 4. On small planes most
#: tiles hang over the edge; such layers (and the direct 3x3 loops, slower still there: 64->64 at 8x8
#: 14 ms) go to im2col.
MIN_POSITIONS = 14 * 14


def supported(weight_shape, stride, padding, dilation, groups):
    """Whether the Winograd path computes this convolution: 3x3 kernel, stride 1, dilation 1,
    one group, padding at most 2 on each side."""
    return (tuple(weight_shape[2:]) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)
            and groups == 1 and max(padding) <= 2)


def chosen(weight_shape, stride, padding, dilation, groups, out_size):
    """Whether conv2d takes the Winograd path for this shape and output size (see ``ALGORITHM``)."""
    if ALGORITHM == "im2col" or not supported(weight_shape, stride, padding, dilation, groups):
        return False
    return ALGORITHM == "winograd" or (wide(weight_shape) and out_size[0] * out_size[1] >= MIN_POSITIONS)


def wide(weight_shape):
    """Whether a layer has MIN_CHANNELS input and output channels or more."""
    return min(weight_shape[:2]) >= MIN_CHANNELS


@njit(inline="always")
def _padded_plane(plane, ph, pw, hp, wp):
    """An (hp, wp) zero plane holding ``plane`` at offset (ph, pw): the padded image the tiles
    read (zeros before, and after up to the tile grid)."""
    buf = np.zeros((hp, wp), dtype=plane.dtype)
    for h in range(plane.shape[0]):
        src, dst = plane[h], buf[ph + h, pw:]
        for j in range(plane.shape[1]):
            dst[j] = src[j]
    return buf


@njit(inline="always")
def _crop_plane(buf, ph, pw, plane):
    """plane = buf[ph:ph + H, pw:pw + W], the adjoint of _padded_plane (the padding's share
    of the gradient is dropped)."""
    for h in range(plane.shape[0]):
        src, dst = buf[ph + h, pw:], plane[h]
        for j in range(plane.shape[1]):
            dst[j] = src[j]


@njit(cache=True, parallel=True)
def input_transform(x, v, ph, pw, tiles_h, tiles_w):
    """v[4a + b, c, (n, ty, tx)] = (B^T D B)[a, b] with D = Xp[n, c, 2ty:2ty + 4, 2tx:2tx + 4]
    (Xp: x padded with ph, pw zeros before and enough after). One task per plane (n, c)."""
    n_batch, channels, height, width = x.shape
    per_image = tiles_h * tiles_w
    hp, wp = 2 * tiles_h + 2, 2 * tiles_w + 2
    for task in prange(n_batch * channels):
        n, c = task // channels, task % channels
        buf = _padded_plane(x[n, c], ph, pw, hp, wp)
        t = np.empty((4, wp), dtype=x.dtype)
        for ty in range(tiles_h):
            r0, r1, r2, r3 = buf[2 * ty], buf[2 * ty + 1], buf[2 * ty + 2], buf[2 * ty + 3]
            for j in range(wp):  # B^T along the rows of the window
                t[0, j] = r0[j] - r2[j]
                t[1, j] = r1[j] + r2[j]
                t[2, j] = r2[j] - r1[j]
                t[3, j] = r1[j] - r3[j]
            base = n * per_image + ty * tiles_w
            for a in range(4):  # then B along its columns
                row = t[a]
                v0, v1 = v[4 * a, c, base:], v[4 * a + 1, c, base:]
                v2, v3 = v[4 * a + 2, c, base:], v[4 * a + 3, c, base:]
                for tx in range(tiles_w):
                    j = 2 * tx
                    v0[tx] = row[j] - row[j + 2]
                    v1[tx] = row[j + 1] + row[j + 2]
                    v2[tx] = row[j + 2] - row[j + 1]
                    v3[tx] = row[j + 1] - row[j + 3]


@njit(cache=True, parallel=True)
def input_transform_adjoint(dv, dx, ph, pw, tiles_h, tiles_w):
    """dx[n, c] = the windows' B dV_t B^T added where each window was read, less the padding.
    One task per plane (n, c): no two tasks write the same element."""
    n_batch, channels, height, width = dx.shape
    per_image = tiles_h * tiles_w
    hp, wp = 2 * tiles_h + 2, 2 * tiles_w + 2
    for task in prange(n_batch * channels):
        n, c = task // channels, task % channels
        buf = np.zeros((hp, wp), dtype=dx.dtype)
        t = np.empty((4, wp), dtype=dx.dtype)
        for ty in range(tiles_h):
            base = n * per_image + ty * tiles_w
            t[:] = 0.0
            for a in range(4):  # B along the columns: row a of the window's dD B^T ...
                row = t[a]
                v0, v1 = dv[4 * a, c, base:], dv[4 * a + 1, c, base:]
                v2, v3 = dv[4 * a + 2, c, base:], dv[4 * a + 3, c, base:]
                for tx in range(tiles_w):
                    j = 2 * tx
                    row[j] += v0[tx]
                    row[j + 1] += v1[tx] - v2[tx] + v3[tx]
                    row[j + 2] += v1[tx] + v2[tx] - v0[tx]
                    row[j + 3] -= v3[tx]
            r0, r1, r2, r3 = buf[2 * ty], buf[2 * ty + 1], buf[2 * ty + 2], buf[2 * ty + 3]
            for j in range(wp):  # ... then B^T's adjoint along the rows, added into the window
                r0[j] += t[0, j]
                r1[j] += t[1, j] - t[2, j] + t[3, j]
                r2[j] += t[1, j] + t[2, j] - t[0, j]
                r3[j] -= t[3, j]
        _crop_plane(buf, ph, pw, dx[n, c])


@njit(cache=True, parallel=True)
def output_transform(m, bias, y, tiles_h, tiles_w):
    """y[n, o, 2ty:2ty + 2, 2tx:2tx + 2] = A^T M_t A + bias[o] (cut at the output's edge).
    One task per plane (n, o)."""
    n_batch, n_out, oh, ow = y.shape
    per_image = tiles_h * tiles_w
    for task in prange(n_batch * n_out):
        n, o = task // n_out, task % n_out
        shift = bias[o]
        buf = np.empty((2, 2 * tiles_w), dtype=y.dtype)
        s = np.empty((2, 4, tiles_w), dtype=y.dtype)
        for ty in range(tiles_h):
            base = n * per_image + ty * tiles_w
            for b in range(4):  # A^T along the rows of M_t
                m0, m1 = m[b, o, base:], m[4 + b, o, base:]
                m2, m3 = m[8 + b, o, base:], m[12 + b, o, base:]
                s0, s1 = s[0, b], s[1, b]
                for tx in range(tiles_w):
                    s0[tx] = m0[tx] + m1[tx] + m2[tx]
                    s1[tx] = m1[tx] - m2[tx] - m3[tx]
            for i in range(2):  # then A along the columns
                out, q0, q1, q2, q3 = buf[i], s[i, 0], s[i, 1], s[i, 2], s[i, 3]
                for tx in range(tiles_w):
                    out[2 * tx] = q0[tx] + q1[tx] + q2[tx] + shift
                    out[2 * tx + 1] = q1[tx] - q2[tx] - q3[tx] + shift
            for i in range(min(2, oh - 2 * ty)):
                src, dst = buf[i], y[n, o, 2 * ty + i]
                for j in range(ow):
                    dst[j] = src[j]


@njit(cache=True, parallel=True)
def output_transform_adjoint(dy, dm, tiles_h, tiles_w):
    """dm[4a + b, o, (n, ty, tx)] = (A dY_t A^T)[a, b], dY_t the 2x2 block of dy (zero past the
    edge). One task per plane (n, o)."""
    n_batch, n_out, oh, ow = dy.shape
    per_image = tiles_h * tiles_w
    for task in prange(n_batch * n_out):
        n, o = task // n_out, task % n_out
        buf = np.zeros((2, 2 * tiles_w), dtype=dy.dtype)
        for ty in range(tiles_h):
            base = n * per_image + ty * tiles_w
            rows = min(2, oh - 2 * ty)
            for i in range(rows):
                src, dst = dy[n, o, 2 * ty + i], buf[i]
                for j in range(ow):
                    dst[j] = src[j]
            if rows == 1:
                buf[1, :] = 0.0
            e0, e1 = buf[0], buf[1]
            for b in range(4):
                d0, d1 = dm[b, o, base:], dm[4 + b, o, base:]
                d2, d3 = dm[8 + b, o, base:], dm[12 + b, o, base:]
                for tx in range(tiles_w):  # column b of dY_t A^T, then A down the rows
                    j = 2 * tx
                    if b == 0:
                        p, q = e0[j], e1[j]
                    elif b == 1:
                        p, q = e0[j] + e0[j + 1], e1[j] + e1[j + 1]
                    elif b == 2:
                        p, q = e0[j] - e0[j + 1], e1[j] - e1[j + 1]
                    else:
                        p, q = -e0[j + 1], -e1[j + 1]
                    d0[tx] = p
                    d1[tx] = p + q
                    d2[tx] = p - q
                    d3[tx] = -q


# ---------------------------------------------------------------- F(4x4, 3x3)
# 6x6 windows, 4x4 output tiles, 36 products per tile and channel pair instead of 144 (4x fewer):
#   B^T = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
#          [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
#   G   = [[1/4, 0, 0], [-1/6, -1/6, -1/6], [-1/6, 1/6, -1/6], [1/24, 1/12, 1/6], [1/24, -1/12, 1/6], [0, 0, 1]]
#   A^T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
# The 1-d products below (B^T d, A^T m, and the adjoints B x, A d) are applied down the rows
# and then along the columns of each window, as in F(2x2, 3x3).

B_T4 = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                 [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=np.float64)
G4 = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], dtype=np.float64)
A_T4 = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
                dtype=np.float64)


# Multiples are written as sums (2a = a + a): a literal factor would make Numba compute float32
# input in float64, which measured 2x slower; doubling is exact, so 4 d - 5 d' rounds as written.

@njit(inline="always")
def _x2(a):
    return a + a


@njit(inline="always")
def _x4(a):
    return _x2(_x2(a))


@njit(inline="always")
def _bt6(d0, d1, d2, d3, d4, d5):
    """B^T d."""
    return (_x4(d0) - (_x4(d2) + d2) + d4, d3 + d4 - _x4(d1 + d2), _x4(d1 - d2) + d4 - d3,
            _x2(d3 - d1) + d4 - d2, _x2(d1 - d3) + d4 - d2, _x4(d1) - (_x4(d3) + d3) + d5)


@njit(inline="always")
def _b6(x0, x1, x2, x3, x4, x5):
    """B x (the adjoint of B^T d)."""
    return (_x4(x0), _x4(x2 - x1 + x5) + _x2(x4 - x3), -(_x4(x0) + x0) - _x4(x1 + x2) - x3 - x4,
            x1 - x2 + _x2(x3 - x4) - (_x4(x5) + x5), x0 + x1 + x2 + x3 + x4, x5)


@njit(inline="always")
def _at6(m0, m1, m2, m3, m4, m5):
    """A^T m."""
    p, q = m1 + m2, m1 - m2
    r, s = m3 + m4, m3 - m4
    return m0 + p + r, q + _x2(s), p + _x4(r), q + _x2(_x4(s)) + m5


@njit(inline="always")
def _a4(d0, d1, d2, d3):
    """A d (the adjoint of A^T m)."""
    even, odd = d0 + _x4(d2), _x2(d1) + _x2(_x4(d3))
    return d0, d0 + d1 + d2 + d3, d0 - d1 + d2 - d3, even + odd, even - odd, d3


@njit(cache=True, parallel=True)
def input_transform4(x, v, ph, pw, tiles_h, tiles_w):
    """v[6a + b, c, (n, ty, tx)] = (B^T D B)[a, b], D = Xp[n, c, 4ty:4ty + 6, 4tx:4tx + 6]."""
    n_batch, channels, height, width = x.shape
    per_image = tiles_h * tiles_w
    hp, wp = 4 * tiles_h + 2, 4 * tiles_w + 2
    for task in prange(n_batch * channels):
        n, c = task // channels, task % channels
        buf = _padded_plane(x[n, c], ph, pw, hp, wp)
        t = np.empty((6, wp), dtype=x.dtype)
        for ty in range(tiles_h):
            r0, r1, r2 = buf[4 * ty], buf[4 * ty + 1], buf[4 * ty + 2]
            r3, r4, r5 = buf[4 * ty + 3], buf[4 * ty + 4], buf[4 * ty + 5]
            for j in range(wp):
                t[0, j], t[1, j], t[2, j], t[3, j], t[4, j], t[5, j] = _bt6(r0[j], r1[j], r2[j], r3[j], r4[j], r5[j])
            base = n * per_image + ty * tiles_w
            for a in range(6):
                row = t[a]
                v0, v1, v2 = v[6 * a, c, base:], v[6 * a + 1, c, base:], v[6 * a + 2, c, base:]
                v3, v4, v5 = v[6 * a + 3, c, base:], v[6 * a + 4, c, base:], v[6 * a + 5, c, base:]
                for tx in range(tiles_w):
                    d = row[4 * tx:]
                    v0[tx], v1[tx], v2[tx], v3[tx], v4[tx], v5[tx] = _bt6(d[0], d[1], d[2], d[3], d[4], d[5])


@njit(cache=True, parallel=True)
def input_transform_adjoint4(dv, dx, ph, pw, tiles_h, tiles_w):
    """dx[n, c] = sum over windows of B dV_t B^T, added where the window was read, less padding."""
    n_batch, channels, height, width = dx.shape
    per_image = tiles_h * tiles_w
    hp, wp = 4 * tiles_h + 2, 4 * tiles_w + 2
    for task in prange(n_batch * channels):
        n, c = task // channels, task % channels
        buf = np.zeros((hp, wp), dtype=dx.dtype)
        t = np.empty((6, wp), dtype=dx.dtype)
        for ty in range(tiles_h):
            base = n * per_image + ty * tiles_w
            t[:] = 0.0
            for a in range(6):
                row = t[a]
                v0, v1, v2 = dv[6 * a, c, base:], dv[6 * a + 1, c, base:], dv[6 * a + 2, c, base:]
                v3, v4, v5 = dv[6 * a + 3, c, base:], dv[6 * a + 4, c, base:], dv[6 * a + 5, c, base:]
                for tx in range(tiles_w):
                    q0, q1, q2, q3, q4, q5 = _b6(v0[tx], v1[tx], v2[tx], v3[tx], v4[tx], v5[tx])
                    d = row[4 * tx:]
                    d[0] += q0
                    d[1] += q1
                    d[2] += q2
                    d[3] += q3
                    d[4] += q4
                    d[5] += q5
            r0, r1, r2 = buf[4 * ty], buf[4 * ty + 1], buf[4 * ty + 2]
            r3, r4, r5 = buf[4 * ty + 3], buf[4 * ty + 4], buf[4 * ty + 5]
            for j in range(wp):
                q0, q1, q2, q3, q4, q5 = _b6(t[0, j], t[1, j], t[2, j], t[3, j], t[4, j], t[5, j])
                r0[j] += q0
                r1[j] += q1
                r2[j] += q2
                r3[j] += q3
                r4[j] += q4
                r5[j] += q5
        _crop_plane(buf, ph, pw, dx[n, c])


@njit(cache=True, parallel=True)
def output_transform4(m, bias, y, tiles_h, tiles_w):
    """y[n, o, 4ty:4ty + 4, 4tx:4tx + 4] = A^T M_t A + bias[o] (cut at the output's edge)."""
    n_batch, n_out, oh, ow = y.shape
    per_image = tiles_h * tiles_w
    for task in prange(n_batch * n_out):
        n, o = task // n_out, task % n_out
        shift = bias[o]
        buf = np.empty((4, 4 * tiles_w), dtype=y.dtype)
        s = np.empty((4, 6, tiles_w), dtype=y.dtype)
        for ty in range(tiles_h):
            base = n * per_image + ty * tiles_w
            for b in range(6):
                m0, m1, m2 = m[b, o, base:], m[6 + b, o, base:], m[12 + b, o, base:]
                m3, m4, m5 = m[18 + b, o, base:], m[24 + b, o, base:], m[30 + b, o, base:]
                s0, s1, s2, s3 = s[0, b], s[1, b], s[2, b], s[3, b]
                for tx in range(tiles_w):
                    s0[tx], s1[tx], s2[tx], s3[tx] = _at6(m0[tx], m1[tx], m2[tx], m3[tx], m4[tx], m5[tx])
            for i in range(4):
                out, q = buf[i], s[i]
                for tx in range(tiles_w):
                    y0, y1, y2, y3 = _at6(q[0, tx], q[1, tx], q[2, tx], q[3, tx], q[4, tx], q[5, tx])
                    out[4 * tx] = y0 + shift
                    out[4 * tx + 1] = y1 + shift
                    out[4 * tx + 2] = y2 + shift
                    out[4 * tx + 3] = y3 + shift
            for i in range(min(4, oh - 4 * ty)):
                src, dst = buf[i], y[n, o, 4 * ty + i]
                for j in range(ow):
                    dst[j] = src[j]


@njit(cache=True, parallel=True)
def output_transform_adjoint4(dy, dm, tiles_h, tiles_w):
    """dm[6a + b, o, (n, ty, tx)] = (A dY_t A^T)[a, b], dY_t the 4x4 block of dy (zero past the edge)."""
    n_batch, n_out, oh, ow = dy.shape
    per_image = tiles_h * tiles_w
    for task in prange(n_batch * n_out):
        n, o = task // n_out, task % n_out
        buf = np.zeros((4, 4 * tiles_w), dtype=dy.dtype)
        e = np.empty((6, 4 * tiles_w), dtype=dy.dtype)
        for ty in range(tiles_h):
            base = n * per_image + ty * tiles_w
            rows = min(4, oh - 4 * ty)
            for i in range(rows):
                src, dst = dy[n, o, 4 * ty + i], buf[i]
                for j in range(ow):
                    dst[j] = src[j]
            for i in range(rows, 4):
                buf[i, :] = 0.0
            b0, b1, b2, b3 = buf[0], buf[1], buf[2], buf[3]
            for j in range(4 * tiles_w):
                e[0, j], e[1, j], e[2, j], e[3, j], e[4, j], e[5, j] = _a4(b0[j], b1[j], b2[j], b3[j])
            for a in range(6):
                row = e[a]
                d0, d1, d2 = dm[6 * a, o, base:], dm[6 * a + 1, o, base:], dm[6 * a + 2, o, base:]
                d3, d4, d5 = dm[6 * a + 3, o, base:], dm[6 * a + 4, o, base:], dm[6 * a + 5, o, base:]
                for tx in range(tiles_w):
                    d = row[4 * tx:]
                    d0[tx], d1[tx], d2[tx], d3[tx], d4[tx], d5[tx] = _a4(d[0], d[1], d[2], d[3])


# ---------------------------------------------------------------- the convolution

def kernels(tile):
    """(G, input transform, output transform, its adjoint, the input transform's adjoint) of
    F(tile x tile, 3x3)."""
    if tile == 2:
        return G, input_transform, output_transform, output_transform_adjoint, input_transform_adjoint
    return G4, input_transform4, output_transform4, output_transform_adjoint4, input_transform_adjoint4


def tile_for(out_size):
    """F(4x4, 3x3) for outputs of at least 16 x 16, else F(2x2, 3x3) (``TILE`` overrides).
    Measured fwd+bwd, 2 threads, best of 9 (ms, F2 / F4 / im2col): 16->32 at 32x32 batch 64:
    40 / 34 / 43; 64->64 at 16x16: 46 / 40 / 48; 8->16 at 32x32: 14 / 10 / 21; but 32->64 at
    14x14 batch 256: 74 / 101 / 73 (4x4 tiles overhang a 14-wide output by 2)."""
    if TILE:
        return TILE
    return 4 if min(out_size) >= 16 else 2


def tiles(out_size, tile):
    return -(-out_size[0] // tile), -(-out_size[1] // tile)


def weight_transform(weight, g):
    """U[alpha a + b, o, c] = (G K[o, c] G^T)[a, b] = sum_(u,v) G[a, u] G[b, v] K[o, c, u, v]:
    (alpha^2, O, C), computed in float64 as one product with kron(G, G) (G K G^T per channel pair
    took 70 us for a (32, 16, 3, 3) weight, this 10)."""
    alpha = g.shape[0]
    u = np.kron(g, g) @ weight.reshape(-1, 9).T.astype(np.float64)  # (alpha^2, O C)
    return np.ascontiguousarray(u, dtype=weight.dtype).reshape(alpha * alpha, weight.shape[0], weight.shape[1])


def weight_grad_transform(du, g, dtype):
    """dK[o, c] = G^T dU[:, o, c] G for dU (alpha^2, O, C), computed in float64."""
    alpha = g.shape[0]
    du = du.astype(np.float64).reshape(alpha, alpha, du.shape[1], du.shape[2]).transpose(2, 3, 0, 1)
    return np.ascontiguousarray(g.T @ du @ g, dtype=dtype)


def _chunk(n_batch, channels, n_out, tiles_per_image, alpha, itemsize):
    per_image = alpha * alpha * (channels + n_out) * tiles_per_image * itemsize
    return max(1, min(n_batch, CHUNK_BYTES // max(per_image, 1)))


def conv2d_forward(x, weight, bias, padding, out_size, tile=None):
    """Y = conv(x, weight) + bias for a 3x3 kernel, stride 1 (see ``supported``), by
    F(tile x tile, 3x3) (``tile_for`` the output when None)."""
    tile = tile or tile_for(out_size)
    g, transform_input, transform_output = kernels(tile)[:3]
    alpha = g.shape[0]
    n_batch, channels = x.shape[:2]
    n_out = weight.shape[0]
    tiles_h, tiles_w = tiles(out_size, tile)
    per_image = tiles_h * tiles_w
    u = weight_transform(weight, g)
    shift = np.zeros(n_out, dtype=x.dtype) if bias is None else bias
    y = np.empty((n_batch, n_out) + tuple(out_size), dtype=x.dtype)
    chunk = _chunk(n_batch, channels, n_out, per_image, alpha, x.itemsize)
    key = ("wino_v", np.dtype(x.dtype))
    _contents().pop(key, None)
    for n0 in range(0, n_batch, chunk):
        n1 = min(n_batch, n0 + chunk)
        width = (n1 - n0) * per_image
        v = workspace("wino_v", alpha * alpha * channels * width, x.dtype).reshape(-1, channels, width)
        m = workspace("wino_m", alpha * alpha * n_out * width, x.dtype).reshape(-1, n_out, width)
        transform_input(x[n0:n1], v, padding[0], padding[1], tiles_h, tiles_w)
        np.matmul(u, v, out=m)
        transform_output(m, shift, y[n0:n1], tiles_h, tiles_w)
    if chunk >= n_batch:
        _contents()[key] = (x, tuple(padding), tile)
    return y


def conv2d_backward(x, weight, dy, padding, need_dx=True, need_dw=True, tile=None):
    """(dx, dweight): dK = G^T (sum dM V^T) G, dX = adjoint input transform of U^T dM; dM = A dY A^T."""
    tile = tile or tile_for(dy.shape[2:])
    g, transform_input, _, transform_grad, transform_input_back = kernels(tile)
    alpha = g.shape[0]
    n_batch, channels = x.shape[:2]
    n_out, out_size = weight.shape[0], dy.shape[2:]
    tiles_h, tiles_w = tiles(out_size, tile)
    per_image = tiles_h * tiles_w
    u = weight_transform(weight, g)
    du = np.zeros((alpha * alpha, n_out, channels), dtype=x.dtype) if need_dw else None
    part = np.empty_like(du) if need_dw else None
    dx = np.empty_like(x) if need_dx else None
    chunk = _chunk(n_batch, channels, n_out, per_image, alpha, x.itemsize)
    held = _contents().pop(("wino_v", np.dtype(x.dtype)), None)
    kept = chunk >= n_batch and held is not None and held[0] is x and held[1:] == (tuple(padding), tile)
    for n0 in range(0, n_batch, chunk):
        n1 = min(n_batch, n0 + chunk)
        width = (n1 - n0) * per_image
        v = workspace("wino_v", alpha * alpha * channels * width, x.dtype).reshape(-1, channels, width)
        m = workspace("wino_m", alpha * alpha * n_out * width, x.dtype).reshape(-1, n_out, width)
        transform_grad(dy[n0:n1], m, tiles_h, tiles_w)
        if need_dw:
            if not kept:
                transform_input(x[n0:n1], v, padding[0], padding[1], tiles_h, tiles_w)
            weight_grad_product(m, v, out=part)
            du += part
        if need_dx:
            np.matmul(np.swapaxes(u, 1, 2), m, out=v)
            transform_input_back(v, dx[n0:n1], padding[0], padding[1], tiles_h, tiles_w)
    dweight = weight_grad_transform(du, g, x.dtype) if need_dw else None
    return dx, dweight
