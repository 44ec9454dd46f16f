"""Recurrent layers with PyTorch's names, parameter layout and return values:
RNN, LSTM, GRU (whole sequences) and RNNCell, LSTMCell, GRUCell (one step).

Parameters per layer k: weight_ih_l{k} (G H, I or D H), weight_hh_l{k} (G H, H), bias_ih_l{k},
bias_hh_l{k} (G H), gates stacked along rows (G = 1; LSTM 4: i f g o; GRU 3: r z n), and with
``bidirectional=True`` (D = 2) the same again with the suffix ``_reverse``, so a PyTorch
state_dict converted to numpy loads with ``load_state_dict``. Init as PyTorch: every
parameter ~ U(-1/sqrt(H), 1/sqrt(H)). Formulas in minidl.nn.functional.recurrent.
"""
import math
import numbers
import warnings

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
                 dropout=0.0, bidirectional=False, dtype=np.float32):
        super().__init__()
        name = type(self).__name__
        if num_layers < 1 or hidden_size < 1 or input_size < 1:
            raise ValueError(f"{name}: input_size, hidden_size and num_layers must "
                             f"be positive, got {input_size}, {hidden_size}, {num_layers}")
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Number) or not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout should be a number in range [0, 1] representing the "
                             f"probability of an element being zeroed, got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{name}: dropout option adds dropout after all but last recurrent layer, "
                          f"so non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={dropout} and num_layers={num_layers}", UserWarning)
        self.mode = mode
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.num_layers, self.bias, self.batch_first = int(num_layers), bool(bias), bool(batch_first)
        self.dropout, self.bidirectional = float(dropout), bool(bidirectional)
        width = _GATES[mode] * self.hidden_size
        for layer in range(self.num_layers):
            fan_in = self.input_size if layer == 0 else self.hidden_size * self.num_directions
            for suffix in self._suffixes():
                setattr(self, f"weight_ih_l{layer}{suffix}", Parameter(np.empty((width, fan_in), dtype=dtype)))
                setattr(self, f"weight_hh_l{layer}{suffix}",
                        Parameter(np.empty((width, self.hidden_size), dtype=dtype)))
                if bias:
                    setattr(self, f"bias_ih_l{layer}{suffix}", Parameter(np.empty(width, dtype=dtype)))
                    setattr(self, f"bias_hh_l{layer}{suffix}", Parameter(np.empty(width, dtype=dtype)))
        self.reset_parameters()

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    def _suffixes(self):
        """The parameter-name suffix of each direction: "" and, if bidirectional, "_reverse"."""
        return ("", "_reverse")[:self.num_directions]

    def flatten_parameters(self):
        """A no-op: PyTorch packs cuDNN weights here; minidl's weights need no packing."""

    def _functional_options(self):
        """The keyword arguments every forward passes to F.rnn / F.lstm / F.gru."""
        return {"name": repr(self), "dropout": self.dropout, "training": self.training,
                "bidirectional": self.bidirectional}

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            init.uniform_(param, -bound, bound)

    def layer_weights(self):
        """[(W_ih, W_hh, b_ih, b_hh)] per layer and direction (l0, l0_reverse, l1, ...), biases
        None without bias."""
        return [tuple(getattr(self, f"{name}_l{layer}{suffix}", None)
                      for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
                for layer in range(self.num_layers) for suffix in self._suffixes()]

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
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional=True"
        return text


class RNN(RNNBase):
    """Elman RNN: h_t = f(x_t W_ih^T + b_ih + h_(t-1) W_hh^T + b_hh), f = tanh or relu.

    ``forward(input, h_0=None)`` -> (output, h_n): input (T, N, I) ((N, T, I) with batch_first,
    or (T, I) unbatched), h_0 and h_n (num_layers * D, N, H), output (T, N, D H), the last
    layer's h_t (D = 2 when bidirectional: [forward, reverse] features). ``dropout``: on every
    layer's output but the last, in training mode.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, dtype=np.float32):
        super().__init__(_rnn_mode(nonlinearity), input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, dtype)

    def forward(self, input, hx=None):
        return F.rnn(input, hx, self.layer_weights(), self.mode[4:], self.batch_first,
                     **self._functional_options())


class LSTM(RNNBase):
    """LSTM: gates i, f, o = sigmoid, g = tanh of x_t W_ih^T + b_ih + h_(t-1) W_hh^T + b_hh;
    c_t = f c_(t-1) + i g, h_t = o tanh(c_t).

    ``forward(input, (h_0, c_0)=None)`` -> (output, (h_n, c_n)), shapes as in RNN.
    ``proj_size`` > 0 (projected LSTM) is not implemented.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, dtype=np.float32):
        if proj_size:
            raise NotImplementedError(f"LSTM: proj_size={proj_size} (a projected LSTM) is not "
                                      f"implemented in minidl; use proj_size=0")
        super().__init__("lstm", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype)

    def forward(self, input, hx=None):
        return F.lstm(input, hx, self.layer_weights(), self.batch_first, **self._functional_options())


class GRU(RNNBase):
    """GRU: r, z = sigmoid(...), n = tanh(W_in x + b_in + r (W_hn h + b_hn)),
    h_t = (1 - z) n + z h_(t-1).

    ``forward(input, h_0=None)`` -> (output, h_n), shapes as in RNN.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype=np.float32):
        super().__init__("gru", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype)

    def forward(self, input, hx=None):
        return F.gru(input, hx, self.layer_weights(), self.batch_first, **self._functional_options())


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
