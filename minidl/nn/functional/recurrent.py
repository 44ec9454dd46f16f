"""Recurrent layers (Elman RNN, LSTM, GRU) and embeddings as Functions.

One Function runs one layer over the whole sequence: the input projection x W_ih^T of all
steps is one GEMM, the time loop forward and backprop through time are one kernel call each
(``kernels/<device>/rnn``), and the weight gradients are GEMMs over all steps after it.
Arrays are time-major, (T, N, F). Weights follow PyTorch's layout, gates stacked along rows:
LSTM [i f g o], GRU [r z n], so a PyTorch state_dict loads as is.

An initial state of None (hx=None) is zeros: the layer makes them for its kernels, and its
dW_hh sums steps 2..T alone (h_0's term is zero), over h_1..h_(T-1) where they lie, instead of
first copying [h_0, h_1..h_(T-1)] into one array.

A layer's Function returns its hidden sequence; h_n is its last step (indexing, so autograd
carries the gradient of h_n back into the sequence). The LSTM's Function returns T + 1 rows,
h_1..h_T and then c_T, so that c_n comes out of the same Function.

Bidirectional layers run the same Functions on the time-reversed input (x[::-1], whose
backward reverses the gradient) and reverse their output back; the two directions' outputs
are concatenated along the features, [forward, reverse], as PyTorch's. Dropout between layers
(``dropout=``, training only) is ``F.dropout`` on each layer's output except the last's.
"""
import numpy as np

from ...device import like
from ...function import Function, no_grad, require_float
from ...kernels import for_device
from ...meta import MetaArray, is_meta
from ...tensor import Tensor, concatenate, stack
from .linear import dropout as dropout_entries


def _project(device, x, w_ih, bias):
    """xw = x W_ih^T + bias for all steps in one GEMM: (T, N, I) -> (T, N, G)."""
    steps, batch, _ = x.shape
    return for_device(device, "matmul").product(x.reshape(steps * batch, -1), w_ih.T, bias).reshape(steps, batch, -1)


def _sum_bias(b_ih, b_hh):
    if b_ih is None or b_hh is None:
        return b_ih if b_hh is None else b_hh
    return b_ih + b_hh


def _initial_state(state, x, hidden):
    """The (N, H) initial state a kernel starts from: ``state``, or zeros for None (hx=None)."""
    if state is None:
        return np.zeros((x.shape[1], hidden), dtype=x.dtype, like=like(x))
    return np.ascontiguousarray(state, like=like(x))


def _layer_grads(device, needs, x, h0, h_seq, w_ih, d_xw, d_hw):
    """Gradients of (x, W_ih, W_hh, b_ih, b_hh) from the pre-activation gradients of the input
    side, d_xw, and of the hidden side, d_hw (the same array for RNN and LSTM), over all steps:
        dx_t = d_xw_t W_ih,  dW_ih = sum_t d_xw_t^T x_t,  dW_hh = sum_t d_hw_t^T h_(t-1),
        db_ih = sum_t d_xw_t,  db_hh = sum_t d_hw_t        (rows are samples).
    ``needs`` holds the needs_input_grad flags of those five inputs; h0 None is zeros (its term
    of dW_hh is zero: steps 1.. alone, on h_seq as it lies)."""
    steps, batch, width = d_xw.shape
    kernel = for_device(device, "matmul")
    rows_xw, rows_hw = d_xw.reshape(-1, width), d_hw.reshape(-1, width)
    dx = kernel.product(rows_xw, w_ih).reshape(x.shape) if needs[0] else None
    dw_ih = kernel.transposed_product(rows_xw, x.reshape(steps * batch, -1)) if needs[1] else None
    dw_hh = None
    if needs[2] and h0 is None:
        dw_hh = kernel.transposed_product(rows_hw[batch:], h_seq[:-1].reshape(-1, h_seq.shape[2]))
    elif needs[2]:  # h_(t-1) of every step in one array: one product (a second one for h_0 alone,
        # on BLAS, cost more than this copy: LSTM bench step 6.35 -> 6.18 ms)
        h_prev = np.concatenate((h0, h_seq[:-1].reshape(-1, h0.shape[1])))
        dw_hh = kernel.transposed_product(rows_hw, h_prev)
    db_ih = rows_xw.sum(axis=0) if needs[3] else None
    db_hh = (db_ih if d_hw is d_xw and db_ih is not None else rows_hw.sum(axis=0)) if needs[4] else None
    return dx, dw_ih, dw_hh, db_ih, db_hh


