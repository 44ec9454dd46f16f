"""Matrix products of the layers' big GEMMs (Linear, the recurrent layers' projections and
weight gradients) on register tiles.

``product(a, b)`` = a b and ``transposed_product(a, b)`` = a^T b run float32 products whose
output is a multiple of TILE_ROWS x TILE_LANES and which hold at least TILED_PRODUCT_FROM
multiply-adds on ``register_tiles.product_tile`` (TILE_ROWS x TILE_LANES sums in vector
registers, K in chunks of DEPTH_CHUNK) over shares of the output's row blocks; everything else
on numpy's matmul (BLAS). A^T's rows are read in place (a^T b: the weight gradients dW = dY^T X);
a's rows are packed K-major per block first (a b; 8 x 8 blocks transposed in registers, which
took d_xw W_ih from 0.86 to 0.51 ms against scalar copies). Where numpy's OpenBLAS runs AVX2
kernels on an AVX-512 CPU (OPENBLAS_CORETYPE=Haswell on 2 Zen 5 cores) the tiles run AVX-512:
an LSTM's (T=50, N=64, I=64, H=128) products, ms, BLAS / tiles: dW_hh 1.79 / 0.98, dW_ih 0.99 /
0.51, x W_ih^T 0.85 / 0.46, d_xw W_ih 0.85 / 0.51.
"""
import numpy as np
from numba import njit

from . import tasks
from .register_tiles import TILE_LANES, TILE_ROWS, pack_rows, row_block_product


def product(a, b, bias=None):
    """a b for (M, K) and (K, N) arrays (module docstring), plus ``bias`` (N,) on every row when
    given: on the tiles each row block starts from the bias, in cache, instead of a pass of its
    own over the output (``xw += b`` over an LSTM's (3200, 512) projection took 167 us)."""
    return _tiled_product(a, b, False, bias)


def transposed_product(a, b):
    """a^T b for (K, M) and (K, N) arrays (module docstring)."""
    return _tiled_product(a, b, True)


#: fewest multiply-adds for the tiles: below, waking the pool's threads costs about what the tiles
#: save (an MLP 784-256-128-10 step's 2M-multiply-add products at batch 64 measured slower on tiles)
TILED_PRODUCT_FROM = 1 << 23
#: fewest rows of A for the tiles when B must be copied first (Linear's W^T): below, the copy of
#: K x N floats costs as much as the product saves (the MLP's first layer at batch 64: 64 rows)
COPIED_B_ROWS = 256
DEPTH_CHUNK = 256  # steps of K per sweep of a share's tiles: their A and B chunks stay in L2


def _tiled_product(a, b, transposed, bias=None):
    """A B (+ bias) with A = a^T when ``transposed``, else a (module docstring)."""
    (depth, rows), width = (a.shape if transposed else a.shape[::-1]), b.shape[1]
    if (a.dtype != np.float32 or b.dtype != np.float32 or rows % TILE_ROWS or width % TILE_LANES
            or depth * rows * width < TILED_PRODUCT_FROM or (rows < COPIED_B_ROWS and not b.flags.c_contiguous)
            or (bias is not None and bias.dtype != np.float32)):
        out = (a.T if transposed else a) @ b
        if bias is not None:
            out += bias
        return out
    out = np.empty((rows, width), dtype=a.dtype)
    tasks.run(_product_tiles, rows // TILE_ROWS, np.ascontiguousarray(a), transposed,
              np.ascontiguousarray(b).reshape(-1), out, np.zeros(0, a.dtype) if bias is None else bias)
    return out


@njit(cache=True, nogil=True)
def _product_tiles(share, first, last, a, transposed, b, out, bias):
    """Row blocks [first, last) of out = A B (+ bias, unless empty; ``_tiled_product``)."""
    rows, width = out.shape
    depth = a.shape[0] if transposed else a.shape[1]
    flat_a, flat_out = a.reshape(-1), out.reshape(-1)
    packed = np.empty(DEPTH_CHUNK * TILE_ROWS, dtype=a.dtype)
    for chunk in range(0, depth, DEPTH_CHUNK):
        count = min(DEPTH_CHUNK, depth - chunk)
        for block in range(first * TILE_ROWS, last * TILE_ROWS, TILE_ROWS):
            if transposed:
                source, start, stride = flat_a, chunk * rows + block, rows
            else:  # the block's rows of this chunk, K-major
                pack_rows(flat_a, block * depth + chunk, depth, count, packed)
                source, start, stride = packed, 0, TILE_ROWS
            if chunk == 0 and bias.size:  # the block's rows start from the bias
                for r in range(block, block + TILE_ROWS):
                    row = flat_out[r * width:(r + 1) * width]
                    for j in range(width):
                        row[j] = bias[j]
            row_block_product(source, start, stride, b, chunk * width, width, count, flat_out, block * width,
                              chunk > 0 or bias.size > 0)
