"""Recurrent layers on the GPU: Elman RNN, LSTM and GRU forward and backward through time.

The functions, signatures, layouts and formulas of ``kernels.cpu.rnn`` (see its docstrings).
Time is sequential: per step one GEMM (h_(t-1) W_hh^T forward, da_t W_hh backward, through
``array.matmul``) and one kernel that applies the gates, one thread per (sample, unit).
sigmoid(x) = 1/2 + 1/2 tanh(x/2), as on the CPU.
"""
import math

from ._runtime import kernel_builder
from .array import as_cuda, empty, full, matmul
from .elementwise import launch

cuda = None  # numba.cuda, bound by kernel_builder on first use


def _flat(*arrays):
    return tuple(as_cuda(a).ascontiguous().flat() for a in arrays)


@kernel_builder
def _activations():
    @cuda.jit(device=True)
    def sigmoid(x):
        return 0.5 + 0.5 * math.tanh(0.5 * x)
    return sigmoid


# ---------------------------------------------------------------- Elman RNN

@kernel_builder
def _rnn_step():
    @cuda.jit
    def kernel(total, pre, xw, offset, relu, h_seq):
        k = cuda.grid(1)
        step = cuda.gridsize(1)
        while k < total:
            v = pre[k] + xw[offset + k]
            if relu:
                h_seq[offset + k] = v if v > 0 else 0
            else:
                h_seq[offset + k] = math.tanh(v)
            k += step
    return kernel


@kernel_builder
def _rnn_back_step():
    @cuda.jit
    def kernel(total, grad_h, h_seq, carry, offset, relu, da):
        k = cuda.grid(1)
        step = cuda.gridsize(1)
        while k < total:
            h = h_seq[offset + k]
            g = grad_h[offset + k] + carry[k]
            if relu:
                da[offset + k] = g if h > 0 else 0
            else:
                da[offset + k] = g * (1 - h * h)
            k += step
    return kernel


def rnn_forward(xw, h0, w_hh_t, relu):
    """h_t = f(xw_t + h_(t-1) W_hh^T), f = tanh or relu.  Returns h (T, N, H)."""
    xw, h0, w_hh_t = (as_cuda(a).ascontiguous() for a in (xw, h0, w_hh_t))
    steps, batch, hidden = xw.shape
    h_seq = empty(xw.shape, xw.dtype)
    h, size = h0, batch * hidden
    for t in range(steps):
        pre = matmul(h, w_hh_t)
        launch(_rnn_step(), size, pre.flat(), xw.flat(), t * size, bool(relu), h_seq.base)
        h = h_seq[t]
    return h_seq


def rnn_backward(grad_h, h_seq, w_hh, relu):
    """BPTT: da_t = f'(a_t) (dL/dh_t + da_(t+1) W_hh). Returns da (T, N, H) and dL/dh_0."""
    grad_h, h_seq, w_hh = (as_cuda(a).ascontiguous() for a in (grad_h, h_seq, w_hh))
    steps, batch, hidden = grad_h.shape
    da = empty(grad_h.shape, grad_h.dtype)
    carry, size = full((batch, hidden), 0, grad_h.dtype), batch * hidden
    for t in range(steps - 1, -1, -1):
        launch(_rnn_back_step(), size, grad_h.flat(), h_seq.flat(), carry.flat(), t * size,
               bool(relu), da.base)
        carry = matmul(da[t], w_hh)
    return da, carry


# ---------------------------------------------------------------- LSTM (gates i, f, g, o)

@kernel_builder
def _lstm_step():
    sigmoid = _activations()

    @cuda.jit
    def kernel(total, hidden, pre, xw, gate_off, c_old, state_off, gates, c_seq, tanh_c, out):
        k = cuda.grid(1)
        step = cuda.gridsize(1)
        while k < total:
            n = k // hidden
            j = k - n * hidden
            row = n * 4 * hidden
            at = gate_off + row
            i = sigmoid(pre[row + j] + xw[at + j])
            f = sigmoid(pre[row + hidden + j] + xw[at + hidden + j])
            g = math.tanh(pre[row + 2 * hidden + j] + xw[at + 2 * hidden + j])
            o = sigmoid(pre[row + 3 * hidden + j] + xw[at + 3 * hidden + j])
            gates[at + j] = i
            gates[at + hidden + j] = f
            gates[at + 2 * hidden + j] = g
            gates[at + 3 * hidden + j] = o
            c_new = f * c_old[k] + i * g
            c_seq[state_off + k] = c_new
            squashed = math.tanh(c_seq[state_off + k])
            tanh_c[state_off + k] = squashed
            out[state_off + k] = o * squashed
            k += step
    return kernel