class RNNLayer(Function):
    """One Elman layer over a sequence:  h_t = f(x_t W_ih^T + b_ih + h_(t-1) W_hh^T + b_hh),
    f = tanh (or relu).  Returns h (T, N, H).

    Backprop through time (the notes' "Recurrent network", rows are samples):
        da_t = f'(a_t) * (dL/dh_t + da_(t+1) W_hh),  f' = 1 - h_t^2 (tanh), [h_t > 0] (relu);
        dW_hh = sum_t da_t^T h_(t-1),  dW_ih = sum_t da_t^T x_t,  db = sum_t da_t,
        dx_t = da_t W_ih,  dh_0 = da_1 W_hh.
    """

    @staticmethod
    def infer(x, h0, w_ih, w_hh, *rest, **options):
        return MetaArray(x.shape[:2] + w_hh.shape[1:], x.dtype)

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, relu=False):
        kernel = for_device(ctx.device, "rnn")
        x = np.ascontiguousarray(x, like=like(x))
        xw = _project(ctx.device, x, w_ih, _sum_bias(b_ih, b_hh))
        h_seq = kernel.rnn_forward(xw, _initial_state(h0, x, w_hh.shape[1]),
                                   np.ascontiguousarray(w_hh.T, like=like(x)), relu)
        ctx.save_for_backward(x, h0, h_seq, w_ih, w_hh)
        ctx.relu = relu
        return h_seq

    @staticmethod
    def backward(ctx, grad):
        x, h0, h_seq, w_ih, w_hh = ctx.saved_arrays
        kernel = for_device(ctx.device, "rnn")
        da, dh0 = kernel.rnn_backward(np.ascontiguousarray(grad, like=like(grad)), h_seq, w_hh, ctx.relu)
        needs = ctx.needs_input_grad
        dx, dw_ih, dw_hh, db_ih, db_hh = _layer_grads(
            ctx.device, needs[:1] + needs[2:], x, h0, h_seq, w_ih, da, da)
        return dx, (dh0 if needs[1] else None), dw_ih, dw_hh, db_ih, db_hh


