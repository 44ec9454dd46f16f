"""Fused log-softmax + negative log-likelihood (cross-entropy) over rows of logits.

For row x with target class t, class weights w and label smoothing e over C classes:
    lse = max(x) + log sum_c e^(x_c - max(x))        (log-sum-exp, stable for |x| ~ 1e4)
    q   = (1 - e) onehot(t) + e / C                   (smoothed target distribution)
    loss = (1 - e) w_t (lse - x_t) + e / C sum_c w_c (lse - x_c)
    dloss/dx_c = (1 - e) w_t (p_c - 1[c = t]) + e / C (W p_c - w_c),   p = softmax(x), W = sum_c w_c
With w = 1 this is the textbook  dL/dx = p - q.
Rows whose target equals ``ignore_index`` give loss 0 and gradient 0.
"""
import numpy as np

from . import size_dispatched


@size_dispatched
def cross_entropy_forward(loop):
    """Per-row losses and each row's log-sum-exp in float64 (kept for the backward pass)."""
    def kernel(logits, target, class_weight, ignore_index, smoothing):
        n, c = logits.shape
        losses = np.zeros(n, dtype=logits.dtype)
        lse = np.zeros(n, dtype=np.float64)  # float64: x - lse must not lose digits when |x| ~ 1e4
        for i in loop(n):
            row = logits[i]
            peak = row[0]
            for k in range(1, c):
                if row[k] > peak:
                    peak = row[k]
            total = 0.0
            for k in range(c):
                total += np.exp(row[k] - peak)
            log_sum = peak + np.log(total)
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


@size_dispatched
def cross_entropy_backward(loop):
    """d(sum_i g_i loss_i)/dlogits, with g = ``grad_rows``; see the module docstring."""
    def kernel(logits, target, lse, grad_rows, class_weight, ignore_index, smoothing):
        n, c = logits.shape
        grad = np.zeros_like(logits)
        weight_total = 0.0
        for k in range(c):
            weight_total += class_weight[k]
        for i in loop(n):
            t = target[i]
            if t == ignore_index:
                continue
            g = grad_rows[i]
            hard = (1.0 - smoothing) * class_weight[t]
            soft = smoothing / c
            for k in range(c):
                p = np.exp(logits[i, k] - lse[i])
                grad[i, k] = g * (hard * p + soft * (weight_total * p - class_weight[k]))
            grad[i, t] -= g * hard
        return grad
    return kernel