@kernel_builder
def _lstm_back_step():
    @cuda.jit
    def kernel(total, hidden, grad_out, state_off, gates, gate_off, tanh_c, c_prev, dh, dc, da):
        k = cuda.grid(1)
        step = cuda.gridsize(1)
        while k < total:
            n = k // hidden
            j = k - n * hidden
            at = gate_off + n * 4 * hidden
            dh_t = dh[k] + grad_out[state_off + k]
            i = gates[at + j]
            f = gates[at + hidden + j]
            g = gates[at + 2 * hidden + j]
            o = gates[at + 3 * hidden + j]
            squashed = tanh_c[state_off + k]
            dc_t = dc[k] + dh_t * o * (1 - squashed * squashed)
            da[at + 3 * hidden + j] = dh_t * squashed * o * (1 - o)
            da[at + j] = dc_t * g * i * (1 - i)
            da[at + hidden + j] = dc_t * c_prev[k] * f * (1 - f)
            da[at + 2 * hidden + j] = dc_t * i * (1 - g * g)
            dc[k] = dc_t * f
            k += step
    return kernel


def lstm_forward(xw, h0, c0, w_hh_t):
    """Returns out (T + 1, N, H) = [h_1..h_T, c_T], c (T, N, H), the activated gates (T, N, 4H)
    and tanh(c) (T, N, H); formulas in kernels.cpu.rnn.lstm_forward."""
    xw, h0, c0, w_hh_t = (as_cuda(a).ascontiguous() for a in (xw, h0, c0, w_hh_t))
    steps, batch, width = xw.shape
    hidden = width // 4
    out = empty((steps + 1, batch, hidden), xw.dtype)
    c_seq = empty((steps, batch, hidden), xw.dtype)
    gates = empty(xw.shape, xw.dtype)
    tanh_c = empty(c_seq.shape, xw.dtype)
    h, c, size = h0, c0, batch * hidden
    for t in range(steps):
        pre = matmul(h, w_hh_t)
        launch(_lstm_step(), size, hidden, pre.flat(), xw.flat(), t * batch * width, c.flat(),
               t * size, gates.base, c_seq.base, tanh_c.base, out.base)
        h, c = out[t], c_seq[t]
    out[steps] = c
    return out, c_seq, gates, tanh_c


def lstm_backward(grad_out, gates, c_seq, tanh_c, c0, w_hh):
    """BPTT through the LSTM; returns da (T, N, 4H), dL/dh_0 and dL/dc_0."""
    grad_out, gates, c_seq, tanh_c, c0, w_hh = (
        as_cuda(a).ascontiguous() for a in (grad_out, gates, c_seq, tanh_c, c0, w_hh))
    steps, batch, width = gates.shape
    hidden = width // 4
    da = empty(gates.shape, gates.dtype)
    dh = full((batch, hidden), 0, gates.dtype)
    dc = grad_out[steps].copy()
    size = batch * hidden
    for t in range(steps - 1, -1, -1):
        c_prev = c_seq[t - 1] if t > 0 else c0
        launch(_lstm_back_step(), size, hidden, grad_out.flat(), t * size, gates.flat(),
               t * batch * width, tanh_c.flat(), c_prev.flat(), dh.flat(), dc.flat(), da.base)
        dh = matmul(da[t], w_hh)
    return da, dh, dc


# ---------------------------------------------------------------- GRU (gates r, z, n)

