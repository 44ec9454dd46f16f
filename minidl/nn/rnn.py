"""Recurrent layers with PyTorch's names, parameter layout and return values:
RNN, LSTM, GRU (whole sequences) and RNNCell, LSTMCell, GRUCell (one step).

Parameters per layer k: weight_ih_l{k} (G H, I or H), weight_hh_l{k} (G H, H), bias_ih_l{k},
bias_hh_l{k} (G H), gates stacked along rows (G = 1; LSTM 4: i f g o; GRU 3: r z n), so a
PyTorch state_dict converted to numpy loads with ``load_state_dict``. Init as PyTorch: every
parameter ~ U(-1/sqrt(H), 1/sqrt(H)). Formulas in minidl.nn.functional.recurrent.
"""
import math

import numpy as np

from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter

_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def _rnn_mode(nonlinearity):
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return "rnn_" + nonlinearity


class RNNBase(Module):
    """Stacked recurrent layers over a sequence; subclasses fix the cell type."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dtype=np.float32):
        super().__init__()
        if num_layers < 1 or hidden_size < 1 or input_size < 1:
            raise ValueError(f"{type(self).__name__}: input_size, hidden_size and num_layers must "
                             f"be positive, got {input_size}, {hidden_size}, {num_layers}")
        self.mode = mode
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.num_layers, self.bias, self.batch_first = int(num_layers), bool(bias), bool(batch_first)
        width = _GATES[mode] * self.hidden_size
        for layer in range(self.num_layers):
            fan_in = self.input_size if layer == 0 else self.hidden_size
            setattr(self, f"weight_ih_l{layer}", Parameter(np.empty((width, fan_in), dtype=dtype)))
            setattr(self, f"weight_hh_l{layer}", Parameter(np.empty((width, self.hidden_size), dtype=dtype)))
            if bias:
                setattr(self, f"bias_ih_l{layer}", Parameter(np.empty(width, dtype=dtype)))
                setattr(self, f"bias_hh_l{layer}", Parameter(np.empty(width, dtype=dtype)))
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            init.uniform_(param, -bound, bound)

    def layer_weights(self):
        """[(W_ih, W_hh, b_ih, b_hh)] per layer, biases None without bias."""
        return [tuple(getattr(self, f"{name}_l{layer}", None)
                      for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
                for layer in range(self.num_layers)]

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.mode == "rnn_relu":
            text += ", nonlinearity='relu'"
        if not self.bias:
            text += ", bias=False"
        if self.batch_first:
            text += ", batch_first=True"
        return text


class RNN(RNNBase):
    """Elman RNN: h_t = f(x_t W_ih^T + b_ih + h_(t-1) W_hh^T + b_hh), f = tanh or relu.

    ``forward(input, h_0=None)`` -> (output, h_n): input (T, N, I) ((N, T, I) with batch_first,
    or (T, I) unbatched), h_0 and h_n (num_layers, N, H), output (T, N, H), the last layer's h_t.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dtype=np.float32):
        super().__init__(_rnn_mode(nonlinearity), input_size, hidden_size, num_layers, bias,
                         batch_first, dtype)

    def forward(self, input, hx=None):
        return F.rnn(input, hx, self.layer_weights(), self.mode[4:], self.batch_first, repr(self))


class LSTM(RNNBase):
    """LSTM: gates i, f, o = sigmoid, g = tanh of x_t W_ih^T + b_ih + h_(t-1) W_hh^T + b_hh;
    c_t = f c_(t-1) + i g, h_t = o tanh(c_t).

    ``forward(input, (h_0, c_0)=None)`` -> (output, (h_n, c_n)), shapes as in RNN.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dtype=np.float32):
        super().__init__("lstm", input_size, hidden_size, num_layers, bias, batch_first, dtype)

    def forward(self, input, hx=None):
        return F.lstm(input, hx, self.layer_weights(), self.batch_first, repr(self))


class GRU(RNNBase):
    """GRU: r, z = sigmoid(...), n = tanh(W_in x + b_in + r (W_hn h + b_hn)),
    h_t = (1 - z) n + z h_(t-1).

    ``forward(input, h_0=None)`` -> (output, h_n), shapes as in RNN.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dtype=np.float32):
        super().__init__("gru", input_size, hidden_size, num_layers, bias, batch_first, dtype)

    def forward(self, input, hx=None):
        return F.gru(input, hx, self.layer_weights(), self.batch_first, repr(self))


