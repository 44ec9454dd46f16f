"""Fused log-softmax + negative log-likelihood (cross-entropy) over rows of logits.

For row x with target class t, class weights w and label smoothing e over C classes:
    lse = max(x) + log sum_c e^(x_c - max(x))        (log-sum-exp, stable for |x| ~ 1e4)
    q   = (1 - e) onehot(t) + e / C                   (smoothed target distribution)
    loss = (1 - e) w_t (lse - x_t) + e / C sum_c w_c (lse - x_c)
    dloss/dx_c = (1 - e) w_t (p_c - 1[c = t]) + e / C (W p_c - w_c),   p = softmax(x), W = sum_c w_c
With w = 1 this is the textbook  dL/dx = p - q.
Rows whose target equals ``ignore_index`` give loss 0 and gradient 0.
The exponentials go through ``elementary`` (SIMD in float32); x - max(x) and x - lse are
taken in the logits' dtype, so float32 stays float32. The rows run in parallel only from
a million logits: between other ops, waking the thread pool for both passes of a (256, 1000)
cross-entropy cost more (1.6 ms) than running them serially (1.1 ms).
"""
import numpy as np

from . import size_dispatched
from .elementary import exp, row_max, sum_exp


_PARALLEL_FROM = 1 << 20


@size_dispatched(parallel_from=_PARALLEL_FROM)
def cross_entropy_forward(loop):
    """Per-row losses and each row's log-sum-exp in float64 (kept for the backward pass)."""
    def kernel(logits, target, class_weight, ignore_index, smoothing):
        n, c = logits.shape
        losses = np.zeros(n, dtype=logits.dtype)
        lse = np.zeros(n, dtype=np.float64)  # float64: x - lse must not lose digits when |x| ~ 1e4
        for i in loop(n):
            row = logits[i]
            peak = row_max(row)
            log_sum = peak + np.log(sum_exp(row, peak, np.empty(c, dtype=logits.dtype)))
            lse[i] = log_sum
            t = target[i]
            if t == ignore_index:
                continue
            loss = (1.0 - smoothing) * class_weight[t] * (log_sum - row[t])
            if smoothing > 0.0:
                spread = 0.0
                for k in range(c):
                    spread += class_weight[k] * (log_sum - row[k])
                loss += smoothing / c * spread
            losses[i] = loss
        return losses, lse
    return kernel


@size_dispatched(parallel_from=_PARALLEL_FROM)
def cross_entropy_backward(loop):
    """d(sum_i g_i loss_i)/dlogits, with g = ``grad_rows``; see the module docstring."""
    def kernel(logits, target, lse, grad_rows, class_weight, ignore_index, smoothing):
        n, c = logits.shape
        grad = np.empty_like(logits)
        weight_total = 0.0
        for k in range(c):
            weight_total += class_weight[k]
        for i in loop(n):
            t = target[i]
            out = grad[i]
            if t == ignore_index:
                out[:] = 0.0
                continue
            # the row's coefficients in the logits' dtype (an array store casts), so that the
            # loop below stays in float32 for float32 logits
            scale = np.empty(3, dtype=logits.dtype)
            scale[0] = grad_rows[i] * (1.0 - smoothing) * class_weight[t]  # g hard
            scale[1] = grad_rows[i] * smoothing / c                        # g soft
            scale[2] = scale[0] + scale[1] * weight_total                  # g (hard + soft W)
            g_hard, g_soft, g_p = scale[0], scale[1], scale[2]
            row, log_sum = logits[i], lse[i]
            for k in range(c):
                out[k] = row[k] - log_sum  # x - lse in float64, stored in the logits' dtype
            for k in range(c):
                out[k] = g_p * exp(out[k]) - g_soft * class_weight[k]
            out[t] -= g_hard
        return grad
    return kernel