@kernel_builder
def _gru_step():
    sigmoid = _activations()

    @cuda.jit
    def kernel(total, hidden, xw, x_off, hw, b_hh, h_old, saved, s_off, h_seq, h_off):
        k = cuda.grid(1)
        step = cuda.gridsize(1)
        while k < total:
            n = k // hidden
            j = k - n * hidden
            x = x_off + n * 3 * hidden
            p = n * 3 * hidden
            s = s_off + n * 4 * hidden
            r = sigmoid(xw[x + j] + hw[p + j] + b_hh[j])
            z = sigmoid(xw[x + hidden + j] + hw[p + hidden + j] + b_hh[hidden + j])
            hw_n = hw[p + 2 * hidden + j] + b_hh[2 * hidden + j]
            saved[s + j] = r
            saved[s + hidden + j] = z
            saved[s + 3 * hidden + j] = hw_n
            candidate = math.tanh(xw[x + 2 * hidden + j] + saved[s + j] * saved[s + 3 * hidden + j])
            saved[s + 2 * hidden + j] = candidate
            candidate = saved[s + 2 * hidden + j]
            h_seq[h_off + k] = candidate + saved[s + hidden + j] * (h_old[k] - candidate)
            k += step
    return kernel


@kernel_builder
def _gru_back_step():
    @cuda.jit
    def kernel(total, hidden, grad_h, h_off, saved, s_off, h_prev, dh, dxw, dhw, x_off, through_z):
        k = cuda.grid(1)
        step = cuda.gridsize(1)
        while k < total:
            n = k // hidden
            j = k - n * hidden
            s = s_off + n * 4 * hidden
            x = x_off + n * 3 * hidden
            dh_t = dh[k] + grad_h[h_off + k]
            r = saved[s + j]
            z = saved[s + hidden + j]
            candidate = saved[s + 2 * hidden + j]
            d_n = dh_t * (1 - z) * (1 - candidate * candidate)
            d_z = dh_t * (h_prev[k] - candidate) * z * (1 - z)
            dxw[x + 2 * hidden + j] = d_n
            dxw[x + hidden + j] = d_z
            d_n = dxw[x + 2 * hidden + j]
            d_r = d_n * saved[s + 3 * hidden + j] * r * (1 - r)
            dxw[x + j] = d_r
            dhw[x + j] = dxw[x + j]
            dhw[x + hidden + j] = dxw[x + hidden + j]
            dhw[x + 2 * hidden + j] = d_n * r
            through_z[k] = dh_t * z
            k += step
    return kernel


def gru_forward(xw, h0, w_hh_t, b_hh):
    """Returns h (T, N, H) and the saved [r, z, n, hw_n] (T, N, 4H); formulas in
    kernels.cpu.rnn.gru_forward."""
    xw, h0, w_hh_t, b_hh = (as_cuda(a).ascontiguous() for a in (xw, h0, w_hh_t, b_hh))
    steps, batch, width = xw.shape
    hidden = width // 3
    h_seq = empty((steps, batch, hidden), xw.dtype)
    saved = empty((steps, batch, 4 * hidden), xw.dtype)
    h, size = h0, batch * hidden
    for t in range(steps):
        hw = matmul(h, w_hh_t)
        launch(_gru_step(), size, hidden, xw.flat(), t * batch * width, hw.flat(),
               b_hh.astype(xw.dtype, copy=False).flat(), h.flat(), saved.base,
               t * batch * 4 * hidden, h_seq.base, t * size)
        h = h_seq[t]
    return h_seq, saved


def gru_backward(grad_h, saved, h_seq, h0, w_hh):
    """BPTT through the GRU; returns d(xw) (T, N, 3H), d(hw) (T, N, 3H) and dL/dh_0."""
    grad_h, saved, h_seq, h0, w_hh = (as_cuda(a).ascontiguous() for a in (grad_h, saved, h_seq, h0, w_hh))
    steps, batch, hidden = grad_h.shape
    dxw = empty((steps, batch, 3 * hidden), grad_h.dtype)
    dhw = empty(dxw.shape, grad_h.dtype)
    dh = full((batch, hidden), 0, grad_h.dtype)
    through_z = empty((batch, hidden), grad_h.dtype)
    size = batch * hidden
    for t in range(steps - 1, -1, -1):
        h_prev = h_seq[t - 1] if t > 0 else h0
        launch(_gru_back_step(), size, hidden, grad_h.flat(), t * size, saved.flat(),
               t * batch * 4 * hidden, h_prev.flat(), dh.flat(), dxw.base, dhw.base,
               t * batch * 3 * hidden, through_z.base)
        dh = matmul(dhw[t], w_hh) + through_z
    return dxw, dhw, dh

