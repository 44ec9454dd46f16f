"""Winograd F(2x2, 3x3) correlations on register tiles (float32; 3x3, stride 1).

Each 2 x 2 block of outputs ("tile") of an image is, as in ``winograd`` (its B, G, A),

    Y[o, t] = A^T [ sum_c U[o, c] . V[c, t] ] A,   U[o, c] = G K[o, c] G^T,   V[c, t] = B^T D[c, t] B

with D[c, t] the 4 x 4 window of the zero-padded input under tile t and . elementwise: 16
multiply-adds per tile and channel pair where the direct tiles take 36 (2.25x fewer). By
transform position k = 4a + b the sum over c is 16 GEMMs M[k] = U[k] V[k]. Unlike ``winograd``
(whole-batch transforms, BLAS GEMMs: its V and M of the bench's conv2d are 17 and 34 MB, and
its transforms alone took 2 ms each), every block of TILE_LANES tiles of one image goes through
all three steps while its V (16 x C x TILE_LANES floats) and M (16 x TILE_ROWS x TILE_LANES)
stay in cache (``correlate``):

    V of the block's tiles, LANES at a time      ``register_tiles.winograd_input_tile``
    M[k] for TILE_ROWS output channels           ``register_tiles.product_tile`` (depth C), 16 calls
    Y of those channels, LANES tiles at a time   ``register_tiles.winograd_output_tile`` (+ bias)

It reads the planes ``register_conv`` fills for its direct tiles (zero-padded, Wq wide), so
``register_conv`` runs a forward pass (Y = K * X) and a dX (the correlation of dY with the
flipped kernel, in the same per-image backward kernel as dK, from the same dY planes) either
way. dK is the adjoint in K (``weight_grad``; padding at most 1, so that x's planes hold every
tile's window): dU[k] = sum over tiles dM[k] V[k]^T with dM = A dY A^T, then dK = G^T dU G.
The bench's conv2d (64, 16, 32, 32) x (32, 16, 3, 3) pad 1 on 2 Zen 5 cores, ms, direct tiles /
these: forward 1.60 / 1.26, backward 3.38 / 2.78 (dK alone 1.96 / 1.60).

A k's slab of V and M is a multiple of a cache line plus one line (SKEW), so that the 16 slabs
of a transform do not fall on one set of L1 (16 streams 4 KB apart took a dX pass past 10 ms).

An image holding a NaN or inf is left to the direct tiles: in a transform inf - inf makes NaN
of outputs that the direct sum leaves inf or finite. So are all images when the weight does
(forward and dX).
"""
import numpy as np
from numba import njit

from .direct_conv import _cache_aligned
from .register_tiles import (LANES, TILE_LANES, TILE_ROWS, WINOGRAD_GRAD_CHANNELS, product_tile, winograd_grad_tile,
                             winograd_input_tile, winograd_output_tile, winograd_weight_grad_tile)
from . import winograd  # its G and weight_transform; imported whole: winograd imports conv, which imports this

SKEW = 16  # floats after each k's slab of V and M (one cache line)


#: fewest C O oh ow of a correlation for the Winograd tiles, and the smallest output side, in the
#: forward pass and in the backward pass's (dX, dK): below, the transforms and fills cost more
#: than the products save (measured in the docstring of ``chosen``)
MIN_WORK = 1 << 18
MIN_SIDE, MIN_BACKWARD_SIDE = 14, 16


def chosen(channels, n_out, out_size, backward=False):
    """Whether a float32 correlation of ``channels`` planes into ``n_out`` (3x3, stride 1) over an
    out_size output runs here: 8-64 input channels, C O oh ow >= MIN_WORK, no side below MIN_SIDE
    (MIN_BACKWARD_SIDE for dX and dK), AVX-512 (measured there). Forward ms, these tiles / the
    direct tiles, batch 64, 2 Zen 5 cores: 16->32 at 32x32 1.26 / 1.60, 32->32 at 28x28 2.12 /
    2.51, 64->64 at 28x28 6.26 / 9.10, 64->64 at 16x16 2.32 / 3.01, 16->16 at 32x32 0.62 / 0.77,
    32->64 at 14x14 0.99 / 1.21 (batch 256: 4.01 / 4.88); but 16->16 at 16x16 0.24 / 0.22, 8->16 at
    16x16 0.16 / 0.12, 16->32 at 12x12 0.33 / 0.29, 32->32 at 7x7 0.32 / 0.21, 64->128 at 7x7 1.65
    / 1.37, 8->8 at 32x32 0.27 / 0.23. Backward (dX, dK, db) 16->32 at 32x32 2.78 / 3.38, 64->64
    at 16x16 6.16 / 7.06, 16->16 at 32x32 1.40 / 1.72; but 32->64 at 14x14 3.23 / 3.02 (batch 256
    11.18 / 12.15) and 64->64 at 8x8 3.16 / 2.89."""
    return (LANES == 16 and 8 <= channels <= 64 and channels * n_out * out_size[0] * out_size[1] >= MIN_WORK
            and min(out_size) >= (MIN_BACKWARD_SIDE if backward else MIN_SIDE))


