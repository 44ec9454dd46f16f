"""Recurrent layers: the time loop forward and backprop through time, one kernel call per layer.

Arrays are time-major and C-contiguous: a sequence is (T, N, F). The input projection
``xw = x W_ih^T + b`` of all T steps is one GEMM done by the caller before the loop, and the
weight gradients are GEMMs done by the caller after it; the kernels hold only what is
sequential: one (N, H) x (H, G) product per step (BLAS, through ``np.dot``) and the gates.

Row convention (rows are samples): a step computes ``h_(t-1) W_hh^T``; backward sends
``da_t W_hh`` to h_(t-1). ``w_hh_t`` is W_hh^T made contiguous.

Activations: ``elementary.tanh`` and ``sigmoid``, which LLVM vectorises in float32 (libm's
scalar tanhf costs ~15 ns an element, more than the step's matrix product).
"""
import numpy as np
from numba import njit

from .elementary import NO_ZERO_DIVISION_CHECK, sigmoid, tanh


# ---------------------------------------------------------------- Elman RNN
# Inner loops run over one row and touch few arrays: LLVM vectorises a loop only when it can
# rule out overlap between the arrays it writes and reads, and gives up past a few pairs.

@njit(cache=True, **NO_ZERO_DIVISION_CHECK)
def rnn_forward(xw, h0, w_hh_t, relu):
    """h_t = f(xw_t + h_(t-1) W_hh^T), f = tanh or relu.  Returns h (T, N, H)."""
    steps, batch, hidden = xw.shape
    zero = xw.dtype.type(0)
    h_seq = np.empty_like(xw)
    h = h0
    for t in range(steps):
        np.dot(h, w_hh_t, h_seq[t])
        for n in range(batch):
            a, x = h_seq[t, n], xw[t, n]
            if relu:
                for j in range(hidden):
                    v = a[j] + x[j]
                    a[j] = v if v > zero else zero
            else:
                for j in range(hidden):
                    a[j] = tanh(a[j] + x[j])
        h = h_seq[t]
    return h_seq


@njit(cache=True, **NO_ZERO_DIVISION_CHECK)
def rnn_backward(grad_h, h_seq, w_hh, relu):
    """BPTT: da_t = f'(a_t) * (dL/dh_t + da_(t+1) W_hh), f' = 1 - h^2 (tanh) or [h > 0] (relu).
    Returns da (T, N, H) and dL/dh_0 = da_0 W_hh (for the initial state)."""
    steps, batch, hidden = grad_h.shape
    zero, one = grad_h.dtype.type(0), grad_h.dtype.type(1)
    da = np.empty_like(grad_h)
    carry = np.zeros((batch, hidden), dtype=grad_h.dtype)
    for t in range(steps - 1, -1, -1):
        for n in range(batch):
            g, h, c, d = grad_h[t, n], h_seq[t, n], carry[n], da[t, n]
            if relu:
                for j in range(hidden):
                    d[j] = g[j] + c[j] if h[j] > zero else zero
            else:
                for j in range(hidden):
                    d[j] = (g[j] + c[j]) * (one - h[j] * h[j])
        np.dot(da[t], w_hh, carry)
    return da, carry


# ---------------------------------------------------------------- LSTM (gates i, f, g, o)

@njit(cache=True, **NO_ZERO_DIVISION_CHECK)
def lstm_forward(xw, h0, c0, w_hh_t):
    """[i f g o] = xw_t + h_(t-1) W_hh^T through (sigmoid, sigmoid, tanh, sigmoid);
    c_t = f c_(t-1) + i g;  h_t = o tanh(c_t).

    Returns out (T + 1, N, H) = [h_1..h_T, c_T], c (T, N, H), the activated gates (T, N, 4H)
    and tanh(c) (T, N, H)."""
    steps, batch, width = xw.shape
    hidden = width // 4
    out = np.empty((steps + 1, batch, hidden), dtype=xw.dtype)
    c_seq = np.empty((steps, batch, hidden), dtype=xw.dtype)
    gates = np.empty_like(xw)
    tanh_c = np.empty_like(c_seq)
    h, c = h0, c0
    for t in range(steps):
        np.dot(h, w_hh_t, gates[t])
        for n in range(batch):
            a, x = gates[t, n], xw[t, n]
            for j in range(2 * hidden):
                a[j] = sigmoid(a[j] + x[j])
            for j in range(2 * hidden, 3 * hidden):
                a[j] = tanh(a[j] + x[j])
            for j in range(3 * hidden, width):
                a[j] = sigmoid(a[j] + x[j])
            c_new, c_old = c_seq[t, n], c[n]
            for j in range(hidden):
                c_new[j] = a[hidden + j] * c_old[j] + a[j] * a[2 * hidden + j]
            squashed = tanh_c[t, n]
            for j in range(hidden):
                squashed[j] = tanh(c_new[j])
            h_new = out[t, n]
            for j in range(hidden):
                h_new[j] = a[3 * hidden + j] * squashed[j]
        h, c = out[t], c_seq[t]
    out[steps] = c
    return out, c_seq, gates, tanh_c


