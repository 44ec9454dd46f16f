"""The softmax of scaled dot-product attention on the GPU, over rows of the scores (B, L, S),
with the formulas of ``kernels.cpu.attention``:

    forward:  P_ij = e^(s_ij - m_i) / sum_k e^(s_ik - m_i) over the unmasked keys (j <= i when
              ``causal``); a row whose every key is masked gives P = 0
    backward: dS_ij = P_ij (dP_ij - sum_k dP_ik P_ik)

One thread per row, in place, sums in float64. The matrix products around it
(``batched_matmul``) are the cuda array's matmul (``kernels/cuda/matmul.py``), which reads a
transposed operand through its strides.
"""
import math

import numpy as np

from ._runtime import kernel_builder
from .array import as_cuda
from .elementwise import launch

cuda = None  # numba.cuda, bound by kernel_builder on first use


@kernel_builder
def _softmax_rows():
    @cuda.jit
    def kernel(rows, scores, queries, keys, causal):
        r = cuda.grid(1)
        step = cuda.gridsize(1)
        while r < rows:
            start = r * keys
            width = min(r % queries + 1, keys) if causal else keys
            top = -math.inf
            for j in range(width):
                top = max(top, scores[start + j])
            total = 0.0
            if top != -math.inf:
                for j in range(width):
                    e = math.exp(scores[start + j] - top)
                    scores[start + j] = e
                    total += e
            for j in range(keys):
                scores[start + j] = scores[start + j] / total if j < width and total > 0 else 0
            r += step
    return kernel


@kernel_builder
def _softmax_rows_backward():
    @cuda.jit
    def kernel(rows, probs, grad, keys):
        r = cuda.grid(1)
        step = cuda.gridsize(1)
        while r < rows:
            start = r * keys
            dot = 0.0
            for j in range(keys):
                dot += grad[start + j] * probs[start + j]
            for j in range(keys):
                grad[start + j] = probs[start + j] * (grad[start + j] - dot)
            r += step
    return kernel


def batched_matmul(a, b, transpose_a=False, transpose_b=False):
    """C[h] = op(A[h]) op(B[h]) over the leading axis of the stacks A and B (3-d), op = transpose
    where asked."""
    return np.matmul(np.swapaxes(a, 1, 2) if transpose_a else a, np.swapaxes(b, 1, 2) if transpose_b else b)


def softmax_rows(scores, causal):
    """Overwrite the contiguous ``scores`` (B, L, S) with its row softmax P."""
    scores = as_cuda(scores).ascontiguous()
    batch, queries, keys = scores.shape
    launch(_softmax_rows(), batch * queries, scores.flat(), queries, keys, bool(causal))
    return scores


def softmax_rows_backward(probs, grad):
    """Overwrite ``grad`` (dP, (B, L, S)) with dS = P (dP - sum_k dP_k P_k) per row."""
    probs, grad = as_cuda(probs).ascontiguous(), as_cuda(grad).ascontiguous()
    batch, queries, keys = probs.shape
    launch(_softmax_rows_backward(), batch * queries, probs.flat(), grad.flat(), keys)
    return grad
