"""Batch normalisation over x viewed as (N, C, L): statistics per channel c over its n = N L values.

    mu = mean(x),  var = mean((x - mu)^2)  (biased),  xh = (x - mu) / sqrt(var + eps),
    y = g xh + b
    db = sum dy,  dg = sum dy xh,
    dx = g / (n sqrt(var + eps)) (n dy - sum dy - xh sum(dy xh))     (batch statistics)
    dx = g dy / sqrt(var + eps)                                      (running statistics: constants)
One task per channel (tasks.run); sums in float64 (see ``_channel_sums``), no fastmath; rows are
views indexed from 0, which lets the elementwise loops vectorise.
"""
import numpy as np
from numba import njit

from . import tasks
from .elementary import row_sum


@njit(cache=True)
def _channel_sums(u, v, c, shift_u, shift_v):
    """(sum (u - su), sum (u - su)(v - sv)) over channel c of (N, C, L) arrays, in float64: first
    down the N rows for every position k (L independent chains, a loop that vectorises with no
    reordering left to the compiler), then across the L positions in order. Plain loops, not
    np.zeros and ndarray.sum: their implementations took 0.2 s to compile with a cold cache, in
    the first step of every model with batch norm."""
    length = u.shape[2]
    first = np.empty(length)
    second = np.empty(length)
    for k in range(length):
        first[k] = 0.0
        second[k] = 0.0
    for n in range(u.shape[0]):
        u_row, v_row = u[n, c], v[n, c]  # C-contiguous rows: unit stride is known
        for k in range(length):
            d = np.float64(u_row[k]) - shift_u
            first[k] += d
            second[k] += d * (np.float64(v_row[k]) - shift_v)
    total_first = total_second = 0.0
    for k in range(length):
        total_first += first[k]
        total_second += second[k]
    return total_first, total_second


# Short rows (L below DENSE_BELOW: BatchNorm1d after a Linear layer has L = 1) run by rows
# instead: a channel's values sit C L apart down the batch, and a task per channel walked every
# cache line once per channel. Shares of the batch's rows add into float64 partial sums per
# (channel, position), vectorised across them and added up in share order, then a second pass
# writes y or dx; same shifted sums, same per-channel coefficients as the channel kernels.
# Forward + backward on 2 cores (ms, channel tasks / rows): (4096, 512) 30.6 / 3.6, (64, 512, 4)
# 0.69 / 0.38; from L = 16 the channel tasks win ((64, 256, 16) 0.36 / 0.71).
DENSE_BELOW = 8


def _dense_sums(u, v, shift_u, shift_v):
    """(sum (u - su), sum (u - su)(v - sv)) per channel of (N, C, L) arrays in float64, the shifts
    per channel: by shares of rows, each its own partial sums, added in share order."""
    n_batch, channels, length = u.shape
    work = 2 * u.size
    partial = np.empty((tasks.shares(n_batch, work), 2, channels * length))
    tasks.run(_dense_sums_rows, n_batch, u.reshape(n_batch, -1), v.reshape(n_batch, -1),
              np.repeat(shift_u, length), np.repeat(shift_v, length), partial, work=work)
    totals = partial.sum(axis=0).reshape(2, channels, length).sum(axis=2)
    return totals[0], totals[1]


@njit(cache=True, nogil=True)
def _dense_sums_rows(share, first, last, u, v, shift_u, shift_v, partial):
    first_sums, second_sums = partial[share, 0], partial[share, 1]
    for k in range(first_sums.size):
        first_sums[k] = 0.0
        second_sums[k] = 0.0
    for n in range(first, last):
        u_row, v_row = u[n], v[n]
        for k in range(u_row.size):
            d = np.float64(u_row[k]) - shift_u[k]
            first_sums[k] += d
            second_sums[k] += d * (np.float64(v_row[k]) - shift_v[k])


@njit(cache=True, nogil=True)
def _dense_affine_rows(share, first, last, u, v, a, b, c, out):
    """out = a u + b v + c per column (float64 coefficients), for rows first <= n < last."""
    for n in range(first, last):
        u_row, v_row, target = u[n], v[n], out[n]
        for k in range(u_row.size):
            target[k] = a[k] * u_row[k] + b[k] * v_row[k] + c[k]


def _dense_forward(x, mean, var, weight, bias, eps, use_batch_stats):
    n_batch, channels, length = x.shape
    count = n_batch * length
    if use_batch_stats:
        shift = x[0, :, 0].astype(np.float64)
        total, squares = _dense_sums(x, x, shift, shift)
        mean_d = total / count
        mean[:], var[:] = shift + mean_d, np.maximum(squares / count - mean_d * mean_d, 0.0)
    scale = weight / np.sqrt(var + eps)
    y = np.empty_like(x)
    columns = [np.repeat(coefficient, length) for coefficient in (scale, np.zeros(channels), bias - mean * scale)]
    tasks.run(_dense_affine_rows, n_batch, x.reshape(n_batch, -1), x.reshape(n_batch, -1), *columns,
              y.reshape(n_batch, -1), work=2 * x.size)
    return y


