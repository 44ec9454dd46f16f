"""RNN, LSTM, GRU, their cells and Embedding against PyTorch (same weights), plus shape errors."""
import contextlib

import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.nn.utils import clip_grad_norm_

from conftest import assert_close

torch = pytest.importorskip("torch")

LAYERS = {
    "rnn_tanh": (nn.RNN, torch.nn.RNN, {}),
    "rnn_relu": (nn.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (nn.LSTM, torch.nn.LSTM, {}),
    "gru": (nn.GRU, torch.nn.GRU, {}),
}
CELLS = {
    "rnn_tanh": (nn.RNNCell, torch.nn.RNNCell, {}),
    "rnn_relu": (nn.RNNCell, torch.nn.RNNCell, {"nonlinearity": "relu"}),
    "lstm": (nn.LSTMCell, torch.nn.LSTMCell, {}),
    "gru": (nn.GRUCell, torch.nn.GRUCell, {}),
}
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}


def copy_of(torch_module, minidl_class, dtype, *args, **kwargs):
    """A minidl module loaded from ``torch_module``'s state_dict (names must match exactly)."""
    torch_module.to(TORCH_DTYPE[dtype])
    module = minidl_class(*args, dtype=dtype, **kwargs)
    module.load_state_dict({k: v.detach().numpy() for k, v in torch_module.state_dict().items()})
    return module


def both(array, requires_grad=True):
    return minidl.tensor(array, requires_grad=requires_grad), torch.tensor(array, requires_grad=requires_grad)


def flat_states(states):
    return list(states) if isinstance(states, tuple) else [states]


def weighted_sum(tensors, weights):
    """sum_k sum(t_k * w_k): an upstream gradient that differs per entry."""
    total = None
    for t, w in zip(tensors, weights):
        term = (t * w).sum()
        total = term if total is None else total + term
    return total


# (seq_len, batch, num_layers, batch_first, with initial state, bias)
CONFIGS = [
    (1, 1, 1, False, False, True),
    (6, 3, 2, True, True, True),
    (9, 2, 3, False, True, False),
    (4, 19, 1, False, True, True),  # the LSTM's and GRU's rows in three shares
]


@pytest.mark.parametrize("mode", list(LAYERS))
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "T{}-N{}-L{}-bf{}-h0{}-bias{}".format(*c))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layer_matches_torch(mode, config, dtype, rng):
    steps, batch, layers, batch_first, with_state, bias = config
    cls, torch_cls, kwargs = LAYERS[mode]
    input_size, hidden = 4, 5
    reference = torch_cls(input_size, hidden, num_layers=layers, bias=bias, batch_first=batch_first, **kwargs)
    model = copy_of(reference, cls, dtype, input_size, hidden, num_layers=layers, bias=bias,
                    batch_first=batch_first, **kwargs)
    shape = (batch, steps, input_size) if batch_first else (steps, batch, input_size)
    x, tx = both(rng.standard_normal(shape).astype(dtype))
    state = t_state = None
    if with_state:
        pairs = [both(rng.standard_normal((layers, batch, hidden)).astype(dtype))
                 for _ in range(2 if mode == "lstm" else 1)]
        state, t_state = (tuple(p[0] for p in pairs), tuple(p[1] for p in pairs))
        if mode != "lstm":
            state, t_state = state[0], t_state[0]

    out, final = model(x, state)
    t_out, t_final = reference(tx, t_state)
    tol = dict(rtol=1e-9, atol=1e-10) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    assert_close(out, t_out, what="output", **tol)
    for mine, theirs in zip(flat_states(final), flat_states(t_final)):
        assert_close(mine, theirs, what="final state", **tol)

    weights = [rng.standard_normal(t.shape).astype(dtype) for t in [t_out] + flat_states(t_final)]
    weighted_sum([out] + flat_states(final), weights).backward()
    weighted_sum([t_out] + flat_states(t_final), [torch.from_numpy(w) for w in weights]).backward()
    assert_close(x.grad, tx.grad, what="d input", **tol)
    for (name, param), (t_name, t_param) in zip(model.named_parameters(), reference.named_parameters()):
        assert name == t_name
        assert_close(param.grad, t_param.grad, what=f"d {name}", **tol)
    if with_state:
        for mine, theirs in zip(flat_states(state), flat_states(t_state)):
            assert_close(mine.grad, theirs.grad, what="d initial state", **tol)


@pytest.mark.parametrize("mode", list(LAYERS))
def test_unbatched_input_matches_torch(mode, rng):
    cls, torch_cls, kwargs = LAYERS[mode]
    reference = torch_cls(3, 4, num_layers=2, **kwargs)
    model = copy_of(reference, cls, np.float64, 3, 4, num_layers=2, **kwargs)
    x, tx = both(rng.standard_normal((5, 3)))
    out, final = model(x)
    t_out, t_final = reference(tx)
    assert_close(out, t_out, what="output")
    for mine, theirs in zip(flat_states(final), flat_states(t_final)):
        assert_close(mine, theirs, what="final state")