# ---------------------------------------------------------------- cells: one time step

class RNNCellBase(Module):
    """One step of a recurrent layer; parameters weight_ih, weight_hh, bias_ih, bias_hh."""

    def __init__(self, mode, input_size, hidden_size, bias=True, dtype=np.float32):
        super().__init__()
        self.mode = mode
        self.input_size, self.hidden_size, self.bias = int(input_size), int(hidden_size), bool(bias)
        width = _GATES[mode] * self.hidden_size
        self.weight_ih = Parameter(np.empty((width, self.input_size), dtype=dtype))
        self.weight_hh = Parameter(np.empty((width, self.hidden_size), dtype=dtype))
        self.bias_ih = Parameter(np.empty(width, dtype=dtype)) if bias else None
        self.bias_hh = Parameter(np.empty(width, dtype=dtype)) if bias else None
        self.reset_parameters()

    reset_parameters = RNNBase.reset_parameters

    def _step(self, input, hx):
        """Run the sequence function on one step: input (N, I) or (I,), states (N, H) or (H,)."""
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(f"{self!r}: expected input of shape (batch, {self.input_size}) or "
                             f"({self.input_size},), got {tuple(input.shape)}")
        expected = tuple(input.shape[:-1]) + (self.hidden_size,)
        for state in () if hx is None else (hx if self.mode == "lstm" else (hx,)):
            if tuple(state.shape) != expected:
                raise ValueError(f"{self!r}: expected hidden state of shape {expected} for input "
                                 f"of shape {tuple(input.shape)}, got {tuple(state.shape)}")
        states = None if hx is None else (hx if self.mode == "lstm" else (hx,))
        sequence = input.unsqueeze(0)
        if states is not None:
            states = [s.unsqueeze(0) for s in states]
            states = tuple(states) if self.mode == "lstm" else states[0]
        weights = [(self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)]
        name = repr(self)
        if self.mode == "lstm":
            _, (h, c) = F.lstm(sequence, states, weights, name=name)
            return h[0], c[0]
        if self.mode == "gru":
            _, h = F.gru(sequence, states, weights, name=name)
        else:
            _, h = F.rnn(sequence, states, weights, self.mode[4:], name=name)
        return h[0]

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        if self.mode == "rnn_relu":
            text += ", nonlinearity='relu'"
        return text + ("" if self.bias else ", bias=False")


class RNNCell(RNNCellBase):
    """h' = f(x W_ih^T + b_ih + h W_hh^T + b_hh), f = tanh or relu. ``forward(input, h=None)``
    with input (N, I) or (I,), h (N, H) or (H,); returns h'."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", dtype=np.float32):
        super().__init__(_rnn_mode(nonlinearity), input_size, hidden_size, bias, dtype)

    def forward(self, input, hx=None):
        return self._step(input, hx)


class LSTMCell(RNNCellBase):
    """One LSTM step; ``forward(input, (h, c)=None)`` returns (h', c')."""

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float32):
        super().__init__("lstm", input_size, hidden_size, bias, dtype)

    def forward(self, input, hx=None):
        return self._step(input, hx)


class GRUCell(RNNCellBase):
    """One GRU step; ``forward(input, h=None)`` returns h'."""

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float32):
        super().__init__("gru", input_size, hidden_size, bias, dtype)

    def forward(self, input, hx=None):
        return self._step(input, hx)
