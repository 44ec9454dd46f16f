"""Fused log-softmax + negative log-likelihood on the GPU: one thread per row of logits.

The same functions, signatures and formulas as ``kernels.cpu.softmax_ce`` (see its docstring):
    lse = max(x) + log sum_c e^(x_c - max(x))     (kept in float64 for the backward pass)
    loss = (1 - e) w_t (lse - x_t) + e / C sum_c w_c (lse - x_c)
    dloss/dx_c = (1 - e) w_t (p_c - 1[c = t]) + e / C (W p_c - w_c)
"""
import math

import numpy as np

from ._runtime import kernel_builder
from .array import as_cuda, full
from .elementwise import launch

cuda = None  # numba.cuda, bound by kernel_builder on first use


@kernel_builder
def _forward_kernel():
    @cuda.jit
    def kernel(n, c, logits, target, class_weight, ignore_index, smoothing, losses, lse):
        i = cuda.grid(1)
        step = cuda.gridsize(1)
        while i < n:
            row = i * c
            peak = logits[row]
            for k in range(1, c):
                if logits[row + k] > peak:
                    peak = logits[row + k]
            total = 0.0
            for k in range(c):
                total += math.exp(logits[row + k] - peak)
            log_sum = peak + math.log(total)
            lse[i] = log_sum
            t = target[i]
            if t != ignore_index:
                loss = (1.0 - smoothing) * class_weight[t] * (log_sum - logits[row + t])
                if smoothing > 0.0:
                    spread = 0.0
                    for k in range(c):
                        spread += class_weight[k] * (log_sum - logits[row + k])
                    loss += smoothing / c * spread
                losses[i] = loss
            i += step
    return kernel


@kernel_builder
def _backward_kernel():
    @cuda.jit
    def kernel(n, c, logits, target, lse, grad_rows, class_weight, ignore_index, smoothing, grad):
        i = cuda.grid(1)
        step = cuda.gridsize(1)
        weight_total = 0.0  # each thread sums the C weights itself: no host round trip
        for k in range(c):
            weight_total += class_weight[k]
        while i < n:
            t = target[i]
            row = i * c
            if t == ignore_index:
                for k in range(c):
                    grad[row + k] = 0
            else:
                g = grad_rows[i]
                hard = (1.0 - smoothing) * class_weight[t]
                soft = smoothing / c
                for k in range(c):
                    p = math.exp(logits[row + k] - lse[i])
                    grad[row + k] = g * (hard * p + soft * (weight_total * p - class_weight[k]))
                grad[row + t] -= g * hard
            i += step
    return kernel


def cross_entropy_forward(logits, target, class_weight, ignore_index, smoothing, gradient_scale=None):
    """Per-row losses (logits' dtype) and each row's log-sum-exp (float64); with ``gradient_scale``
    s, instead of the log-sum-exps the gradient of s sum_i loss_i (kernels.cpu.softmax_ce)."""
    logits, target, class_weight = (as_cuda(a) for a in (logits, target, class_weight))
    n, c = logits.shape
    losses = full((n,), 0, logits.dtype)
    lse = full((n,), 0, np.float64)
    launch(_forward_kernel(), n, c, logits.flat(), target.flat(), class_weight.flat(),
           np.int64(ignore_index), np.float64(smoothing), losses.base, lse.base)
    if gradient_scale is None:
        return losses, lse
    scale = as_cuda(gradient_scale).astype(logits.dtype)  # a device or host scalar
    return losses, cross_entropy_backward(logits, target, lse, scale, class_weight, ignore_index, smoothing)


def cross_entropy_backward(logits, target, lse, grad_rows, class_weight, ignore_index, smoothing):
    """d(sum_i g_i loss_i)/dlogits with g = ``grad_rows``."""
    logits, target, lse, grad_rows, class_weight = (
        as_cuda(a) for a in (logits, target, lse, grad_rows, class_weight))
    n, c = logits.shape
    grad = full((n, c), 0, logits.dtype)
    launch(_backward_kernel(), n, c, logits.flat(), target.flat(), lse.flat(),
           grad_rows.broadcast_to((n,)).ascontiguous().flat(), class_weight.flat(),
           np.int64(ignore_index), np.float64(smoothing), grad.base)
    return grad


# Softmax and log-softmax over the last axis of rows (R, C), as NumPy expressions on the cuda
# array (the formulas of kernels.cpu.softmax_ce).

def softmax_forward(rows):
    e = np.exp(rows - rows.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_backward(probabilities, grad):
    return probabilities * (grad - (grad * probabilities).sum(axis=1, keepdims=True))


def log_softmax_forward(rows):
    shifted = rows - rows.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def log_softmax_backward(y, grad):
    return grad - np.exp(y) * grad.sum(axis=1, keepdims=True)