class LSTMLayer(Function):
    """One LSTM layer over a sequence, PyTorch's gates [i f g o] = rows of W_ih, W_hh:
        i, f, o = sigmoid(.), g = tanh(.) of x_t W_ih^T + b_ih + h_(t-1) W_hh^T + b_hh;
        c_t = f c_(t-1) + i g,  h_t = o tanh(c_t).
    Returns (T + 1, N, H): rows h_1..h_T, then c_T.

    Backward: the kernel's BPTT gives the gate pre-activation gradients da_t (formulas in
    kernels/cpu/rnn.lstm_backward), then dW_ih = sum_t da_t^T x_t, dW_hh = sum_t da_t^T h_(t-1),
    db = sum_t da_t, dx_t = da_t W_ih.
    """

    @staticmethod
    def infer(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        return MetaArray((x.shape[0] + 1,) + x.shape[1:2] + w_hh.shape[1:], x.dtype)

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        kernel = for_device(ctx.device, "rnn")
        x = np.ascontiguousarray(x, like=like(x))
        c0 = _initial_state(c0, x, w_hh.shape[1])
        xw = _project(ctx.device, x, w_ih, _sum_bias(b_ih, b_hh))
        out, c_seq, gates, tanh_c = kernel.lstm_forward(xw, _initial_state(h0, x, w_hh.shape[1]), c0,
                                                        np.ascontiguousarray(w_hh.T, like=like(x)))
        ctx.save_for_backward(x, h0, c0, out, c_seq, gates, tanh_c, w_ih, w_hh)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, h0, c0, out, c_seq, gates, tanh_c, w_ih, w_hh = ctx.saved_arrays
        kernel = for_device(ctx.device, "rnn")
        da, dh0, dc0 = kernel.lstm_backward(np.ascontiguousarray(grad, like=like(grad)), gates, c_seq,
                                            tanh_c, c0, w_hh)
        needs = ctx.needs_input_grad
        dx, dw_ih, dw_hh, db_ih, db_hh = _layer_grads(
            ctx.device, needs[:1] + needs[3:], x, h0, out[:-1], w_ih, da, da)
        return (dx, dh0 if needs[1] else None, dc0 if needs[2] else None,
                dw_ih, dw_hh, db_ih, db_hh)


class GRULayer(Function):
    """One GRU layer over a sequence, PyTorch's gates [r z n]:
        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr),  z = sigmoid(W_iz x + b_iz + W_hz h + b_hz),
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h_t = (1 - z) n + z h_(t-1).
    Returns h (T, N, H).

    Backward: the kernel's BPTT gives the input-side and hidden-side pre-activation gradients
    (they differ in the n gate by the factor r; formulas in kernels/cpu/rnn.gru_backward), then
    the weight, bias and input gradients are GEMMs and sums over all steps.
    """

    infer = RNNLayer.infer

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh):
        kernel = for_device(ctx.device, "rnn")
        x = np.ascontiguousarray(x, like=like(x))
        xw = _project(ctx.device, x, w_ih, b_ih)
        b_hh = np.zeros(w_hh.shape[0], dtype=x.dtype, like=like(x)) if b_hh is None else b_hh
        h_seq, saved = kernel.gru_forward(xw, _initial_state(h0, x, w_hh.shape[1]),
                                          np.ascontiguousarray(w_hh.T, like=like(x)), b_hh)
        ctx.save_for_backward(x, h0, h_seq, saved, w_ih, w_hh)
        return h_seq

    @staticmethod
    def backward(ctx, grad):
        x, h0, h_seq, saved, w_ih, w_hh = ctx.saved_arrays
        kernel = for_device(ctx.device, "rnn")
        d_xw, d_hw, dh0 = kernel.gru_backward(np.ascontiguousarray(grad, like=like(grad)), saved, h_seq,
                                              _initial_state(h0, x, w_hh.shape[1]), w_hh)
        needs = ctx.needs_input_grad
        dx, dw_ih, dw_hh, db_ih, db_hh = _layer_grads(
            ctx.device, needs[:1] + needs[2:], x, h0, h_seq, w_ih, d_xw, d_hw)
        return dx, (dh0 if needs[1] else None), dw_ih, dw_hh, db_ih, db_hh


# ---------------------------------------------------------------- checks

def _shape(t):
    return tuple(t.shape)


def check_recurrent_input(name, input, hx, input_size, hidden_size, num_layers, batch_first,
                          dtype, lstm=False):
    """Raise an error naming ``name`` and the shapes when the input or initial state do not fit.

    Input (T, N, I), or (N, T, I) when batch_first, or (T, I) unbatched; state (L, N, H), or
    (L, H) unbatched, L = ``num_layers`` counting both directions of a bidirectional layer; for
    an LSTM a tuple (h_0, c_0) of such."""
    require_float(name, input)
    order = "(batch, seq_len, input_size)" if batch_first else "(seq_len, batch, input_size)"
    if input.ndim not in (2, 3) or input.shape[-1] != input_size:
        raise ValueError(f"{name}: expected input of shape {order} or (seq_len, input_size) with "
                         f"input_size={input_size}, got {_shape(input)}")
    if input.shape[1 if batch_first and input.ndim == 3 else 0] == 0:
        raise ValueError(f"{name}: expected a sequence of length at least 1, got input of shape "
                         f"{_shape(input)} {order}")
    if hx is None:
        states = {}
    elif lstm:
        if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise ValueError(f"{name}: expected the initial state as a tuple (h_0, c_0), "
                             f"got {type(hx).__name__}")
        states = {"h_0": hx[0], "c_0": hx[1]}
    else:
        states = {"h_0": hx}
    for label, array in {"input": input, **states}.items():
        if array.dtype != dtype:
            raise TypeError(f"{name}: {label} has dtype {array.dtype} but the weights {dtype}; "
                            f"convert one of them (tensor.to(...) or layer.to(...))")
    batch = input.shape[0 if batch_first else 1] if input.ndim == 3 else None
    expected = (num_layers, hidden_size) if batch is None else (num_layers, batch, hidden_size)
    for label, state in states.items():
        if _shape(state) != expected:
            raise ValueError(f"{name}: expected {label} of shape {expected} (num_layers * "
                             f"num_directions, batch, hidden_size) for input of shape {_shape(input)}, "
                             f"got {_shape(state)}")