def _dense_backward(x, dy, mean, var, weight, eps, use_batch_stats):
    n_batch, channels, length = x.shape
    count = n_batch * length
    inv_std = 1.0 / np.sqrt(var + eps)
    sum_dy, sum_dy_x = _dense_sums(dy, x, np.zeros(channels), mean)
    sum_dy_xh = sum_dy_x * inv_std
    scale = weight * inv_std
    a = -scale / count * sum_dy_xh * inv_std if use_batch_stats else np.zeros(channels)
    b = -scale / count * sum_dy - a * mean if use_batch_stats else np.zeros(channels)
    dx = np.empty_like(x)
    columns = [np.repeat(coefficient, length) for coefficient in (scale, a, b)]
    tasks.run(_dense_affine_rows, n_batch, dy.reshape(n_batch, -1), x.reshape(n_batch, -1), *columns,
              dx.reshape(n_batch, -1), work=3 * x.size)
    return dx, sum_dy_xh.astype(x.dtype), sum_dy.astype(x.dtype)


def batch_norm_forward(x, mean, var, weight, bias, eps, use_batch_stats):
    """y = g (x - mu) / sqrt(var + eps) + b. With ``use_batch_stats`` mu and var are the batch's,
    written into ``mean`` and ``var`` (float64, shape (C,)); otherwise they are read from them."""
    if x.shape[2] < DENSE_BELOW:
        return _dense_forward(x, mean, var, weight, bias, eps, use_batch_stats)
    y = np.empty_like(x)
    work = 3 * x.size  # two reads of x, one write
    tasks.run(_batch_norm_forward_channels, x.shape[1], x, mean, var, weight, bias, eps, use_batch_stats, y,
              work=work, balance=work >= tasks.BALANCE_MIN_WORK)
    return y


@njit(cache=True, nogil=True)
def _batch_norm_forward_channels(share, first, last, x, mean, var, weight, bias, eps, use_batch_stats, y):
    n_batch, channels, length = x.shape
    count = n_batch * length
    for c in range(first, last):
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


def batch_norm_backward(x, dy, mean, var, weight, eps, use_batch_stats):
    """(dx, dweight, dbias) by the closed form in the module docstring."""
    if x.shape[2] < DENSE_BELOW:
        return _dense_backward(x, dy, mean, var, weight, eps, use_batch_stats)
    channels = x.shape[1]
    dx = np.empty_like(x)
    dweight = np.empty(channels, dtype=x.dtype)
    dbias = np.empty(channels, dtype=x.dtype)
    work = 5 * x.size  # x and dy read twice, dx written
    tasks.run(_batch_norm_backward_channels, channels, x, dy, mean, var, weight, eps, use_batch_stats,
              dx, dweight, dbias, work=work, balance=work >= tasks.BALANCE_MIN_WORK)
    return dx, dweight, dbias


@njit(cache=True, nogil=True)
def _batch_norm_backward_channels(share, first, last, x, dy, mean, var, weight, eps, use_batch_stats, dx,
                                  dweight, dbias):
    n_batch, channels, length = x.shape
    count = n_batch * length
    for c in range(first, last):
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


# ---------------------------------------------------------------- layer and group normalisation
# Statistics per group of M values (a row of layer norm; the C/G channels x L positions of one
# sample's group in group norm), affine per feature (layer norm) or channel (group norm):
#     mu = mean(x),  var = mean((x - mu)^2),  r = 1 / sqrt(var + eps),  xh = (x - mu) r,
#     y = g xh + b
#     db = sum dy,  dg = sum dy xh       (over the rows / over the samples and positions)
#     dxh = g dy,  dx = r / M (M dxh - sum dxh - xh sum(dxh xh))   (sums within the group)
# Forward keeps (mu, r) per row or group in float64 for the backward; nothing else.
#
# Row sums are float64 loops with reassociation allowed and nothing else (fastmath={"reassoc"}:
# NaN and inf keep their meaning), so LLVM runs them in SIMD lanes: the statistics of 4,096
# rows of 256 took 0.25 ms on one core, against 0.65 ms with eight float32 chains read through
# 8-long slices of the row. The order depends only on the row's length: results are repeatable.
#
# Layer norm runs its rows in shares (tasks.run, one thread below PARALLEL_MIN_WORK), group norm
# its (sample, group) pairs, as batch norm its channels: as prange loops, the workqueue's
# launches made a LayerNorm(256) step on (32, 128, 256) 2.0-2.25 ms, in shares 1.3-1.7 ms; a
# GroupNorm(8, 32) step on (64, 32, 32, 32), whose backward took a second pass per channel for
# dweight and dbias, 6.1-6.8 ms, in shares with per-share partial sums 2.95-3.1 ms (PyTorch 1.6).

