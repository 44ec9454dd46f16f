"""Fused log-softmax + negative log-likelihood (cross-entropy) over rows of logits.

For row x with target class t, class weights w and label smoothing e over C classes:
    lse = max(x) + log sum_c e^(x_c - max(x))        (log-sum-exp, stable for |x| ~ 1e4)
    q   = (1 - e) onehot(t) + e / C                   (smoothed target distribution)
    loss = (1 - e) w_t (lse - x_t) + e / C sum_c w_c (lse - x_c)
    dloss/dx_c = (1 - e) w_t (p_c - 1[c = t]) + e / C (W p_c - w_c),   p = softmax(x), W = sum_c w_c
With w = 1 this is the textbook  dL/dx = p - q.
Rows whose target equals ``ignore_index`` give loss 0 and gradient 0.

Softmax and log-softmax on their own (``softmax_forward`` ... ``log_softmax_backward``) run
over rows the same way: max, exponentials through ``elementary``, float64 sums.

The forward pass keeps the exponentials e^(x - max) (the logits' shape and dtype) and each
row's 1 / sum for the backward pass, which is then one pass without exponentials, p = e (1 /
sum) rounded as a stored p would be. A reduced loss ('mean', 'sum') knows each row's factor in
the forward pass already: there the forward pass writes the gradient itself, from each row's
exponentials while they are in cache, and the backward pass has no kernel (the bench's (256,
1000) mean fwd+bwd, alternating fresh processes: 128-181 -> 111-121 us; forward 50 -> 61 us,
the backward's 19 us and its launch gone). Per row: the max, the exponentials (through
``elementary``: SIMD in float32), their sum; lse - x_t is taken in float64. Scaling the rows in
the forward pass instead cost a fourth pass: 10 of its 89 us on (256, 1000), one Zen 5 core.

Every pass runs over shares of the rows on ``tasks``'s pool from 2^17 values (_SHARES_FROM),
else in one share on the calling thread. The bench's (256, 1000) fwd+bwd step, same-minute A/B
in fresh processes: alone 141-150 us with the forward in two shares against 167-177 on one core;
interleaved with PyTorch, whose OpenMP worker spins on the second core for milliseconds after
each of its ops and holds up the share waiting there, 203-214 against 183-186. Alone is what a
training loop sees, so shares it is. The backward, bound by memory: 21.6 -> 18.8 us in shares.
"""
import numpy as np
from numba import njit

from . import tasks
from .elementary import NO_ZERO_DIVISION_CHECK, exp, rounded_like, row_dot, row_sum, shifted_exponentials


_SHARES_FROM = 1 << 17


def _rows_in_shares(kernel, rows, *arrays):
    """out, a new array shaped as ``rows``, written by kernel(share, first, last, rows, *arrays,
    out): over shares of the rows from _SHARES_FROM values, else in one share here."""
    out = np.empty_like(rows)
    if rows.size < _SHARES_FROM:
        kernel(0, 0, rows.shape[0], rows, *arrays, out)
    else:
        tasks.run(kernel, rows.shape[0], rows, *arrays, out)
    return out


def cross_entropy_forward(logits, target, class_weight, ignore_index, smoothing, gradient_scale=None):
    """(per-row losses, kept for ``cross_entropy_backward``: (exponentials, 1 / sums)). With
    ``gradient_scale`` s (the factor of every row's loss in a reduced loss), kept is instead the
    gradient of s sum_i loss_i, written from each row's exponentials while they are in cache."""
    losses = np.zeros(logits.shape[0], dtype=logits.dtype)
    scales = np.empty(logits.shape[0], dtype=logits.dtype)
    with_gradient = gradient_scale is not None
    out = _rows_in_shares(_cross_entropy_rows, logits, target, class_weight, ignore_index, smoothing,
                          with_gradient, float(gradient_scale) if with_gradient else 1.0, losses, scales)
    return losses, (out if with_gradient else (out, scales))


@njit(cache=True, nogil=True, **NO_ZERO_DIVISION_CHECK)
def _cross_entropy_rows(share, first, last, logits, target, class_weight, ignore_index, smoothing,
                        with_gradient, gradient_scale, losses, scales, out):
    """out: the exponentials, or ``with_gradient`` the gradient (each row's exponentials in a
    scratch row: written in place over them, the gradient loop ran scalar, 87 against 61 us on (256, 1000))."""
    c = logits.shape[1]
    weight_total = _weight_total(class_weight) if with_gradient else 0.0
    scratch = np.empty(c if with_gradient else 0, dtype=out.dtype)
    for i in range(first, last):
        row = logits[i]
        e = scratch if with_gradient else out[i]
        peak, total = shifted_exponentials(row, e)
        scales[i] = 1.0 / total
        t = target[i]
        if t == ignore_index:
            if with_gradient:
                out[i] = 0.0
            continue
        log_sum = np.float64(peak) + np.log(total)  # lse in float64: lse - x must keep its digits
        loss = (1.0 - smoothing) * class_weight[t] * (log_sum - row[t])
        if smoothing > 0.0:
            spread = 0.0
            for k in range(c):
                spread += class_weight[k] * (log_sum - row[k])
            loss += smoothing / c * spread
        losses[i] = loss
        if with_gradient:
            _gradient_row(e, scales[i], t, gradient_scale, class_weight, weight_total, smoothing, out[i])