# ---------------------------------------------------------------- functional forms

def _run_layer(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
    """One direction of one layer over x (T, N, F): (hidden sequence (T, N, H), h_T, c_T or None)."""
    if mode == "lstm":
        rows = LSTMLayer.apply(x, h0, c0, w_ih, w_hh, b_ih, b_hh)
        return rows[:-1], rows[-2], rows[-1]
    if mode == "gru":
        h_seq = GRULayer.apply(x, h0, w_ih, w_hh, b_ih, b_hh)
    else:
        h_seq = RNNLayer.apply(x, h0, w_ih, w_hh, b_ih, b_hh, relu=mode == "rnn_relu")
    return h_seq, h_seq[-1], None


def _recurrent(mode, input, hx, weights, batch_first, name, dropout=0.0, training=False,
               bidirectional=False):
    """Run the stacked layers; returns (output, h_n) or, for the LSTM, (output, (h_n, c_n)).
    ``weights`` holds one tuple per layer and direction, in PyTorch's order (l0, l0_reverse,
    l1, ...); h_n stacks the last states in the same order."""
    lstm = mode == "lstm"
    directions = 2 if bidirectional else 1
    if not 0.0 <= dropout <= 1.0:
        raise ValueError(f"{name}: dropout must be a probability in [0, 1], got {dropout}")
    if len(weights) % directions:
        raise ValueError(f"{name}: a bidirectional network needs two weight tuples per layer, got "
                         f"{len(weights)}")
    w_ih, w_hh = weights[0][:2]
    hidden_size, dtype = w_hh.shape[1], w_hh.dtype
    check_recurrent_input(name, input, hx, w_ih.shape[1], hidden_size, len(weights), batch_first,
                          dtype, lstm)
    states = None if hx is None else (list(hx) if lstm else [hx])
    unbatched = input.ndim == 2
    if unbatched:
        input = input.unsqueeze(1)
        states = None if states is None else [s.unsqueeze(1) for s in states]
    elif batch_first:
        input = input.transpose(0, 1)
    x = input
    h_last, c_last = [], []
    num_layers = len(weights) // directions
    for layer in range(num_layers):
        outputs = []
        for direction in range(directions):
            index = layer * directions + direction
            h0 = None if states is None else states[0][index]  # None: zeros, known to the layer
            c0 = None if states is None or not lstm else states[1][index]
            h_seq, h_n, c_n = _run_layer(mode, x if direction == 0 else x[::-1], h0, c0,
                                         *weights[index])
            outputs.append(h_seq if direction == 0 else h_seq[::-1])
            h_last.append(h_n)
            c_last.append(c_n)
        x = outputs[0] if directions == 1 else concatenate(outputs, dim=2)
        if training and dropout > 0.0 and layer < num_layers - 1:
            x = dropout_entries(x, dropout, training)
    finals = [stack(h_last)] + ([stack(c_last)] if lstm else [])
    if unbatched:
        x, finals = x.squeeze(1), [s.squeeze(1) for s in finals]
    elif batch_first:
        x = x.transpose(0, 1)
    return x, (tuple(finals) if lstm else finals[0])


def rnn(input, hx, weights, nonlinearity="tanh", batch_first=False, name="rnn", dropout=0.0,
        training=False, bidirectional=False):
    """Elman RNN, h_t = f(x_t W_ih^T + b_ih + h_(t-1) W_hh^T + b_hh) per layer, f = tanh | relu.

    ``weights``: one (W_ih, W_hh, b_ih, b_hh) per layer and direction (l0, l0_reverse, l1, ...;
    biases may be None); ``hx``: h_0 of shape (num_layers * num_directions, N, H) or None
    (zeros); ``dropout``: applied to every layer's output but the last when ``training``.
    Returns (output, h_n) as torch.nn.RNN; output (T, N, num_directions H)."""
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"{name}: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return _recurrent("rnn_" + nonlinearity, input, hx, weights, batch_first, name, dropout,
                      training, bidirectional)


