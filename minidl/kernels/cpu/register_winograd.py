"""Winograd F(2x2, 3x3) convolutions on register tiles (float32; 3x3, stride 1, padding 0 to 2).

Each 2 x 2 block of outputs ("tile") of an image is, as in ``winograd`` (its B, G, A),

    Y[o, t] = A^T [ sum_c U[o, c] . V[c, t] ] A,   U[o, c] = G K[o, c] G^T,   V[c, t] = B^T D[c, t] B

with D[c, t] the 4 x 4 window of the zero-padded input under tile t and . elementwise: 16
multiply-adds per tile and channel pair where the direct tiles take 36 (2.25x fewer). By
transform position k = 4a + b the sum over c is 16 GEMMs M[k] = U[k] V[k]. Unlike ``winograd``
(whole-batch transforms, BLAS GEMMs: its V and M of the bench's conv2d are 17 and 34 MB, and
its transforms alone took 2 ms each), every block of TILE_LANES tiles of one image goes through
all three steps while its V (16 x C x TILE_LANES floats) and M (16 x TILE_ROWS x TILE_LANES)
stay in cache:

    V of the block's tiles, LANES at a time      ``register_tiles.winograd_input_tile``
    M[k] for TILE_ROWS output channels           ``register_tiles.product_tile`` (depth C), 16 calls
    Y of those channels, LANES tiles at a time   ``register_tiles.winograd_output_tile`` (+ bias)

The input transform reads the image's stride-2 phase planes (``register_conv._fill_phases``):
columns 2tx and 2tx + 1 of consecutive tiles sit in consecutive floats of two planes. A k's
slab of V and M is a multiple of a cache line plus one line (SKEW), so that the 16 slabs of a
transform do not fall on one set of L1 (16 streams 4 KB apart took the dX pass below 10 ms).

The bench's conv2d forward (64, 16, 32, 32) x (32, 16, 3, 3) pad 1 on 2 Zen 5 cores: 1.45 ms
on the direct tiles, 1.07-1.16 ms here (one core: fill 0.28, input transform 0.25, products
1.0, output transform 0.41 ms). ``chosen`` says where it pays (forward only: computing dX this
way, after a dK pass that no longer shares its dY planes, was a wash).

An image holding a NaN or inf is left to the direct tiles (``register_conv``): in a transform
inf - inf makes NaN of outputs that the direct sum leaves inf or finite. So are all images when
the weight or bias does.
"""
import numpy as np
from numba import njit

from . import register_conv, tasks
from .direct_conv import _cache_aligned, finite
from .register_conv import _fill_phases, _stack_of
from .register_tiles import LANES, TILE_LANES, TILE_ROWS, product_tile, winograd_input_tile, winograd_output_tile
from .winograd import G, weight_transform

SKEW = 16  # floats after each k's slab of V and M (one cache line)


