"""Float64 finite-difference checks of the recurrent layers' backprop through time."""
import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.utils.gradcheck import gradcheck

MODES = {
    "rnn_tanh": lambda *a, **k: nn.RNN(*a, **k),
    "rnn_relu": lambda *a, **k: nn.RNN(*a, nonlinearity="relu", **k),
    "lstm": lambda *a, **k: nn.LSTM(*a, **k),
    "gru": lambda *a, **k: nn.GRU(*a, **k),
}


def everything(model):
    """fn(x, *states, *params) -> output and final states flattened into one vector."""
    params = list(model.parameters())

    def fn(x, *rest):
        states = rest[:len(rest) - len(params)]
        hx = None if not states else (tuple(states) if len(states) == 2 else states[0])
        out, final = model(x, hx)
        finals = list(final) if isinstance(final, tuple) else [final]
        return minidl.cat([t.reshape(-1) for t in [out] + finals])
    return fn, params


@pytest.mark.parametrize("mode", list(MODES))
def test_two_layers_with_initial_state(mode, rng):
    model = MODES[mode](3, 3, num_layers=2, batch_first=True, dtype=np.float64)
    fn, params = everything(model)
    x = minidl.tensor(rng.standard_normal((2, 4, 3)), requires_grad=True)
    states = [minidl.tensor(rng.standard_normal((2, 2, 3)), requires_grad=True)
              for _ in range(2 if mode == "lstm" else 1)]
    assert gradcheck(fn, [x, *states, *params])


@pytest.mark.parametrize("mode", list(MODES))
def test_fifty_time_steps(mode, rng):
    model = MODES[mode](2, 2, dtype=np.float64)
    fn, params = everything(model)
    x = minidl.tensor(rng.standard_normal((50, 1, 2)), requires_grad=True)
    assert gradcheck(fn, [x, *params])


@pytest.mark.parametrize("mode", ["rnn_tanh", "lstm", "gru"])
def test_cell(mode, rng):
    cell = {"rnn_tanh": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}[mode](3, 2, dtype=np.float64)
    params = list(cell.parameters())
    states = [minidl.tensor(rng.standard_normal((2, 2)), requires_grad=True)
              for _ in range(2 if mode == "lstm" else 1)]

    def fn(x, *rest):
        new = cell(x, tuple(rest[:2]) if mode == "lstm" else rest[0])
        return minidl.cat([t.reshape(-1) for t in (new if mode == "lstm" else (new,))])
    x = minidl.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    assert gradcheck(fn, [x, *states, *params])


def test_embedding(rng):
    layer = nn.Embedding(5, 3, dtype=np.float64)
    index = minidl.tensor(np.array([[0, 2, 4], [4, 4, 1]]))
    assert gradcheck(lambda w: minidl.nn.functional.embedding(index, w), [layer.weight])