@njit(cache=True, **NO_ZERO_DIVISION_CHECK)
def lstm_backward(grad_out, gates, c_seq, tanh_c, c0, w_hh):
    """BPTT through the LSTM; grad_out (T + 1, N, H) = [dL/dh_1..dL/dh_T, dL/dc_T].
    Per step t from T-1 down (dh, dc include what step t+1 sends):
        dh = dL/dh_t + da_(t+1) W_hh,   dc = f_(t+1) dc_(t+1) + dh o (1 - tanh(c_t)^2)
        da_i = dc g i (1 - i),  da_f = dc c_(t-1) f (1 - f),  da_g = dc i (1 - g^2),
        da_o = dh tanh(c_t) o (1 - o).
    Returns da (T, N, 4H) (pre-activation gate gradients), dL/dh_0 and dL/dc_0."""
    steps, batch, width = gates.shape
    hidden = width // 4
    one = gates.dtype.type(1)
    da = np.empty_like(gates)
    dh = np.zeros((batch, hidden), dtype=gates.dtype)
    dc = grad_out[steps].copy()
    for t in range(steps - 1, -1, -1):
        c_prev = c_seq[t - 1] if t > 0 else c0
        for n in range(batch):
            a, tc, d, dh_t, dc_t = gates[t, n], tanh_c[t, n], da[t, n], dh[n], dc[n]
            gh, c_old = grad_out[t, n], c_prev[n]
            for j in range(hidden):
                dh_t[j] += gh[j]
            for j in range(hidden):
                o, squashed = a[3 * hidden + j], tc[j]
                dc_t[j] += dh_t[j] * o * (one - squashed * squashed)
            for j in range(hidden):
                o = a[3 * hidden + j]
                d[3 * hidden + j] = dh_t[j] * tc[j] * o * (one - o)
            for j in range(hidden):
                i, f, g = a[j], a[hidden + j], a[2 * hidden + j]
                d[j] = dc_t[j] * g * i * (one - i)
                d[hidden + j] = dc_t[j] * c_old[j] * f * (one - f)
                d[2 * hidden + j] = dc_t[j] * i * (one - g * g)
            for j in range(hidden):
                dc_t[j] *= a[hidden + j]
        np.dot(da[t], w_hh, dh)
    return da, dh, dc


# ---------------------------------------------------------------- GRU (gates r, z, n)

@njit(cache=True, **NO_ZERO_DIVISION_CHECK)
def gru_forward(xw, h0, w_hh_t, b_hh):
    """With xw_t = x_t W_ih^T + b_ih and hw = h_(t-1) W_hh^T + b_hh (both split r, z, n):
        r = sigmoid(xw_r + hw_r),  z = sigmoid(xw_z + hw_z),  n = tanh(xw_n + r hw_n),
        h_t = (1 - z) n + z h_(t-1).
    Returns h (T, N, H) and the saved [r, z, n, hw_n] (T, N, 4H)."""
    steps, batch, width = xw.shape
    hidden = width // 3
    h_seq = np.empty((steps, batch, hidden), dtype=xw.dtype)
    saved = np.empty((steps, batch, 4 * hidden), dtype=xw.dtype)
    hw = np.empty((batch, width), dtype=xw.dtype)
    h = h0
    for t in range(steps):
        np.dot(h, w_hh_t, hw)
        for n in range(batch):
            x, s, p = xw[t, n], saved[t, n], hw[n]
            for j in range(2 * hidden):
                s[j] = sigmoid(x[j] + p[j] + b_hh[j])
            for j in range(2 * hidden, width):
                s[hidden + j] = p[j] + b_hh[j]
            for j in range(hidden):
                s[2 * hidden + j] = tanh(x[2 * hidden + j] + s[j] * s[3 * hidden + j])
            h_new, h_old = h_seq[t, n], h[n]
            for j in range(hidden):
                candidate = s[2 * hidden + j]
                h_new[j] = candidate + s[hidden + j] * (h_old[j] - candidate)
        h = h_seq[t]
    return h_seq, saved


@njit(cache=True, **NO_ZERO_DIVISION_CHECK)
def gru_backward(grad_h, saved, h_seq, h0, w_hh):
    """BPTT through the GRU, per step t from T-1 down, with dh = dL/dh_t + what step t+1 sends:
        da_n = dh (1 - z) (1 - n^2),  da_z = dh (h_(t-1) - n) z (1 - z),
        da_r = da_n hw_n r (1 - r);   d(xw) = [da_r, da_z, da_n],  d(hw) = [da_r, da_z, da_n r];
        dh_(t-1) = dh z + d(hw) W_hh.
    Returns d(xw) (T, N, 3H) (for W_ih, b_ih, x), d(hw) (T, N, 3H) (for W_hh, b_hh), dL/dh_0."""
    steps, batch, hidden = grad_h.shape
    one = grad_h.dtype.type(1)
    dxw = np.empty((steps, batch, 3 * hidden), dtype=grad_h.dtype)
    dhw = np.empty_like(dxw)
    dh = np.zeros((batch, hidden), dtype=grad_h.dtype)
    through_z = np.empty_like(dh)
    for t in range(steps - 1, -1, -1):
        h_prev = h_seq[t - 1] if t > 0 else h0
        for n in range(batch):
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
        np.dot(dhw[t], w_hh, dh)
        dh += through_z
    return dxw, dhw, dh
