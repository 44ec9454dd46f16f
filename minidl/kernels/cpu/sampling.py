"""Separable interpolation (nearest, bilinear) of NCHW images.

Along each axis an output index i reads two input indices with weights (1 - a_i) and a_i:
    Y[n, c, i, j] = sum_(taps) (1 - a_i | a_i) (1 - b_j | b_j) X[n, c, {i0_i, i1_i}, {j0_j, j1_j}]
(nearest: i1 = i0 and a = 0). The backward is the transposed map, written as a gather so that
each thread owns one input element: per axis the inverse table lists, for input index h, the
(output index, weight) taps that read it (CSR: taps starts[h]..starts[h + 1]), and
    dX[n, c, h, w] = sum_(taps of h) sum_(taps of w) w_h w_w dY[n, c, i, j].
"""
import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def interpolate_forward(x, i0, i1, a, j0, j1, b):
    """Y from X (N, C, H, W) and the per-axis tables (i0, i1, a) and (j0, j1, b)."""
    n_batch, channels = x.shape[:2]
    oh, ow = i0.shape[0], j0.shape[0]
    y = np.empty((n_batch, channels, oh, ow), dtype=x.dtype)
    for task in prange(n_batch * channels * oh):
        n, c, i = task // (channels * oh), (task // oh) % channels, task % oh
        top, bottom, row = x[n, c, i0[i]], x[n, c, i1[i]], y[n, c, i]
        lower = a[i]
        upper = 1 - lower
        for j in range(ow):
            right = b[j]
            left = 1 - right
            row[j] = (upper * (left * top[j0[j]] + right * top[j1[j]])
                      + lower * (left * bottom[j0[j]] + right * bottom[j1[j]]))
    return y


@njit(cache=True, parallel=True)
def interpolate_backward(dy, starts_h, taps_h, weights_h, starts_w, taps_w, weights_w):
    """dX (N, C, H, W) from dY and the per-axis inverse tables (CSR over the input index)."""
    n_batch, channels = dy.shape[:2]
    height, width = starts_h.shape[0] - 1, starts_w.shape[0] - 1
    dx = np.empty((n_batch, channels, height, width), dtype=dy.dtype)
    for task in prange(n_batch * channels * height):
        n, c, h = task // (channels * height), (task // height) % channels, task % height
        row = dx[n, c, h]
        for w in range(width):
            total = 0.0
            for p in range(starts_h[h], starts_h[h + 1]):
                src = dy[n, c, taps_h[p]]
                partial = 0.0
                for q in range(starts_w[w], starts_w[w + 1]):
                    partial += weights_w[q] * src[taps_w[q]]
                total += weights_h[p] * partial
            row[w] = total
    return dx