def chosen(x_shape, weight_shape, out_size):
    """Whether a float32 3x3 stride-1 convolution ``register_conv`` supports goes here: measured,
    forward ms, these tiles / the direct tiles, batch 64, 2 Zen 5 cores: 16->32 at 32x32 1.16 /
    1.45, 32->32 at 28x28 2.20 / 2.30, 64->64 at 16x16 2.64 / 2.82, 8->16 at 32x32 0.40 / 0.41; slower
    with fewer channels (1->32 at 28x28 0.41 / 0.19, 16->16 at 16x16 0.28 / 0.21), more (128->128 at
    14x14, batch 16: 3.6 / 2.3) or blocks of tiles less than 7/8 full (32->64 at 14x14, 49 tiles:
    1.37 / 1.18; 64->64 at 8x8: 1.43 / 0.96). AVX-512 only (measured there)."""
    n_out, channels = weight_shape[:2]
    tiles = -(-out_size[0] // 2) * -(-out_size[1] // 2)
    lanes = -(-tiles // TILE_LANES) * TILE_LANES
    return LANES == 16 and 16 <= channels <= 64 and n_out >= 32 and 8 * tiles >= 7 * lanes


def conv2d_forward(x, weight, bias, padding):
    """Y = K * X + b for float32 x (N, C, H, W), weight (O, C, 3, 3), bias (O,) or None, padding 0
    to 2 on each side (module docstring)."""
    n_batch, n_out = x.shape[0], weight.shape[0]
    if not (finite(np.ascontiguousarray(weight)) and (bias is None or finite(bias))):
        return register_conv.conv2d_forward(x, weight, bias, (1, 1), padding)
    out_size = (x.shape[2] + 2 * padding[0] - 2, x.shape[3] + 2 * padding[1] - 2)
    tiles_h, tiles_w = -(-out_size[0] // 2), -(-out_size[1] // 2)
    y = np.empty((n_batch, n_out) + out_size, dtype=x.dtype)
    shift = np.zeros(n_out, dtype=x.dtype) if bias is None else bias
    nonfinite = np.zeros(n_batch, dtype=np.bool_)
    blocks = -(-tiles_h * tiles_w // TILE_LANES)
    tasks.run(_tile_blocks, n_batch * blocks, x, _transformed_kernels(weight), shift, padding[0], padding[1],
              tiles_h, tiles_w, y, nonfinite)
    held = np.flatnonzero(nonfinite)
    if held.size:
        y[held] = register_conv.conv2d_forward(x[held], weight, bias, (1, 1), padding)
    return y


def _transformed_kernels(weight):
    """U = G K G^T (float64, cast) packed for ``product_tile``: for each k and block of TILE_ROWS
    output channels, (C, TILE_ROWS) K-major; the missing channels of the last block are zero."""
    n_out, channels = weight.shape[:2]
    n_blocks = -(-n_out // TILE_ROWS)
    packed = np.zeros((16, n_blocks * TILE_ROWS, channels), dtype=weight.dtype)
    packed[:, :n_out] = weight_transform(weight, G)
    return np.ascontiguousarray(packed.reshape(16, n_blocks, TILE_ROWS, channels).transpose(0, 1, 3, 2)).reshape(-1)


@njit(cache=True, nogil=True)
def _tile_blocks(share, first, last, x, kernels, bias, ph, pw, tiles_h, tiles_w, y, nonfinite):
    """Tasks (image n, block of TILE_LANES of its tiles, row-major) = divmod(task, blocks per
    image): the block's outputs, every output channel; an image holding a NaN or inf is flagged
    in ``nonfinite`` and skipped."""
    channels = x.shape[1]
    n_out = y.shape[1]
    n_blocks = -(-n_out // TILE_ROWS)
    tiles = tiles_h * tiles_w
    blocks = -(-tiles // TILE_LANES)
    wq, rows = tiles_w + 1, tiles_h + 1  # phase planes of Xp's 2 tiles_h + 2 rows and columns
    stack, planes = _stack_of(4 * channels, rows, wq, x.dtype)
    v_step, m_step = channels * TILE_LANES + SKEW, TILE_ROWS * TILE_LANES + SKEW
    v = _cache_aligned(16 * v_step, x.dtype)
    v[:] = 0.0  # a short block's lanes past its tiles are computed, not stored: finite
    m = _cache_aligned(16 * m_step, x.dtype)
    for task in range(first, last):
        n, block = task // blocks, task % blocks
        if task == first or block == 0:
            if not finite(x[n]):
                nonfinite[n] = True
            else:
                _fill_phases(x[n], ph, pw, 2, wq, rows, planes)
        if nonfinite[n]:
            continue
        begin, end = block * TILE_LANES, min(tiles, (block + 1) * TILE_LANES)
        tile = begin
        while tile < end:  # the block's tiles, one row of tiles at a time
            ty, tx = tile // tiles_w, tile % tiles_w
            count = min(tiles_w - tx, end - tile)
            for c in range(channels):
                for j in range(0, count, LANES):
                    winograd_input_tile(stack, c * planes.shape[1] + ty * wq + tx + j, channels * planes.shape[1], wq,
                                        v, c * TILE_LANES + tile - begin + j, v_step, count - j)
            tile += count
        for out_block in range(n_blocks):
            for k in range(16):
                product_tile(kernels, (k * n_blocks + out_block) * channels * TILE_ROWS, TILE_ROWS, v, k * v_step,
                             TILE_LANES, channels, m, k * m_step, TILE_LANES, False)
            _output_transform(m, m_step, bias, out_block * TILE_ROWS, begin, end, tiles_w, y[n])


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
