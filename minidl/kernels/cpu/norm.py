"""Batch normalisation over x viewed as (N, C, L): statistics per channel c over its n = N L values.

    mu = mean(x),  var = mean((x - mu)^2)  (biased),  xh = (x - mu) / sqrt(var + eps),
    y = g xh + b
    db = sum dy,  dg = sum dy xh,
    dx = g / (n sqrt(var + eps)) (n dy - sum dy - xh sum(dy xh))     (batch statistics)
    dx = g dy / sqrt(var + eps)                                      (running statistics: constants)
One parallel task per channel; sums in float64 (see ``_channel_sums``), no fastmath; rows are
views indexed from 0, which lets the elementwise loops vectorise.
"""
import numpy as np
from numba import njit, prange


@njit(cache=True)
def _channel_sums(u, v, c, shift_u, shift_v):
    """(sum (u - su), sum (u - su)(v - sv)) over channel c of (N, C, L) arrays, in float64: first
    down the N rows for every position k (L independent chains, a loop that vectorises with no
    reordering left to the compiler), then across the L positions."""
    length = u.shape[2]
    first = np.zeros(length)
    second = np.zeros(length)
    for n in range(u.shape[0]):
        u_row, v_row = u[n, c], v[n, c]  # C-contiguous rows: unit stride is known
        for k in range(length):
            d = np.float64(u_row[k]) - shift_u
            first[k] += d
            second[k] += d * (np.float64(v_row[k]) - shift_v)
    return first.sum(), second.sum()


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
            # d = x - x_0 loses no digits to a large mean
            shift = np.float64(x[0, c, 0])
            total, squares = _channel_sums(x, x, c, shift, shift)
            mean_d = total / count
            mean[c], var[c] = shift + mean_d, max(squares / count - mean_d * mean_d, 0.0)
        scale = weight[c] / np.sqrt(var[c] + eps)
        offset = bias[c] - mean[c] * scale
        for n in range(n_batch):
            source, target = x[n, c], y[n, c]
            for k in range(length):
                target[k] = source[k] * scale + offset
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
        sum_dy, sum_dy_x = _channel_sums(dy, x, c, 0.0, mu)
        sum_dy_xh = sum_dy_x * inv_std
        dweight[c], dbias[c] = sum_dy_xh, sum_dy
        scale = weight[c] * inv_std
        # dx = scale dy - scale / n (sum dy + xh sum(dy xh)) = scale dy + a x + b, per channel
        a = -scale / count * sum_dy_xh * inv_std if use_batch_stats else 0.0
        b = -scale / count * sum_dy - a * mu if use_batch_stats else 0.0
        for n in range(n_batch):
            source, grad, target = x[n, c], dy[n, c], dx[n, c]
            for k in range(length):
                target[k] = scale * grad[k] + a * source[k] + b
    return dx, dweight, dbias


# ---------------------------------------------------------------- layer and group normalisation
# Statistics per group of M values (a row of layer norm; the C/G channels x L positions of one
# sample's group in group norm), affine per feature (layer norm) or channel (group norm):
#     mu = mean(x),  var = mean((x - mu)^2),  r = 1 / sqrt(var + eps),  xh = (x - mu) r,
#     y = g xh + b
#     db = sum dy,  dg = sum dy xh       (over the rows / over the samples and positions)
#     dxh = g dy,  dx = r / M (M dxh - sum dxh - xh sum(dxh xh))   (sums within the group)
# Forward keeps (mu, r) per group in float64 for the backward; nothing else.

_ROWS = 32  # rows per parallel task of the layer-norm backward
_LANES = 8  # independent partial sums per row reduction: no fastmath, yet the adds vectorise


@njit(cache=True)
def _row_statistics(row, eps):
    """(mu, r) of one contiguous row, in float64, two passes (the row is in cache). Each pass
    keeps _LANES partial sums, one per k mod _LANES: independent chains the compiler can put
    in one vector register without reordering any sum (about 2x faster than one chain)."""
    n, full = row.size, row.size - row.size % _LANES
    lanes = np.zeros(_LANES)
    for start in range(0, full, _LANES):
        for lane in range(_LANES):
            lanes[lane] += row[start + lane]
    total = lanes.sum()
    for k in range(full, n):
        total += row[k]
    mu = total / n
    lanes[:] = 0.0
    for start in range(0, full, _LANES):
        for lane in range(_LANES):
            d = row[start + lane] - mu
            lanes[lane] += d * d
    spread = lanes.sum()
    for k in range(full, n):
        d = row[k] - mu
        spread += d * d
    return mu, 1.0 / np.sqrt(spread / n + eps)


@njit(cache=True)
def _row_gradient_sums(x_row, dy_row, weight, mu, inv):
    """(sum dxh, sum dxh xh) over one row, dxh = g dy, xh = (x - mu) r: _LANES chains each."""
    n, full = x_row.size, x_row.size - x_row.size % _LANES
    first, second = np.zeros(_LANES), np.zeros(_LANES)
    for start in range(0, full, _LANES):
        for lane in range(_LANES):
            k = start + lane
            g = np.float64(dy_row[k]) * weight[k]
            first[lane] += g
            second[lane] += g * (x_row[k] - mu)
    sum_g, sum_g_x = first.sum(), second.sum()
    for k in range(full, n):
        g = np.float64(dy_row[k]) * weight[k]
        sum_g += g
        sum_g_x += g * (x_row[k] - mu)
    return sum_g, sum_g_x * inv


