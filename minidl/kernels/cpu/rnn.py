"""Recurrent layers: the time loop forward and backprop through time, one kernel call per layer.

Arrays are time-major and C-contiguous: a sequence is (T, N, F). The input projection
``xw = x W_ih^T + b`` of all T steps is one GEMM done by the caller before the loop, and the
weight gradients are GEMMs done by the caller after it (``matmul.product`` and
``transposed_product``: register tiles in float32); the time-loop kernels hold only what is sequential: one (N, H) x
(H, G) product per step (``_step_product``) and the gates. The bench's LSTM (T=50, N=64, I=64,
H=128) fwd+bwd on 2 Zen 5 cores with OpenBLAS's AVX2 kernels: 18.7 ms all on BLAS, 9.5 with the
step products on tiles, 6.5 with the GEMMs too (GRU 14.5, 7.8, 5.4; Elman RNN 3.3, 2.7, 1.9).

The rows (samples) of a batch never meet in the time loop, so the loop runs on shares of the
rows at once (``tasks.run``), each share with its own (N / shares, H) x (H, G) products. In
float32, where its width is a multiple of TILE_LANES, a step's product runs on register tiles
(``register_tiles.product_tile``, TILE_ROWS rows x TILE_LANES columns in vector registers),
else on a single-threaded BLAS (np.dot, ``blas_threads.serial_kernel_blas``): no thread is
woken per step. Without a BLAS of its own to make single-threaded, all float64 rows run in
one share.

The LSTM and GRU split the batch into shares of ROWS_PER_SHARE rows (a tile's), taken in turn by
whichever thread is free, instead of one share per thread: on 2 cores (Zen 4, BLAS step
products), forward + backward over 50 steps, input 64, hidden 128, batch 64 (ms, one share per
thread / 8-row shares): LSTM 16.6-17.2 / 13.9-14.7, GRU 13.1-13.4 / 11.2-11.6, and with
PyTorch's OpenMP workers spinning on one core after each of its ops (the bench's interleaved
runs) LSTM 23.5 / 20.0, GRU 19.1 / 16.5: a thread slowed on a shared core leaves its later
shares to the other. At batch 256 they tie (LSTM 59-62 / 60). Shares of 16 or 32 rows measured
slower than either (LSTM at batch 64 with 16-row shares: 19-21 ms). The Elman RNN, whose step
product is a quarter of the LSTM's, keeps one share per thread (8-row shares: 3.6 / 3.8 ms at
batch 64, 17.7 / 20.5 at 256).

Row convention (rows are samples): a step computes ``h_(t-1) W_hh^T``; backward sends
``da_t W_hh`` to h_(t-1). ``w_hh_t`` is W_hh^T made contiguous.

Activations: ``elementary.tanh`` and ``sigmoid``, which LLVM vectorises in float32 (libm's
scalar tanhf costs ~15 ns an element, more than the step's matrix product). The LSTM's four
gates run as one loop, a + b tanh(b v) with (a, b) = (1/2, 1/2) (sigmoid) or (0, 1) (tanh),
the same bits: as three loops (sigmoid, tanh, sigmoid) one of them stayed scalar, and the
forward kernel measured 4.5 -> 3.9 ms (backward, its five loops in one: 3.8 -> 3.7 ms).
"""
import numpy as np
from numba import njit, types
from numba.extending import overload

from . import tasks
from .elementary import NO_ZERO_DIVISION_CHECK, sigmoid, tanh
from .register_tiles import TILE_LANES, TILE_ROWS, pack_rows, row_block_product

ROWS_PER_SHARE = TILE_ROWS  # LSTM and GRU (module docstring): 8 with AVX-512


def _step_product(a, b, out):
    """out = a b, a step's (rows, K) x (K, width) product (C-contiguous arrays)."""