@njit(cache=True, fastmath={"reassoc"})
def _row_squares(row, c):
    """sum_k (row[k] - c)^2 as a float64."""
    total = 0.0
    for k in range(row.size):
        d = np.float64(row[k] - c)
        total += d * d
    return total


@njit(cache=True)
def _row_statistics(rows, first, last, eps, mean, rstd):
    """(mu, r) of rows first <= i < last into mean[i], rstd[i], in float64, by two passes over
    each row (it stays in cache): mu = sum x / n, then var = sum (x - mu)^2 / n, free of the
    cancellation of E[x^2] - mu^2. The second pass centres on mu rounded to the rows' dtype.
    Each step runs over all the rows before the next: one row's sum -> mu -> squares -> r is a
    chain of dependent latencies that the core overlaps only across rows."""
    n = rows.shape[1]
    for i in range(first, last):
        mean[i] = row_sum(rows[i]) / n
    for i in range(first, last):
        rstd[i] = _row_squares(rows[i], rows.dtype.type(mean[i])) / n
    for i in range(first, last):
        rstd[i] = 1.0 / np.sqrt(rstd[i] + eps)


@njit(cache=True, fastmath={"reassoc"})
def _row_gradient_sums(x_row, dy_row, weight, mu, inv):
    """(sum dxh, sum dxh xh) over one row, dxh = g dy, xh = (x - mu) r, in float64."""
    c = x_row.dtype.type(mu)
    sum_g = 0.0
    sum_g_x = 0.0
    for k in range(x_row.size):
        g = np.float64(dy_row[k] * weight[k])
        sum_g += g
        sum_g_x += g * (x_row[k] - c)
    return sum_g, sum_g_x * inv


def layer_norm_forward(x, weight, bias, eps):
    """x (R, D), weight and bias (D,): (y, mean, rstd), the statistics (R,) in float64;
    y = (x - mu) r g + b in x's dtype. Rows in shares (tasks.run)."""
    y = np.empty_like(x)
    mean, rstd = np.empty(x.shape[0]), np.empty(x.shape[0])
    work = 2 * x.size  # x read (the row stays in cache for its second pass), y written
    tasks.run(_layer_norm_forward_rows, x.shape[0], x, weight, bias, eps, y, mean, rstd, work=work)
    return y, mean, rstd


# Layer norm's forward takes its rows in blocks of LATENCY_ROWS: a block's statistics first, row
# by row, then its outputs. Row by row, 4,096 rows of 256 took 290 us on one core, in blocks
# 186 us (two shares: 147 -> 103 us), the same results. (The backward, its gradient sums taken
# the same way, measured no faster: its per-feature sums of dy and dy xh bound it.)
LATENCY_ROWS = 8


@njit(cache=True, nogil=True)
def _layer_norm_forward_rows(share, first, last, x, weight, bias, eps, y, mean, rstd):
    for start in range(first, last, LATENCY_ROWS):
        stop = min(start + LATENCY_ROWS, last)
        _row_statistics(x, start, stop, eps, mean, rstd)
        for r in range(start, stop):
            source, target = x[r], y[r]
            centre, scale = x.dtype.type(mean[r]), x.dtype.type(rstd[r])
            for k in range(x.shape[1]):
                target[k] = (source[k] - centre) * scale * weight[k] + bias[k]


# Layer norm's dweight and dbias are sums over the rows per feature. Each share adds a block of
# ROWS_PER_BLOCK rows in the data's dtype, then the block into its float64 partial sums: in
# float64 row by row, the conversions and half-width adds took a third of the backward's time
# (4,096 rows of 256 on one core: 0.57 -> 0.38 ms), and a float32 sum over 64 rows errs by
# at most 64 ulp of its terms' sum of magnitudes.
ROWS_PER_BLOCK = 64


def layer_norm_backward(x, dy, mean, rstd, weight):
    """(dx, dweight, dbias) by the closed form above, in one pass over x and dy: each share of
    rows writes their dx and its own float64 partial sums of dy and dy xh per feature (from
    blocks of ROWS_PER_BLOCK rows summed in x's dtype), added up in share order at the end."""
    dx = np.empty_like(x)
    work = 3 * x.size  # x and dy read, dx written
    partial = np.empty((tasks.shares(x.shape[0], work), 2, x.shape[1]))
    tasks.run(_layer_norm_backward_rows, x.shape[0], x, dy, mean, rstd, weight, dx, partial, work=work)
    totals = partial.sum(axis=0)
    return dx, totals[1].astype(x.dtype), totals[0].astype(x.dtype)