def lstm(input, hx, weights, batch_first=False, name="lstm", dropout=0.0, training=False,
         bidirectional=False):
    """LSTM (gates i f g o; see LSTMLayer). ``hx``: (h_0, c_0) or None; other arguments as in
    ``rnn``. Returns (output, (h_n, c_n)) as torch.nn.LSTM."""
    return _recurrent("lstm", input, hx, weights, batch_first, name, dropout, training,
                      bidirectional)


def gru(input, hx, weights, batch_first=False, name="gru", dropout=0.0, training=False,
        bidirectional=False):
    """GRU (gates r z n, n = tanh(W_in x + b_in + r (W_hn h + b_hn)); see GRULayer); arguments
    as in ``rnn``. Returns (output, h_n) as torch.nn.GRU."""
    return _recurrent("gru", input, hx, weights, batch_first, name, dropout, training,
                      bidirectional)


# ---------------------------------------------------------------- embedding

class Embedding(Function):
    """y[...] = W[index[...]];  dW[k] = sum of dy over the positions holding index k
    (zero for padding_idx, which therefore never learns)."""

    @staticmethod
    def infer(index, weight, padding_idx=None):
        return MetaArray(index.shape + weight.shape[1:], weight.dtype)

    @staticmethod
    def forward(ctx, index, weight, padding_idx=None):
        ctx.index, ctx.shape, ctx.padding_idx = index, weight.shape, padding_idx
        return weight[index]

    @staticmethod
    def backward(ctx, grad):
        rows = np.ascontiguousarray(grad.reshape(-1, ctx.shape[1]), like=like(grad))
        dw = for_device(ctx.device, "embedding").embedding_backward(ctx.index.reshape(-1), rows, ctx.shape[0])
        if ctx.padding_idx is not None:
            dw[ctx.padding_idx] = 0
        return None, dw


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0):
    """Rows of ``weight`` (num_embeddings, dim) picked by the integer ``input``: shape input.shape + (dim,).

    With ``max_norm``, first (as PyTorch, in place and outside the graph) every looked-up row
    whose ``norm_type``-norm exceeds max_norm is scaled by max_norm / (norm + 1e-7)."""
    index = input.array if isinstance(input, Tensor) else np.asarray(input)
    if not np.issubdtype(index.dtype, np.integer):
        raise TypeError(f"embedding: input must hold integer indices, got dtype {index.dtype}")
    count = weight.shape[0]
    if not is_meta(index) and index.size and (index.min() < 0 or index.max() >= count):
        bad = index[(index < 0) | (index >= count)].reshape(-1)[0]
        raise IndexError(f"embedding: index {int(bad)} is out of range for {count} embeddings "
                         f"(input of shape {index.shape})")
    if max_norm is not None and not is_meta(index) and index.size:
        _renorm_rows(weight, index, float(max_norm), float(norm_type))
    return Embedding.apply(index, weight, padding_idx=padding_idx)


def _renorm_rows(weight, index, max_norm, norm_type):
    """weight[k] *= max_norm / (||weight[k]|| + 1e-7) for the indexed rows k above max_norm."""
    rows = np.unique(index.reshape(-1))
    norms = np.linalg.norm(weight.array[rows], ord=norm_type, axis=1)
    over = norms > max_norm
    if over.any():
        scale = (max_norm / (norms[over] + 1e-7)).astype(weight.dtype)
        with no_grad():
            weight[rows[over]] = weight.array[rows[over]] * scale[:, None]