def cross_entropy_backward(logits, target, kept, grad_rows, class_weight, ignore_index, smoothing):
    """d(sum_i g_i loss_i)/dlogits, with g = ``grad_rows`` and p from what the forward pass kept
    (without a gradient_scale); see the module docstring."""
    exponentials, scales = kept
    return _rows_in_shares(_cross_entropy_backward_rows, exponentials, target, scales, grad_rows, class_weight,
                           ignore_index, smoothing)


@njit(cache=True, nogil=True, **NO_ZERO_DIVISION_CHECK)
def _cross_entropy_backward_rows(share, first, last, exponentials, target, scales, grad_rows, class_weight,
                                 ignore_index, smoothing, grad):
    weight_total = _weight_total(class_weight)
    for i in range(first, last):
        t = target[i]
        if t == ignore_index:
            grad[i] = 0.0
            continue
        _gradient_row(exponentials[i], scales[i], t, grad_rows[i], class_weight, weight_total, smoothing, grad[i])


@njit(cache=True, nogil=True)
def _weight_total(class_weight):
    total = 0.0
    for k in range(class_weight.shape[0]):
        total += class_weight[k]
    return total


@njit(cache=True, nogil=True, **NO_ZERO_DIVISION_CHECK)
def _gradient_row(e, inverse, t, g, class_weight, weight_total, smoothing, out):
    """out = g dloss/dx of one row with target t, p = e * inverse."""
    c = e.shape[0]
    # the row's coefficients rounded to the logits' dtype, so that the loops below stay in
    # float32 for float32 logits
    g_hard = e.dtype.type(g * (1.0 - smoothing) * class_weight[t])
    g_soft = e.dtype.type(g * smoothing / c)
    g_p = e.dtype.type(g_hard + g_soft * weight_total)  # g (hard + soft W)
    if smoothing > 0.0:
        for k in range(c):
            out[k] = g_p * (e[k] * inverse) - g_soft * class_weight[k]
    else:
        for k in range(c):
            out[k] = g_p * (e[k] * inverse)
    out[t] -= g_hard


# Softmax and log-softmax over the last axis of rows (R, C):
#     p = e^(x - max) / sum e^(x - max),   dx = p (dy - sum dy p)
#     y = x - lse, lse = max + log sum e^(x - max) (float64),   dx = dy - e^y sum dy
# As NumPy expressions (a temporary per step) forward + backward of each on (4096, 1000) took
# about 3x PyTorch's time.

def softmax_forward(rows):
    """p of every row."""
    return _rows_in_shares(_softmax_rows, rows)


@njit(cache=True, nogil=True, **NO_ZERO_DIVISION_CHECK)
def _softmax_rows(share, first, last, rows, probabilities):
    for i in range(first, last):
        p = probabilities[i]
        scale = rounded_like(p, 1.0 / shifted_exponentials(rows[i], p)[1])
        for k in range(rows.shape[1]):
            p[k] *= scale


def softmax_backward(probabilities, grad):
    """dx = p (dy - sum dy p) per row, from p and dy (R, C)."""
    return _rows_in_shares(_softmax_backward_rows, grad, probabilities)


@njit(cache=True, nogil=True, **NO_ZERO_DIVISION_CHECK)
def _softmax_backward_rows(share, first, last, grad, probabilities, dx):
    for i in range(first, last):
        p, g, out = probabilities[i], grad[i], dx[i]
        total = rounded_like(g, row_dot(g, p))
        for k in range(grad.shape[1]):
            out[k] = p[k] * (g[k] - total)


def log_softmax_forward(rows):
    """y = x - lse of every row."""
    return _rows_in_shares(_log_softmax_rows, rows)


@njit(cache=True, nogil=True, **NO_ZERO_DIVISION_CHECK)
def _log_softmax_rows(share, first, last, rows, y):
    for i in range(first, last):
        row, out = rows[i], y[i]
        peak, total = shifted_exponentials(row, out)  # out: scratch for the sum
        lse = rounded_like(out, np.float64(peak) + np.log(total))
        for k in range(rows.shape[1]):
            out[k] = row[k] - lse


def log_softmax_backward(y, grad):
    """dx = dy - e^y sum dy per row, from y and dy (R, C)."""
    return _rows_in_shares(_log_softmax_backward_rows, y, grad)


@njit(cache=True, nogil=True, **NO_ZERO_DIVISION_CHECK)
def _log_softmax_backward_rows(share, first, last, y, grad, dx):
    for i in range(first, last):
        out, g, dx_row = y[i], grad[i], dx[i]
        scale = rounded_like(g, row_sum(g))
        for k in range(y.shape[1]):
            dx_row[k] = g[k] - exp(out[k]) * scale
