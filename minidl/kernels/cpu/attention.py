"""The softmax of scaled dot-product attention, fused over rows of the scores (B, L, S):

    forward:  P_ij = e^(s_ij - m_i) / sum_k e^(s_ik - m_i),  m_i = max_k s_ik, with keys j > i
              masked out when ``causal`` (top-left aligned, as PyTorch); a row whose every key is
              masked (all -inf) gives P = 0, as PyTorch's scaled_dot_product_attention
    backward: dS_ij = P_ij (dP_ij - sum_k dP_ik P_ik)       (J = diag(p) - p p^T per row)

The matrix products around it (S = Q K^T, O = P V and their gradients) are ``batched_matmul``:
the heads in shares (``tasks.run_calling_blas``), each head's product one call of a
single-threaded BLAS. np.matmul hands each small product to OpenBLAS's threads in turn, and
slows down on a transposed operand: for 128 heads of (128 x 64) @ (64 x 128) in float32 on 2
cores, Q K^T took 6.6 ms by np.matmul (3.5 ms on a contiguous copy of K^T), 2.0 ms here and
2.0 ms by torch.bmm; P V took 2.1 ms either way. Numba prange loops (dot products with
fastmath, axpy and 4-row-blocked forms alike) took 16 ms.

Softmax: one parallel task per row; the row's max, exponentials and float64 sums through
``elementary`` (SIMD in float32, as the cross-entropy's; libm's scalar exp took most of the
softmax's time); no fastmath elsewhere (-inf and NaN stay exact).
"""
import numpy as np
from numba import njit, prange

from . import tasks
from .elementary import NO_ZERO_DIVISION_CHECK, rounded_like, row_dot, shifted_exponentials


def batched_matmul(a, b, transpose_a=False, transpose_b=False):
    """C[h] = op(A[h]) op(B[h]) for every h of the leading axis of the C-contiguous stacks A
    and B (3-d), op = transpose where asked: Q K^T is ``batched_matmul(q, k, transpose_b=True)``.
    Heads in shares from 2^19 elements read and written (``tasks.run``), one BLAS call each."""
    rows = a.shape[2] if transpose_a else a.shape[1]
    columns = b.shape[1] if transpose_b else b.shape[2]
    out = np.empty((a.shape[0], rows, columns), dtype=a.dtype)
    tasks.run_calling_blas(_batched_matmul_heads, a.shape[0], a, b, transpose_a, transpose_b, out,
                           work=a.size + b.size + out.size)
    return out


@njit(cache=True, nogil=True)
def _batched_matmul_heads(share, first, last, a, b, transpose_a, transpose_b, out):
    for h in range(first, last):
        if transpose_a and transpose_b:
            np.dot(a[h].T, b[h].T, out[h])
        elif transpose_a:
            np.dot(a[h].T, b[h], out[h])
        elif transpose_b:
            np.dot(a[h], b[h].T, out[h])
        else:
            np.dot(a[h], b[h], out[h])


@njit(cache=True, parallel=True, **NO_ZERO_DIVISION_CHECK)
def softmax_rows(scores, causal):
    """Overwrite ``scores`` (B, L, S) with its row softmax P; see the module docstring."""
    batch, queries, keys = scores.shape
    for task in prange(batch * queries):
        i = task % queries
        row = scores[task // queries, i]
        width = min(i + 1, keys) if causal else keys
        if width == 0:
            continue
        kept = row[:width]
        top, total = shifted_exponentials(kept, kept)
        if top == -np.inf:  # every key masked (and the exponentials NaN): zeros
            row[:] = 0
            continue
        scale = rounded_like(row, 1.0 / total)
        for j in range(width):
            kept[j] *= scale
        row[width:] = 0
    return scores


@njit(cache=True, parallel=True)
def softmax_rows_backward(probs, grad):
    """Overwrite ``grad`` (dP, (B, L, S)) with dS = P (dP - sum_k dP_k P_k) per row."""
    batch, queries, keys = probs.shape
    for task in prange(batch * queries):
        p, g = probs[task // queries, task % queries], grad[task // queries, task % queries]
        dot = row_dot(g, p)
        for j in range(keys):
            g[j] = p[j] * (g[j] - dot)
    return grad