@njit(cache=True, parallel=True)
def layer_norm_forward(x, weight, bias, eps):
    """x (R, D), weight and bias (D,): (y, mean, rstd), the statistics (R,) in float64."""
    rows, features = x.shape
    y = np.empty_like(x)
    mean, rstd = np.empty(rows), np.empty(rows)
    for r in prange(rows):
        source, target = x[r], y[r]
        mu, inv = _row_statistics(source, eps)
        mean[r], rstd[r] = mu, inv
        for k in range(features):
            target[k] = (source[k] - mu) * inv * weight[k] + bias[k]
    return y, mean, rstd


@njit(cache=True, parallel=True)
def layer_norm_backward(x, dy, mean, rstd, weight):
    """(dx, dweight, dbias) by the closed form above, in one pass over x and dy: each parallel
    task takes _ROWS rows, writes their dx and its own partial sums of dy and dy xh per feature
    (no two tasks write one sum); the partial sums are added at the end."""
    rows, features = x.shape
    dx = np.empty_like(x)
    tasks = (rows + _ROWS - 1) // _ROWS
    partial = np.zeros((tasks, 2, features))
    for task in prange(tasks):
        sum_dy, sum_dy_xh = partial[task, 0], partial[task, 1]
        for r in range(task * _ROWS, min(rows, (task + 1) * _ROWS)):
            source, grad, target = x[r], dy[r], dx[r]
            mu, inv = mean[r], rstd[r]
            sum_g, sum_g_xh = _row_gradient_sums(source, grad, weight, mu, inv)
            a, b = sum_g / features, sum_g_xh / features
            for k in range(features):
                xh = (source[k] - mu) * inv
                target[k] = inv * (grad[k] * weight[k] - a - xh * b)
                sum_dy[k] += grad[k]
                sum_dy_xh[k] += grad[k] * xh
    totals = partial.sum(axis=0)
    return dx, totals[1].astype(x.dtype), totals[0].astype(x.dtype)


@njit(cache=True, parallel=True)
def group_norm_forward(x, weight, bias, eps):
    """x (N, G, K, L) (K = C / G channels per group), weight and bias (G K,):
    (y, mean, rstd), the statistics (N, G) in float64."""
    n_batch, groups, per_group, length = x.shape
    y = np.empty_like(x)
    mean, rstd = np.empty((n_batch, groups)), np.empty((n_batch, groups))
    for task in prange(n_batch * groups):
        n, g = task // groups, task % groups
        mu, inv = _row_statistics(x[n, g].reshape(-1), eps)
        mean[n, g], rstd[n, g] = mu, inv
        for k in range(per_group):
            scale = inv * weight[g * per_group + k]
            offset = bias[g * per_group + k] - mu * scale
            source, target = x[n, g, k], y[n, g, k]
            for p in range(length):
                target[p] = source[p] * scale + offset
    return y, mean, rstd


@njit(cache=True, parallel=True)
def group_norm_backward(x, dy, mean, rstd, weight):
    """(dx, dweight, dbias) by the closed form above: one task per (sample, group) for dx, one
    per channel for dweight and dbias."""
    n_batch, groups, per_group, length = x.shape
    count = per_group * length
    dx = np.empty_like(x)
    for task in prange(n_batch * groups):
        n, g = task // groups, task % groups
        mu, inv = mean[n, g], rstd[n, g]
        sum_g = 0.0
        sum_g_xh = 0.0
        for k in range(per_group):
            w = weight[g * per_group + k]
            source, grad = x[n, g, k], dy[n, g, k]
            for p in range(length):
                value = np.float64(grad[p]) * w
                sum_g += value
                sum_g_xh += value * (source[p] - mu) * inv
        a, b = sum_g / count, sum_g_xh / count
        for k in range(per_group):
            w = weight[g * per_group + k]
            source, grad, target = x[n, g, k], dy[n, g, k], dx[n, g, k]
            for p in range(length):
                target[p] = inv * (grad[p] * w - a - (source[p] - mu) * inv * b)
    dweight = np.empty(groups * per_group, dtype=x.dtype)
    dbias = np.empty(groups * per_group, dtype=x.dtype)
    for channel in prange(groups * per_group):
        g, k = channel // per_group, channel % per_group
        sum_dy = 0.0
        sum_dy_xh = 0.0
        for n in range(n_batch):
            mu, inv = mean[n, g], rstd[n, g]
            source, grad = x[n, g, k], dy[n, g, k]
            for p in range(length):
                sum_dy += grad[p]
                sum_dy_xh += grad[p] * (source[p] - mu) * inv
        dweight[channel], dbias[channel] = sum_dy_xh, sum_dy
    return dx, dweight, dbias