@pytest.mark.parametrize("mode", list(CELLS))
@pytest.mark.parametrize("batched", [True, False])
def test_cell_matches_torch(mode, batched, rng):
    cls, torch_cls, kwargs = CELLS[mode]
    reference = torch_cls(3, 4, **kwargs).double()
    cell = cls(3, 4, dtype=np.float64, **kwargs)
    cell.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    lead = (2,) if batched else ()
    x, tx = both(rng.standard_normal(lead + (3,)))
    states = [both(rng.standard_normal(lead + (4,))) for _ in range(2 if mode == "lstm" else 1)]
    hx = tuple(s[0] for s in states) if mode == "lstm" else states[0][0]
    t_hx = tuple(s[1] for s in states) if mode == "lstm" else states[0][1]
    for args, t_args in (((x,), (tx,)), ((x, hx), (tx, t_hx))):
        new, t_new = cell(*args), reference(*t_args)
        for mine, theirs in zip(flat_states(new), flat_states(t_new)):
            assert_close(mine, theirs, what="new state")
    weights = [rng.standard_normal(lead + (4,)) for _ in flat_states(new)]
    weighted_sum(flat_states(new), weights).backward()
    weighted_sum(flat_states(t_new), [torch.from_numpy(w) for w in weights]).backward()
    assert_close(x.grad, tx.grad, what="d input")
    for (name, param), (_, t_param) in zip(cell.named_parameters(), reference.named_parameters()):
        assert_close(param.grad, t_param.grad, what=f"d {name}")
    for mine, theirs in states:
        assert_close(mine.grad, theirs.grad, what="d state")


def test_clip_grad_norm_with_lstm(rng):
    reference = torch.nn.LSTM(3, 6, num_layers=2)
    model = copy_of(reference, nn.LSTM, np.float32, 3, 6, num_layers=2)
    x = rng.standard_normal((20, 4, 3)).astype(np.float32)
    out, _ = model(minidl.tensor(x))
    (out * out).sum().backward()
    t_out, _ = reference(torch.tensor(x))
    (t_out * t_out).sum().backward()
    norm = clip_grad_norm_(model.parameters(), max_norm=0.5)
    t_norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), max_norm=0.5)
    assert norm == pytest.approx(float(t_norm), rel=1e-4)
    assert norm > 0.5
    for param, t_param in zip(model.parameters(), reference.parameters()):
        assert_close(param.grad, t_param.grad, what="clipped gradient", rtol=1e-4, atol=1e-6)
    clipped = np.sqrt(sum(float((p.grad.array.astype(np.float64) ** 2).sum()) for p in model.parameters()))
    assert clipped == pytest.approx(0.5, rel=1e-4)


def test_embedding_matches_torch(rng):
    reference = torch.nn.Embedding(7, 3, padding_idx=0).double()
    layer = nn.Embedding(7, 3, padding_idx=0, dtype=np.float64)
    layer.load_state_dict({"weight": reference.weight.detach().numpy()})
    index = np.array([[1, 0, 3], [3, 3, 6]])
    out, t_out = layer(minidl.tensor(index)), reference(torch.tensor(index))
    assert_close(out, t_out, what="embedding")
    upstream = rng.standard_normal((2, 3, 3))
    (out * upstream).sum().backward()
    (t_out * torch.from_numpy(upstream)).sum().backward()
    assert_close(layer.weight.grad, reference.weight.grad, what="d weight")
    assert not layer.weight.grad.array[0].any()


def test_embedding_weight_gradient_sums_every_repeat(rng):
    """float32 rows and int32 indices, many repeats of few rows: dW equals np.add.at's sums."""
    layer = nn.Embedding(5, 4)
    index = rng.integers(0, 5, (30, 7)).astype(np.int32)
    upstream = rng.standard_normal((30, 7, 4)).astype(np.float32)
    layer(minidl.tensor(index)).backward(upstream)
    expected = np.zeros((5, 4))
    np.add.at(expected, index.reshape(-1), upstream.reshape(-1, 4).astype(np.float64))
    assert layer.weight.grad.dtype == np.float32
    np.testing.assert_allclose(layer.weight.grad.data, expected, rtol=1e-5, atol=1e-5)


def test_fresh_embedding_padding_row_is_zero():
    assert not nn.Embedding(5, 4, padding_idx=-1).weight.array[4].any()


# ---------------------------------------------------------------- errors