def transformed_kernels(weight):
    """U = G K G^T (float64, cast) of a (O, C, 3, 3) weight, packed for ``product_tile``: for
    each k and block of TILE_ROWS output channels, (C, TILE_ROWS) K-major; the missing channels
    of the last block are zero."""
    n_out, channels = weight.shape[:2]
    n_blocks = -(-n_out // TILE_ROWS)
    packed = np.zeros((16, n_blocks * TILE_ROWS, channels), dtype=weight.dtype)
    packed[:, :n_out] = winograd.weight_transform(weight, winograd.G)
    return np.ascontiguousarray(packed.reshape(16, n_blocks, TILE_ROWS, channels).transpose(0, 1, 3, 2)).reshape(-1)


@njit(cache=True)
def blocks(height, width):
    """How many blocks of TILE_LANES tiles a height x width output plane has."""
    return -(-(-(-height // 2) * -(-width // 2)) // TILE_LANES)


@njit(inline="always")
def workspaces(channels, dtype):
    """(v, m): one thread's V and M of a block, for ``channels`` input planes."""
    v = _cache_aligned(16 * (channels * TILE_LANES + SKEW), dtype)
    v[:] = 0.0  # a short block's lanes past its tiles are computed, not stored: finite
    return v, _cache_aligned(16 * (TILE_ROWS * TILE_LANES + SKEW), dtype)


@njit(cache=True, nogil=True)
def correlate(planes, size, wq, channels, kernels, bias, first_block, last_block, out, v, m):
    """out[o, i, j] = bias[o] + sum_(c,u,v) K[o, c, u, v] Xp[c, i + u, j + v] for the tiles of
    blocks [first_block, last_block) of out (O, oh, ow), by F(2x2, 3x3) with ``kernels`` =
    ``transformed_kernels(K)``; Xp[c] = planes[c size:] (flat, Wq wide), zero wherever a tile's
    window passes the input (rows to 2 ceil(oh / 2) + 2, columns to 2 ceil(ow / 2) + 2).
    v, m: ``workspaces(channels)``."""
    n_out, oh, ow = out.shape
    n_blocks = -(-n_out // TILE_ROWS)
    tiles_w = -(-ow // 2)
    tiles = -(-oh // 2) * tiles_w
    v_step, m_step = channels * TILE_LANES + SKEW, TILE_ROWS * TILE_LANES + SKEW
    for block in range(first_block, last_block):
        begin, end = block * TILE_LANES, min(tiles, (block + 1) * TILE_LANES)
        tile = begin
        while tile < end:  # the block's tiles, one row of tiles at a time
            ty, tx = tile // tiles_w, tile % tiles_w
            count = min(tiles_w - tx, end - tile)
            for c in range(channels):
                for j in range(0, count, LANES):
                    winograd_input_tile(planes, c * size + 2 * ty * wq + 2 * (tx + j), wq, v,
                                        c * TILE_LANES + tile - begin + j, v_step, count - j)
            tile += count
        for out_block in range(n_blocks):
            for k in range(16):
                product_tile(kernels, (k * n_blocks + out_block) * channels * TILE_ROWS, TILE_ROWS, v, k * v_step,
                             TILE_LANES, channels, m, k * m_step, TILE_LANES, False)
            _output_transform(m, m_step, bias, out_block * TILE_ROWS, begin, end, tiles_w, out)


@njit(cache=True, nogil=True)
def _output_transform(m, m_step, bias, first_out, begin, end, tiles_w, out):
    """out[o] for TILE_ROWS output channels from first_out (those that exist) over tiles [begin,
    end) of an image, from their M (``m``, lane = tile - begin); a last tile row or column
    past the output's is not stored."""
    n_out, oh, ow = out.shape
    flat = out.reshape(-1)
    tile = begin
    while tile < end:
        ty, tx = tile // tiles_w, tile % tiles_w
        count = min(tiles_w - tx, end - tile)
        whole = min(count, ow // 2 - tx)  # tiles with both columns inside
        second_row = 2 * ty + 1 < oh
        for o in range(first_out, min(first_out + TILE_ROWS, n_out)):
            top = (o * oh + 2 * ty) * ow + 2 * tx
            for j in range(0, count, LANES):
                stored = min(count, j + LANES) + min(whole, j + LANES) - 2 * j  # of the 2 LANES outputs
                winograd_output_tile(m, (o - first_out) * TILE_LANES + tile - begin + j, m_step, bias[o], flat,
                                     top + 2 * j, top + ow + 2 * j, stored, stored if second_row else 0)
        tile += count


# ---------------------------------------------------------------- dK
#
# dU[k] = sum over tiles dM[k] V[k]^T with dM = A dY A^T per tile, then dK = G^T dU G per (o, c):
# the adjoint of the forward's steps in K. The tiles go in chunks whose V and dM fit
# WEIGHT_GRAD_BYTES; for each k the sums over a chunk's tiles run in vector lanes
# (``winograd_weight_grad_tile``: LANES / 8 output x 8 input channels) and are added up per call
# into dU (float64).

WEIGHT_GRAD_BYTES = 640 << 10  # V + dM of a chunk of tiles: within L2 beside the planes
GRAD_ROWS = LANES // WINOGRAD_GRAD_CHANNELS  # output channels of a dK tile


@njit(inline="always")
def _rounded(length, step):
    return -(-length // step) * step


@njit(inline="always")
def weight_grad_workspaces(channels, n_out, tiles, dtype):
    """(v, dm, du, chunk): one thread's V and dM of a chunk of ``chunk`` tiles (zero rows past the
    channels) and its dU (float64, zero)."""
    rows = max(1, _rounded(channels, WINOGRAD_GRAD_CHANNELS) + _rounded(n_out, GRAD_ROWS))
    chunk = max(LANES, min(_rounded(tiles, LANES), WEIGHT_GRAD_BYTES // (16 * 4 * rows) // LANES * LANES))
    v = _cache_aligned(16 * (_rounded(channels, WINOGRAD_GRAD_CHANNELS) * chunk + SKEW), dtype)
    dm = _cache_aligned(16 * (_rounded(n_out, GRAD_ROWS) * chunk + SKEW), dtype)
    v[:] = 0.0
    dm[:] = 0.0
    du = np.zeros(16 * _rounded(n_out, GRAD_ROWS) * _rounded(channels, WINOGRAD_GRAD_CHANNELS))
    return v, dm, du, chunk


@njit(cache=True, nogil=True)
def weight_grad(grad_planes, grad_start, planes, size, wq, channels, oh, ow, v, dm, du, chunk):
    """du[k, o, c] += sum over the tiles of one image of dM[k, o, t] V[k, c, t], dM from dY[o] =
    grad_planes[o size + grad_start:] (Wq wide, zero past the output), V from Xp[c] =
    planes[c size:] as ``correlate`` reads them; v, dm, du, chunk: ``weight_grad_workspaces``."""
    n_out = du.size // 16 // _rounded(channels, WINOGRAD_GRAD_CHANNELS)
    channel_rows = _rounded(channels, WINOGRAD_GRAD_CHANNELS)
    v_step, dm_step = channel_rows * chunk + SKEW, n_out * chunk + SKEW
    tiles_w = -(-ow // 2)
    tiles = -(-oh // 2) * tiles_w
    for begin in range(0, tiles, chunk):
        end = min(tiles, begin + chunk)
        tile = begin
        while tile < end:  # the chunk's tiles, one row of tiles at a time
            ty, tx = tile // tiles_w, tile % tiles_w
            count = min(tiles_w - tx, end - tile)
            for j in range(0, count, LANES):
                lane = tile - begin + j
                for c in range(channels):
                    winograd_input_tile(planes, c * size + 2 * ty * wq + 2 * (tx + j), wq, v, c * chunk + lane, v_step,
                                        count - j)
                for o in range(n_out):
                    winograd_grad_tile(grad_planes, o * size + grad_start + 2 * ty * wq + 2 * (tx + j), wq, dm,
                                       o * chunk + lane, dm_step, count - j)
            tile += count
        length = _rounded(end - begin, LANES)
        for k in range(16):  # the last vector's lanes past the chunk's tiles add nothing
            for c in range(channels):
                v[k * v_step + c * chunk + end - begin:k * v_step + c * chunk + length] = 0.0
            for o in range(n_out):
                dm[k * dm_step + o * chunk + end - begin:k * dm_step + o * chunk + length] = 0.0
        for k in range(16):
            for o in range(0, n_out, GRAD_ROWS):
                for c in range(0, channels, WINOGRAD_GRAD_CHANNELS):
                    winograd_weight_grad_tile(dm, k * dm_step + o * chunk, chunk, v, k * v_step + c * chunk, chunk,
                                              length, du, (k * n_out + o) * channel_rows + c, channel_rows)


@njit(cache=True, nogil=True)
def add_weight_grad(du, channels, dweight):
    """dweight[o, c] += G^T dU[:, o, c] G (dweight flat (O', C, 3, 3), float64): dK from the dU of
    ``weight_grad``."""
    g = winograd.G
    channel_rows = _rounded(channels, WINOGRAD_GRAD_CHANNELS)
    out_rows = du.size // 16 // channel_rows
    for o in range(min(out_rows, dweight.size // (9 * channels))):
        for c in range(channels):
            for u in range(3):
                for w in range(3):
                    total = 0.0
                    for k in range(16):
                        total += g[k // 4, u] * du[(k * out_rows + o) * channel_rows + c] * g[k % 4, w]
                    dweight[(o * channels + c) * 9 + 3 * u + w] += total