@overload(_step_product)
def _step_product_for(a, b, out):
    """float32 with width a multiple of TILE_LANES: register tiles, each TILE_ROWS rows x
    TILE_LANES columns summed over K in vector registers (``register_tiles.product_tile``, a's
    rows packed K-major); other shapes and dtypes: np.dot (BLAS)."""
    if not all(isinstance(array, types.Array) and array.dtype == types.float32 for array in (a, b, out)):
        return lambda a, b, out: np.dot(a, b, out)

    def tiles(a, b, out):
        rows, depth = a.shape
        width = b.shape[1]
        if width % TILE_LANES:
            np.dot(a, b, out)
            return
        packed = np.empty(depth * TILE_ROWS, dtype=a.dtype)  # a tile's rows of a, K-major
        partial = np.empty(TILE_ROWS * width, dtype=a.dtype)  # the sums of a last tile short of rows
        flat_b, flat_out = b.reshape(-1), out.reshape(-1)
        flat_a = a.reshape(-1)
        for first in range(0, rows, TILE_ROWS):
            count = min(TILE_ROWS, rows - first)
            if count == TILE_ROWS:
                pack_rows(flat_a, first * depth, depth, depth, packed)
            else:  # a last tile short of rows: zeros for the rows it lacks
                for k in range(depth):
                    for r in range(count):
                        packed[k * TILE_ROWS + r] = a[first + r, k]
                    for r in range(count, TILE_ROWS):
                        packed[k * TILE_ROWS + r] = 0.0
            target, start = (flat_out, first * width) if count == TILE_ROWS else (partial, 0)
            row_block_product(packed, 0, TILE_ROWS, flat_b, 0, width, depth, target, start, False)
            if count < TILE_ROWS:
                for r in range(count):
                    out[first + r] = partial[r * width:(r + 1) * width]
    return tiles


# ---------------------------------------------------------------- Elman RNN
# Inner loops run over one row and touch few arrays: LLVM vectorises a loop only when it can
# rule out overlap between the arrays it writes and reads, and gives up past a few pairs.

def rnn_forward(xw, h0, w_hh_t, relu):
    """h_t = f(xw_t + h_(t-1) W_hh^T), f = tanh or relu.  Returns h (T, N, H)."""
    h_seq = np.empty_like(xw)
    tasks.run_calling_blas(_rnn_forward_rows, xw.shape[1], xw, h0, w_hh_t, relu, h_seq)
    return h_seq


@njit(cache=True, nogil=True, **NO_ZERO_DIVISION_CHECK)
def _rnn_forward_rows(share, first, last, xw, h0, w_hh_t, relu, h_seq):
    steps, batch, hidden = xw.shape
    zero = xw.dtype.type(0)
    h = h0[first:last]
    for t in range(steps):
        step = h_seq[t, first:last]
        _step_product(h, w_hh_t, step)
        for n in range(last - first):
            a, x = step[n], xw[t, first + n]
            if relu:
                for j in range(hidden):
                    v = a[j] + x[j]
                    a[j] = v if v > zero else zero
            else:
                for j in range(hidden):
                    a[j] = tanh(a[j] + x[j])
        h = step


def rnn_backward(grad_h, h_seq, w_hh, relu):
    """BPTT: da_t = f'(a_t) * (dL/dh_t + da_(t+1) W_hh), f' = 1 - h^2 (tanh) or [h > 0] (relu).
    Returns da (T, N, H) and dL/dh_0 = da_0 W_hh (for the initial state)."""
    da = np.empty_like(grad_h)
    carry = np.zeros(grad_h.shape[1:], dtype=grad_h.dtype)
    tasks.run_calling_blas(_rnn_backward_rows, grad_h.shape[1], grad_h, h_seq, w_hh, relu, da, carry)
    return da, carry


@njit(cache=True, nogil=True, **NO_ZERO_DIVISION_CHECK)
def _rnn_backward_rows(share, first, last, grad_h, h_seq, w_hh, relu, da, carry):
    steps, batch, hidden = grad_h.shape
    zero, one = grad_h.dtype.type(0), grad_h.dtype.type(1)
    rows = carry[first:last]
    for t in range(steps - 1, -1, -1):
        for n in range(first, last):
            g, h, c, d = grad_h[t, n], h_seq[t, n], carry[n], da[t, n]
            if relu:
                for j in range(hidden):
                    d[j] = g[j] + c[j] if h[j] > zero else zero
            else:
                for j in range(hidden):
                    d[j] = (g[j] + c[j]) * (one - h[j] * h[j])
        _step_product(da[t, first:last], w_hh, rows)


# ---------------------------------------------------------------- LSTM (gates i, f, g, o)