def test_wrong_input_size_names_layer_and_shapes():
    lstm = nn.LSTM(4, 8)
    with pytest.raises(ValueError, match=r"LSTM\(4, 8\).*input_size=4.*\(5, 2, 3\)"):
        lstm(minidl.zeros(5, 2, 3))
    with pytest.raises(ValueError, match=r"RNN\(4, 8, batch_first=True\).*\(batch, seq_len, input_size\)"):
        nn.RNN(4, 8, batch_first=True)(minidl.zeros(2, 5, 7))


def test_wrong_hidden_state_names_layer_and_shapes():
    gru = nn.GRU(4, 8, num_layers=2)
    with pytest.raises(ValueError, match=r"GRU\(4, 8, num_layers=2\).*h_0 of shape \(2, 3, 8\).*got \(1, 3, 8\)"):
        gru(minidl.zeros(5, 3, 4), minidl.zeros(1, 3, 8))
    lstm = nn.LSTM(4, 8)
    with pytest.raises(ValueError, match=r"LSTM\(4, 8\).*c_0 of shape \(1, 3, 8\).*got \(1, 3, 9\)"):
        lstm(minidl.zeros(5, 3, 4), (minidl.zeros(1, 3, 8), minidl.zeros(1, 3, 9)))
    with pytest.raises(ValueError, match=r"LSTM\(4, 8\).*tuple \(h_0, c_0\)"):
        lstm(minidl.zeros(5, 3, 4), minidl.zeros(1, 3, 8))


def test_cell_errors_name_the_cell():
    cell = nn.RNNCell(4, 8)
    with pytest.raises(ValueError, match=r"RNNCell\(4, 8\).*\(batch, 4\).*got \(2, 5\)"):
        cell(minidl.zeros(2, 5))
    with pytest.raises(ValueError, match=r"RNNCell\(4, 8\).*hidden state of shape \(2, 8\).*got \(2, 7\)"):
        cell(minidl.zeros(2, 4), minidl.zeros(2, 7))


def test_dtype_mismatch_is_explained():
    with pytest.raises(TypeError, match=r"input has dtype float64 but the weights float32"):
        nn.RNN(2, 3)(minidl.zeros(4, 1, 2, dtype=np.float64))


def test_embedding_index_out_of_range():
    with pytest.raises(IndexError, match=r"index 9 is out of range for 5 embeddings"):
        nn.Embedding(5, 2)(minidl.tensor(np.array([1, 9])))


@pytest.mark.parametrize("mode", list(LAYERS))
@pytest.mark.parametrize("shape, all_products", [((7, 19, 6), False), ((5, 16, 32), True)], ids=["steps", "all"])
def test_float32_products_on_the_tiles_match_torch(mode, shape, all_products, rng, monkeypatch):
    """Hidden 32: every step product's width (H, 3H, 4H) is a multiple of the tiles' lanes, so the
    float32 time loops run them on register tiles; batch 19 leaves a share short of a tile's rows.
    With ``all_products`` the layer's GEMMs (x W_ih^T, d_xw W_ih, dW_ih, dW_hh) run on tiles too
    (TILED_PRODUCT_FROM and COPIED_B_ROWS 0): T x N = 80 rows, input 32."""
    from minidl.kernels.cpu import matmul
    if all_products:
        monkeypatch.setattr(matmul, "TILED_PRODUCT_FROM", 0)
        monkeypatch.setattr(matmul, "COPIED_B_ROWS", 0)
    cls, torch_cls, kwargs = LAYERS[mode]
    reference = torch_cls(shape[2], 32, **kwargs)
    model = copy_of(reference, cls, np.float32, shape[2], 32, **kwargs)
    x, tx = both(rng.standard_normal(shape).astype(np.float32))
    out, _ = model(x)
    t_out, _ = reference(tx)
    assert_close(out, t_out, what="output", rtol=1e-4, atol=1e-5)
    weights = rng.standard_normal(tuple(t_out.shape)).astype(np.float32)
    (out * minidl.tensor(weights)).sum().backward()
    (t_out * torch.from_numpy(weights)).sum().backward()
    assert_close(x.grad, tx.grad, what="d input", rtol=1e-4, atol=1e-5)
    for (name, param), (_, t_param) in zip(model.named_parameters(), reference.named_parameters()):
        assert_close(param.grad, t_param.grad, what=f"d {name}", rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("rows, depth, width", [(16, 620, 64), (8, 1, 32), (24, 256, 96), (12, 40, 64), (16, 40, 48)])
@pytest.mark.parametrize("transposed", [False, True])
def test_tiled_products_equal_numpy(rng, monkeypatch, rows, depth, width, transposed):
    """matmul.product and transposed_product in float32 against float64 products: K over several
    chunks and a short last one; rows or columns the tiles do not take (12 rows, 48 columns) and
    float64 go to numpy."""
    from minidl.kernels.cpu import matmul
    monkeypatch.setattr(matmul, "TILED_PRODUCT_FROM", 0)
    a = rng.standard_normal((depth, rows) if transposed else (rows, depth))
    b = rng.standard_normal((depth, width))
    expected = (a.T if transposed else a) @ b
    function = matmul.transposed_product if transposed else matmul.product
    ours = function(a.astype(np.float32), b.astype(np.float32))
    assert ours.dtype == np.float32 and ours.shape == (rows, width)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4 * np.sqrt(depth))
    np.testing.assert_allclose(function(a, b), expected, rtol=1e-12, atol=1e-12)
    if not transposed:  # a bias on every row: the tiles start each row block from it
        bias = rng.standard_normal(width)
        np.testing.assert_allclose(matmul.product(a.astype(np.float32), b.astype(np.float32), bias.astype(np.float32)),
                                   expected + bias, rtol=1e-4, atol=1e-4 * np.sqrt(depth))
        np.testing.assert_allclose(matmul.product(a, b, bias), expected + bias, rtol=1e-12, atol=1e-12)