@njit(cache=True, nogil=True)
def _layer_norm_backward_rows(share, first, last, x, dy, mean, rstd, weight, dx, partial):
    features = x.shape[1]
    sum_dy, sum_dy_xh = partial[share, 0], partial[share, 1]
    block_dy, block_dy_xh = np.empty(features, dtype=x.dtype), np.empty(features, dtype=x.dtype)
    for k in range(features):
        sum_dy[k] = 0.0
        sum_dy_xh[k] = 0.0
    for start in range(first, last, ROWS_PER_BLOCK):
        block_dy[:] = 0.0
        block_dy_xh[:] = 0.0
        for r in range(start, min(start + ROWS_PER_BLOCK, last)):
            source, grad, target = x[r], dy[r], dx[r]
            sum_g, sum_g_xh = _row_gradient_sums(source, grad, weight, mean[r], rstd[r])
            centre, inv = x.dtype.type(mean[r]), x.dtype.type(rstd[r])
            a, b = x.dtype.type(sum_g / features), x.dtype.type(sum_g_xh / features)
            for k in range(features):
                xh = (source[k] - centre) * inv
                target[k] = inv * (grad[k] * weight[k] - a - xh * b)
                block_dy[k] += grad[k]
                block_dy_xh[k] += grad[k] * xh
        for k in range(features):
            sum_dy[k] += block_dy[k]
            sum_dy_xh[k] += block_dy_xh[k]


def group_norm_forward(x, weight, bias, eps):
    """x (N, G, K, L) (K = C / G channels per group), weight and bias (G K,):
    (y, mean, rstd), the statistics (N, G) in float64. One task per (sample, group)."""
    n_batch, groups = x.shape[:2]
    y = np.empty_like(x)
    mean, rstd = np.empty((n_batch, groups)), np.empty((n_batch, groups))
    tasks.run(_group_norm_forward_groups, n_batch * groups, x, weight, bias, eps, y, mean, rstd,
              work=2 * x.size)
    return y, mean, rstd


@njit(cache=True, nogil=True)
def _group_norm_forward_groups(share, first, last, x, weight, bias, eps, y, mean, rstd):
    groups, per_group, length = x.shape[1:]
    for task in range(first, last):
        n, g = task // groups, task % groups
        _row_statistics(x[n].reshape(groups, -1), g, g + 1, eps, mean[n], rstd[n])
        mu, inv = mean[n, g], rstd[n, g]
        for k in range(per_group):
            scale = inv * weight[g * per_group + k]
            offset = bias[g * per_group + k] - mu * scale
            source, target = x[n, g, k], y[n, g, k]
            for p in range(length):
                target[p] = source[p] * scale + offset


def group_norm_backward(x, dy, mean, rstd, weight):
    """(dx, dweight, dbias) by the closed form above: one task per (sample, group) writes its dx
    and adds its channels' sums of dy and dy xh to its share's float64 partial sums, added up in
    share order at the end."""
    n_batch, groups, per_group = x.shape[:3]
    dx = np.empty_like(x)
    work = 3 * x.size  # x and dy read (twice, from cache the second time), dx written
    partial = np.zeros((tasks.shares(n_batch * groups, work), 2, groups * per_group))
    tasks.run(_group_norm_backward_groups, n_batch * groups, x, dy, mean, rstd, weight, dx, partial,
              work=work)
    totals = partial.sum(axis=0)
    return dx, totals[1].astype(x.dtype), totals[0].astype(x.dtype)


@njit(cache=True, nogil=True)
def _group_norm_backward_groups(share, first, last, x, dy, mean, rstd, weight, dx, partial):
    groups, per_group, length = x.shape[1:]
    count = per_group * length
    sum_dy, sum_dy_xh = partial[share, 0], partial[share, 1]
    for task in range(first, last):
        n, g = task // groups, task % groups
        mu, inv = mean[n, g], rstd[n, g]
        sum_g = 0.0
        sum_g_xh = 0.0
        for k in range(per_group):
            w = weight[g * per_group + k]
            source, grad = x[n, g, k], dy[n, g, k]
            channel_dy = 0.0
            channel_dy_xh = 0.0
            for p in range(length):
                xh = (source[p] - mu) * inv
                channel_dy += grad[p]
                channel_dy_xh += grad[p] * xh
            sum_g += channel_dy * w
            sum_g_xh += channel_dy_xh * w
            sum_dy[g * per_group + k] += channel_dy
            sum_dy_xh[g * per_group + k] += channel_dy_xh
        a, b = sum_g / count, sum_g_xh / count
        for k in range(per_group):
            w = weight[g * per_group + k]
            source, grad, target = x[n, g, k], dy[n, g, k], dx[n, g, k]
            for p in range(length):
                target[p] = inv * (grad[p] * w - a - (source[p] - mu) * inv * b)
