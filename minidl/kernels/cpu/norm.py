"""Batch normalisation over x viewed as (N, C, L): statistics per channel c over its n = N L values.

    mu = mean(x),  var = mean((x - mu)^2)  (biased),  xh = (x - mu) / sqrt(var + eps),
    y = g xh + b
    db = sum dy,  dg = sum dy xh,
    dx = g / (n sqrt(var + eps)) (n dy - sum dy - xh sum(dy xh))     (batch statistics)
    dx = g dy / sqrt(var + eps)                                      (running statistics: constants)
One parallel task per channel; sums in float64, no fastmath.
"""
import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def batch_norm_forward(x, mean, var, weight, bias, eps, use_batch_stats):
    """y = g (x - mu) / sqrt(var + eps) + b. With ``use_batch_stats`` mu and var are the batch's,
    written into ``mean`` and ``var`` (float64, shape (C,)); otherwise they are read from them."""
    n_batch, channels, length = x.shape
    count = n_batch * length
    y = np.empty_like(x)
    for c in prange(channels):
        if use_batch_stats:
            # one pass over data shifted by its first value: var = mean(d^2) - mean(d)^2 with
            # d = x - x_0 loses no digits to a large mean (float64 sums)
            shift = np.float64(x[0, c, 0])
            total = 0.0
            squares = 0.0
            for n in range(n_batch):
                for k in range(length):
                    d = np.float64(x[n, c, k]) - shift
                    total += d
                    squares += d * d
            mean_d = total / count
            mean[c], var[c] = shift + mean_d, max(squares / count - mean_d * mean_d, 0.0)
        scale = weight[c] / np.sqrt(var[c] + eps)
        offset = bias[c] - mean[c] * scale
        for n in range(n_batch):
            for k in range(length):
                y[n, c, k] = x[n, c, k] * scale + offset
    return y


@njit(cache=True, parallel=True)
def batch_norm_backward(x, dy, mean, var, weight, eps, use_batch_stats):
    """(dx, dweight, dbias) by the closed form in the module docstring."""
    n_batch, channels, length = x.shape
    count = n_batch * length
    dx = np.empty_like(x)
    dweight = np.empty(channels, dtype=x.dtype)
    dbias = np.empty(channels, dtype=x.dtype)
    for c in prange(channels):
        inv_std = 1.0 / np.sqrt(var[c] + eps)
        mu = mean[c]
        sum_dy = 0.0
        sum_dy_xh = 0.0
        for n in range(n_batch):
            for k in range(length):
                g = dy[n, c, k]
                sum_dy += g
                sum_dy_xh += g * (x[n, c, k] - mu) * inv_std
        dweight[c], dbias[c] = sum_dy_xh, sum_dy
        scale = weight[c] * inv_std
        if use_batch_stats:
            for n in range(n_batch):
                for k in range(length):
                    xh = (x[n, c, k] - mu) * inv_std
                    dx[n, c, k] = scale / count * (count * dy[n, c, k] - sum_dy - xh * sum_dy_xh)
        else:
            for n in range(n_batch):
                for k in range(length):
                    dx[n, c, k] = scale * dy[n, c, k]
    return dx, dweight, dbias
