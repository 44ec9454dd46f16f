"""Max and average pooling over windows given per output row and column.

Output (i, j) pools rows [h_lo[i], h_hi[i]) and columns [w_lo[j], w_hi[j]) of its plane (window
clipped to the input: padding never wins a max and adds zeros to an average). Fixed windows
(kernel k, stride s, padding p: lo = max(i s - p, 0), hi = min(i s - p + k, H)) and adaptive
ones (lo = floor(i H / oh), hi = ceil((i + 1) H / oh)) are both just these arrays.

    max:  Y[i, j] = X[q],  q = first argmax over the window (a NaN wins, as in PyTorch);
          dX[q] += dY[i, j], zero elsewhere (one winner per window, even with ties)
    avg:  Y[i, j] = sum over the window / (h_count[i] w_count[j]);
          dX[h, w] += dY[i, j] / (h_count[i] w_count[j]) for every (h, w) in the window
(h_count = k with count_include_pad, else hi - lo.) One task per (n, c) plane: the windows of
a plane may overlap, and only its own task writes to it. The 2 x 2 max pooling and the max
pooling backward run serial kernels over shares of the planes (tasks.run: they compile in
about a third of a prange loop's time). Max pooling over 2 x 2
windows with stride 2 (most CNNs) has an unrolled kernel of its own, 3x faster.
"""
import numpy as np
from numba import njit, prange

from . import tasks
from .elementary import row_sum


def max_pool2d_forward(x, h_lo, h_hi, w_lo, w_hi):
    """(y, argmax): argmax[n, c, i, j] is the winner's flat index h W + w in its plane."""
    if _is_2x2_stride_2(h_lo, h_hi) and _is_2x2_stride_2(w_lo, w_hi):
        return _max_pool_2x2(x, h_lo.size, w_lo.size)
    return _max_pool_windows(x, h_lo, h_hi, w_lo, w_hi)


def _is_2x2_stride_2(lo, hi):
    return bool((lo == 2 * np.arange(lo.size)).all() and (hi == lo + 2).all())


def _max_pool_2x2(x, oh, ow):
    """Windows rows 2i, 2i + 1 and columns 2j, 2j + 1, in the order of the general kernel."""
    n_batch, channels = x.shape[:2]
    y = np.empty((n_batch, channels, oh, ow), dtype=x.dtype)
    argmax = np.empty((n_batch, channels, oh, ow), dtype=np.int32)
    tasks.run(_max_pool_2x2_planes, n_batch * channels, x.reshape(n_batch * channels, -1), x.shape[3],
              y.reshape(n_batch * channels, -1), argmax.reshape(n_batch * channels, -1), oh, ow,
              work=x.size + 2 * y.size)
    return y, argmax


@njit(cache=True, nogil=True)
def _max_pool_2x2_planes(share, first, last, planes, width, y, argmax, oh, ow):
    for p in range(first, last):
        plane, out, arg = planes[p], y[p], argmax[p]
        for i in range(oh):
            base = 2 * i * width
            top, bottom = plane[base:], plane[base + width:]
            out_row, arg_row = out[i * ow:], arg[i * ow:]
            for j in range(ow):
                best, q = top[2 * j], base + 2 * j
                for value, k in ((top[2 * j + 1], base + 2 * j + 1), (bottom[2 * j], base + width + 2 * j),
                                 (bottom[2 * j + 1], base + width + 2 * j + 1)):
                    better = (value > best) | (value != value)
                    best = value if better else best
                    q = k if better else q
                out_row[j] = best
                arg_row[j] = q


@njit(cache=True, parallel=True)
def _max_pool_windows(x, h_lo, h_hi, w_lo, w_hi):
    n_batch, channels, height, width = x.shape
    oh, ow = h_lo.size, w_lo.size
    planes = x.reshape(n_batch * channels, height * width)
    y = np.empty((n_batch * channels, oh * ow), dtype=x.dtype)
    argmax = np.empty((n_batch * channels, oh * ow), dtype=np.int32)
    for p in prange(n_batch * channels):
        for i in range(oh):
            for j in range(ow):
                q = h_lo[i] * width + w_lo[j]
                best = planes[p, q]
                for h in range(h_lo[i], h_hi[i]):
                    for w in range(w_lo[j], w_hi[j]):
                        k = h * width + w
                        value = planes[p, k]
                        # a select, not a branch: random data mispredicts half the comparisons
                        better = (value > best) | (value != value)  # value != value: NaN, as PyTorch
                        best = value if better else best
                        q = k if better else q
                y[p, i * ow + j] = best
                argmax[p, i * ow + j] = q
    return y.reshape(n_batch, channels, oh, ow), argmax.reshape(n_batch, channels, oh, ow)


def max_pool2d_backward(dy, argmax, height, width):
    """dX[winner of (i, j)] += dY[i, j]. Each task zeroes its own plane just before adding into
    it (while it is in cache), instead of a np.zeros pass over all of dX first."""
    n_batch, channels = dy.shape[:2]
    dx = np.empty((n_batch, channels, height, width), dtype=dy.dtype)
    planes = n_batch * channels
    tasks.run(_max_pool_backward_planes, planes, dy.reshape(planes, -1), argmax.reshape(planes, -1),
              dx.reshape(planes, -1), work=2 * dy.size + dx.size)
    return dx


@njit(cache=True, nogil=True)
def _max_pool_backward_planes(share, first, last, grads, winners, dx):
    for task in range(first, last):
        plane, grad, winner = dx[task], grads[task], winners[task]
        plane[:] = 0.0
        for k in range(grad.size):
            plane[winner[k]] += grad[k]


@njit(cache=True, parallel=True)
def avg_pool2d_forward(x, h_lo, h_hi, h_count, w_lo, w_hi, w_count):
    """Y[i, j] = sum of X over the window / (h_count[i] w_count[j])."""
    n_batch, channels = x.shape[:2]
    oh, ow = h_lo.size, w_lo.size
    y = np.empty((n_batch, channels, oh, ow), dtype=x.dtype)
    for task in prange(n_batch * channels):
        n, c = task // channels, task % channels
        plane = x[n, c]
        for i in range(oh):
            for j in range(ow):
                total = 0.0
                for h in range(h_lo[i], h_hi[i]):  # each window row summed in SIMD lanes (float64)
                    total += row_sum(plane[h, w_lo[j]:w_hi[j]])
                y[n, c, i, j] = total / (h_count[i] * w_count[j])
    return y


@njit(cache=True, parallel=True)
def avg_pool2d_backward(dy, h_lo, h_hi, h_count, w_lo, w_hi, w_count, height, width):
    """dX[h, w] += dY[i, j] / (h_count[i] w_count[j]) over each window."""
    n_batch, channels, oh, ow = dy.shape
    dx = np.empty((n_batch, channels, height, width), dtype=dy.dtype)
    for task in prange(n_batch * channels):
        n, c = task // channels, task % channels
        plane = dx[n, c]
        plane[:] = 0.0  # here, in parallel and while the plane is in cache (np.zeros: one thread)
        for i in range(oh):
            for j in range(ow):
                share = dy[n, c, i, j] / (h_count[i] * w_count[j])
                for h in range(h_lo[i], h_hi[i]):
                    for w in range(w_lo[j], w_hi[j]):
                        plane[h, w] += share
    return dx