def test_step_product_tiles_equal_numpy(rng):
    """rnn._step_product in float32 (tiles where the width is a multiple of TILE_LANES, rows in
    tiles of TILE_ROWS and a short last one) against numpy's product in float64."""
    from numba import njit
    from minidl.kernels.cpu import rnn

    @njit
    def product(a, b, out):
        rnn._step_product(a, b, out)

    for rows, depth, width in [(8, 128, 512), (19, 5, 32), (1, 1, 64), (3, 70, 96), (9, 4, 20)]:
        a, b = rng.standard_normal((rows, depth)), rng.standard_normal((depth, width))
        out = np.full((rows, width), np.nan, np.float32)
        product(a.astype(np.float32), b.astype(np.float32), out)
        np.testing.assert_allclose(out, a @ b, rtol=1e-4, atol=1e-4 * np.sqrt(depth))


@pytest.mark.parametrize("mode", ["rnn_tanh", "lstm", "gru"])
def test_time_loop_split_over_rows_equals_one_share(mode, rng, monkeypatch):
    """The kernels run shares of the batch's rows at once (each its own products); all rows in
    one share, as without a single-threaded BLAS, give the same numbers."""
    import numba
    from minidl.kernels.cpu import rnn, tasks
    steps, batch, hidden = 5, 19, 6
    per_share = None if mode == "rnn_tanh" else rnn.ROWS_PER_SHARE
    assert numba.get_num_threads() == 1 or tasks.shares(batch, per_share=per_share) > 1
    gates = {"rnn_tanh": 1, "lstm": 4, "gru": 3}[mode]
    xw = rng.standard_normal((steps, batch, gates * hidden))
    h0, c0 = rng.standard_normal((batch, hidden)), rng.standard_normal((batch, hidden))
    w_hh = rng.standard_normal((gates * hidden, hidden)) * 0.5
    w_hh_t = np.ascontiguousarray(w_hh.T)

    def forward_and_backward():
        if mode == "rnn_tanh":
            h_seq = rnn.rnn_forward(xw, h0, w_hh_t, False)
            return (h_seq,) + rnn.rnn_backward(np.cos(h_seq), h_seq, w_hh, False)
        if mode == "lstm":
            out, c_seq, act, tanh_c = rnn.lstm_forward(xw, h0, c0, w_hh_t)
            return (out,) + rnn.lstm_backward(np.cos(out), act, c_seq, tanh_c, c0, w_hh)
        h_seq, saved = rnn.gru_forward(xw, h0, w_hh_t, np.zeros(gates * hidden))
        return (h_seq,) + rnn.gru_backward(np.cos(h_seq), saved, h_seq, h0, w_hh)

    split = forward_and_backward()
    monkeypatch.setattr(tasks, "serial_kernel_blas", lambda: contextlib.nullcontext(False))
    monkeypatch.setattr(tasks, "kernel_blas_can_be_serial", lambda: False)
    for a, b in zip(split, forward_and_backward()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("steps", [1, 3])
def test_no_initial_state_is_a_zero_state(name, steps):
    """hx=None reaches the layers as None (their dW_hh then skips h_0's zero term): outputs and
    gradients as with explicit zero states."""
    rng = np.random.default_rng(5)
    model = getattr(nn, name)(5, 8, num_layers=2, bidirectional=True)
    x = rng.standard_normal((steps, 4, 5)).astype(np.float32)
    grads = []
    for hx in (None, (minidl.zeros(4, 4, 8), minidl.zeros(4, 4, 8)) if name == "LSTM" else minidl.zeros(4, 4, 8)):
        model.zero_grad()
        out, _ = model(minidl.tensor(x), hx)
        out.sum().backward()
        grads.append([out.detach().numpy()] + [p.grad.numpy().copy() for p in model.parameters()])
    for without, with_zeros in zip(*grads):
        np.testing.assert_allclose(without, with_zeros, rtol=1e-5, atol=1e-6)