def lstm_forward(xw, h0, c0, w_hh_t):
    """[i f g o] = xw_t + h_(t-1) W_hh^T through (sigmoid, sigmoid, tanh, sigmoid);
    c_t = f c_(t-1) + i g;  h_t = o tanh(c_t).

    Returns out (T + 1, N, H) = [h_1..h_T, c_T], c (T, N, H), the activated gates (T, N, 4H)
    and tanh(c) (T, N, H)."""
    steps, batch, width = xw.shape
    out = np.empty((steps + 1, batch, width // 4), dtype=xw.dtype)
    c_seq = np.empty((steps, batch, width // 4), dtype=xw.dtype)
    gates = np.empty_like(xw)
    tanh_c = np.empty_like(c_seq)
    tasks.run_calling_blas(_lstm_forward_rows, batch, xw, h0, c0, w_hh_t, out, c_seq, gates, tanh_c,
                           per_share=ROWS_PER_SHARE)
    return out, c_seq, gates, tanh_c


@njit(cache=True, nogil=True, **NO_ZERO_DIVISION_CHECK)
def _lstm_forward_rows(share, first, last, xw, h0, c0, w_hh_t, out, c_seq, gates, tanh_c):
    steps, batch, width = xw.shape
    hidden = width // 4
    one, half, zero = xw.dtype.type(1), xw.dtype.type(0.5), xw.dtype.type(0)
    h, c = h0[first:last], c0[first:last]
    for t in range(steps):
        _step_product(h, w_hh_t, gates[t, first:last])
        for n in range(first, last):
            a, x = gates[t, n], xw[t, n]
            for gate in range(4):  # i, f, o: sigmoid(v) = 1/2 + 1/2 tanh(v / 2);  g: tanh(v)
                scale = one if gate == 2 else half
                shift = zero if gate == 2 else half
                a_gate, x_gate = a[gate * hidden:(gate + 1) * hidden], x[gate * hidden:(gate + 1) * hidden]
                for j in range(hidden):
                    a_gate[j] = shift + scale * tanh(scale * (a_gate[j] + x_gate[j]))
            c_new, c_old = c_seq[t, n], c[n - first]
            for j in range(hidden):
                c_new[j] = a[hidden + j] * c_old[j] + a[j] * a[2 * hidden + j]
            squashed = tanh_c[t, n]
            for j in range(hidden):
                squashed[j] = tanh(c_new[j])
            h_new = out[t, n]
            for j in range(hidden):
                h_new[j] = a[3 * hidden + j] * squashed[j]
        h, c = out[t, first:last], c_seq[t, first:last]
    out[steps, first:last] = c


def lstm_backward(grad_out, gates, c_seq, tanh_c, c0, w_hh):
    """BPTT through the LSTM; grad_out (T + 1, N, H) = [dL/dh_1..dL/dh_T, dL/dc_T].
    Per step t from T-1 down (dh, dc include what step t+1 sends):
        dh = dL/dh_t + da_(t+1) W_hh,   dc = f_(t+1) dc_(t+1) + dh o (1 - tanh(c_t)^2)
        da_i = dc g i (1 - i),  da_f = dc c_(t-1) f (1 - f),  da_g = dc i (1 - g^2),
        da_o = dh tanh(c_t) o (1 - o).
    Returns da (T, N, 4H) (pre-activation gate gradients), dL/dh_0 and dL/dc_0."""
    steps, batch, width = gates.shape
    da = np.empty_like(gates)
    dh = np.zeros((batch, width // 4), dtype=gates.dtype)
    dc = grad_out[steps].copy()
    tasks.run_calling_blas(_lstm_backward_rows, batch, grad_out, gates, c_seq, tanh_c, c0, w_hh, da, dh, dc,
                           per_share=ROWS_PER_SHARE)
    return da, dh, dc


@njit(cache=True, nogil=True, **NO_ZERO_DIVISION_CHECK)
def _lstm_backward_rows(share, first, last, grad_out, gates, c_seq, tanh_c, c0, w_hh, da, dh, dc):
    steps, batch, width = gates.shape
    hidden = width // 4
    one = gates.dtype.type(1)
    for t in range(steps - 1, -1, -1):
        c_prev = c_seq[t - 1] if t > 0 else c0
        for n in range(first, last):
            a, tc, d, dh_t, dc_t = gates[t, n], tanh_c[t, n], da[t, n], dh[n], dc[n]
            gh, c_old = grad_out[t, n], c_prev[n]
            for j in range(hidden):
                i, f, g, o, squashed = a[j], a[hidden + j], a[2 * hidden + j], a[3 * hidden + j], tc[j]
                dh_j = dh_t[j] + gh[j]  # dh_t itself is overwritten by the product below
                dc_j = dc_t[j] + dh_j * o * (one - squashed * squashed)
                d[3 * hidden + j] = dh_j * squashed * o * (one - o)
                d[j] = dc_j * g * i * (one - i)
                d[hidden + j] = dc_j * c_old[j] * f * (one - f)
                d[2 * hidden + j] = dc_j * i * (one - g * g)
                dc_t[j] = dc_j * f
        _step_product(da[t, first:last], w_hh, dh[first:last])


# ---------------------------------------------------------------- GRU (gates r, z, n)

def gru_forward(xw, h0, w_hh_t, b_hh):
    """With xw_t = x_t W_ih^T + b_ih and hw = h_(t-1) W_hh^T + b_hh (both split r, z, n):
        r = sigmoid(xw_r + hw_r),  z = sigmoid(xw_z + hw_z),  n = tanh(xw_n + r hw_n),
        h_t = (1 - z) n + z h_(t-1).
    Returns h (T, N, H) and the saved [r, z, n, hw_n] (T, N, 4H)."""
    steps, batch, width = xw.shape
    h_seq = np.empty((steps, batch, width // 3), dtype=xw.dtype)
    saved = np.empty((steps, batch, 4 * (width // 3)), dtype=xw.dtype)
    hw = np.empty((batch, width), dtype=xw.dtype)
    tasks.run_calling_blas(_gru_forward_rows, batch, xw, h0, w_hh_t, b_hh, h_seq, saved, hw,
                           per_share=ROWS_PER_SHARE)
    return h_seq, saved


@njit(cache=True, nogil=True, **NO_ZERO_DIVISION_CHECK)
def _gru_forward_rows(share, first, last, xw, h0, w_hh_t, b_hh, h_seq, saved, hw):
    steps, batch, width = xw.shape
    hidden = width // 3
    h = h0[first:last]
    for t in range(steps):
        _step_product(h, w_hh_t, hw[first:last])
        for n in range(first, last):
            x, s, p = xw[t, n], saved[t, n], hw[n]
            for j in range(2 * hidden):
                s[j] = sigmoid(x[j] + p[j] + b_hh[j])
            for j in range(2 * hidden, width):
                s[hidden + j] = p[j] + b_hh[j]
            for j in range(hidden):
                s[2 * hidden + j] = tanh(x[2 * hidden + j] + s[j] * s[3 * hidden + j])
            h_new, h_old = h_seq[t, n], h[n - first]
            for j in range(hidden):
                candidate = s[2 * hidden + j]
                h_new[j] = candidate + s[hidden + j] * (h_old[j] - candidate)
        h = h_seq[t, first:last]


def gru_backward(grad_h, saved, h_seq, h0, w_hh):
    """BPTT through the GRU, per step t from T-1 down, with dh = dL/dh_t + what step t+1 sends:
        da_n = dh (1 - z) (1 - n^2),  da_z = dh (h_(t-1) - n) z (1 - z),
        da_r = da_n hw_n r (1 - r);   d(xw) = [da_r, da_z, da_n],  d(hw) = [da_r, da_z, da_n r];
        dh_(t-1) = dh z + d(hw) W_hh.
    Returns d(xw) (T, N, 3H) (for W_ih, b_ih, x), d(hw) (T, N, 3H) (for W_hh, b_hh), dL/dh_0."""
    steps, batch, hidden = grad_h.shape
    dxw = np.empty((steps, batch, 3 * hidden), dtype=grad_h.dtype)
    dhw = np.empty_like(dxw)
    dh = np.zeros((batch, hidden), dtype=grad_h.dtype)
    through_z = np.empty_like(dh)
    tasks.run_calling_blas(_gru_backward_rows, batch, grad_h, saved, h_seq, h0, w_hh, dxw, dhw, dh, through_z,
                           per_share=ROWS_PER_SHARE)
    return dxw, dhw, dh


@njit(cache=True, nogil=True, **NO_ZERO_DIVISION_CHECK)
def _gru_backward_rows(share, first, last, grad_h, saved, h_seq, h0, w_hh, dxw, dhw, dh, through_z):
    steps, batch, hidden = grad_h.shape
    one = grad_h.dtype.type(1)
    for t in range(steps - 1, -1, -1):
        h_prev = h_seq[t - 1] if t > 0 else h0
        for n in range(first, last):
            g, s, dx, dw, dh_t = grad_h[t, n], saved[t, n], dxw[t, n], dhw[t, n], dh[n]
            h_old, direct = h_prev[n], through_z[n]
            for j in range(hidden):
                dh_t[j] += g[j]
            for j in range(hidden):
                z, candidate = s[hidden + j], s[2 * hidden + j]
                dx[2 * hidden + j] = dh_t[j] * (one - z) * (one - candidate * candidate)
                dx[hidden + j] = dh_t[j] * (h_old[j] - candidate) * z * (one - z)
            for j in range(hidden):
                r = s[j]
                dx[j] = dx[2 * hidden + j] * s[3 * hidden + j] * r * (one - r)
            for j in range(2 * hidden):
                dw[j] = dx[j]
            for j in range(hidden):
                dw[2 * hidden + j] = dx[2 * hidden + j] * s[j]
            for j in range(hidden):
                direct[j] = dh_t[j] * s[hidden + j]
        rows = dh[first:last]
        _step_product(dhw[t, first:last], w_hh, rows)
        rows += through_z[first:last]
