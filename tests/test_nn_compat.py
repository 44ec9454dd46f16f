"""PyTorch's Module API and layer options on minidl (issue 12, Modules): Module traversal,
buffers, apply, devices; ModuleList/ModuleDict/ParameterList/ParameterDict with PyTorch's
state_dict keys; Conv padding="same"/"valid"; bidirectional and dropout RNN/LSTM/GRU;
Dropout1d/2d; Identity, Flatten, Unflatten. Each against torch where torch has it (float64),
new differentiable paths with a finite-difference gradient check."""
from collections import OrderedDict

import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.nn import functional as F
from minidl.utils.gradcheck import gradcheck

from conftest import assert_close

torch = pytest.importorskip("torch")


def load_from(torch_module, module):
    """``module`` with ``torch_module``'s weights (float64), loaded by state_dict key."""
    torch_module.double()
    module.load_state_dict({k: v.detach().numpy() for k, v in torch_module.state_dict().items()})
    return module


def both(array):
    return (minidl.tensor(array, requires_grad=True),
            torch.tensor(array, dtype=torch.float64, requires_grad=True))


# ---------------------------------------------------------------- Module

class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 3)
        self.act = nn.ReLU()
        self.register_buffer("scale", minidl.ones(3))
        self.register_buffer("cache", minidl.zeros(2), persistent=False)


class _TorchBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 3)
        self.act = torch.nn.ReLU()
        self.register_buffer("scale", torch.ones(3))
        self.register_buffer("cache", torch.zeros(2), persistent=False)


def _pair_models():
    shared = nn.Linear(3, 3)
    ours = nn.Sequential(_Block(), shared, nn.Sequential(shared, nn.Tanh()))
    tshared = torch.nn.Linear(3, 3)
    theirs = torch.nn.Sequential(_TorchBlock(), tshared, torch.nn.Sequential(tshared, torch.nn.Tanh()))
    return ours, theirs


def test_traversal_names_match_torch():
    ours, theirs = _pair_models()
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert ([n for n, _ in ours.named_modules(remove_duplicate=False)]
            == [n for n, _ in theirs.named_modules(remove_duplicate=False)])
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert len(list(ours.children())) == 3 and len(list(ours.modules())) == 7
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert ([n for n, _ in ours.named_parameters(remove_duplicate=False)]
            == [n for n, _ in theirs.named_parameters(remove_duplicate=False)])
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_buffers(prefix="m")] == [n for n, _ in theirs.named_buffers(prefix="m")]
    assert list(ours[0].named_buffers(recurse=False)) == list(ours[0].named_buffers())
    assert list(ours.buffers(recurse=False)) == []
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_non_persistent_buffer_moves_but_is_not_saved():
    block = _Block()
    assert "cache" not in block.state_dict() and "scale" in block.state_dict()
    block.double()
    assert block.cache.dtype == np.float64 and block.scale.dtype == np.float64
    block.register_buffer("cache", minidl.zeros(2))       # re-registered persistent
    assert "cache" in block.state_dict()
    block.load_state_dict(block.state_dict())
    with pytest.raises(KeyError, match="already exists"):
        block.register_buffer("fc", minidl.zeros(1))
    with pytest.raises(KeyError, match="'.'"):
        block.register_buffer("a.b", minidl.zeros(1))
    with pytest.raises(TypeError, match="buffer 'x'"):
        block.register_buffer("x", np.zeros(1))
    block.register_buffer("empty", None)
    assert "empty" not in dict(block.named_buffers())
    del block.scale
    assert "scale" not in block.state_dict()
    block.scale = 3.0                                     # a plain attribute again
    assert block.scale == 3.0 and "scale" not in block.state_dict()


def test_apply_visits_children_first_like_torch():
    ours, theirs = _pair_models()
    seen, theirs_seen = [], []
    assert ours.apply(lambda m: seen.append(type(m).__name__)) is ours
    theirs.apply(lambda m: theirs_seen.append(type(m).__name__.replace("_Torch", "_")))
    assert seen == theirs_seen

    def init(module):
        if isinstance(module, nn.Linear):
            nn.init.constant_(module.weight, 0.5)
    ours.apply(init)
    assert all(np.all(m.weight.array == 0.5) for m in ours.modules() if isinstance(m, nn.Linear))


def test_cpu_and_cuda_delegate_to_to(monkeypatch):
    model = nn.Linear(2, 2)
    assert model.cpu() is model and model.weight.device == "cpu"
    targets = []
    monkeypatch.setattr(nn.Module, "to", lambda self, target=None, dtype=None: targets.append(target) or self)
    assert model.cuda() is model
    model.cuda(1)
    model.cuda("cuda:0")
    assert targets == ["cuda", "cuda:1", "cuda:0"]


def test_train_eval_reach_overridden_train_and_check_mode():
    calls = []

    class Recorder(nn.Module):
        def train(self, mode=True):
            calls.append(mode)
            return super().train(mode)

    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(Recorder()))
    model.eval()
    assert calls == [False] and not any(m.training for m in model.modules())
    model.train()
    assert calls == [False, True] and all(m.training for m in model.modules())
    with pytest.raises(ValueError, match="bool"):
        model.train("no")


def test_zero_grad_requires_grad_and_extra_repr():
    model = nn.Linear(2, 2)
    model(minidl.ones(1, 2)).sum().backward()
    model.zero_grad(set_to_none=False)
    assert np.all(model.weight.grad.array == 0)
    model.zero_grad()
    assert model.weight.grad is None
    assert model.requires_grad_(False) is model and not model.weight.requires_grad
    model.requires_grad_()
    assert model.weight.requires_grad

    class Scaled(nn.Module):
        def extra_repr(self):
            return "factor=2"
    assert repr(Scaled()) == "Scaled(factor=2)"
    assert repr(nn.Sequential(Scaled())) == "Sequential(\n  (0): Scaled(factor=2)\n)"


# ---------------------------------------------------------------- containers

def test_module_list_operations_and_keys():
    layers = nn.ModuleList([nn.Linear(2, 2), nn.ReLU()])
    layers.append(nn.Linear(2, 3))
    layers.extend([nn.Tanh()])
    layers.insert(1, nn.Sigmoid())
    names = [type(m).__name__ for m in layers]
    assert names == ["Linear", "Sigmoid", "ReLU", "Linear", "Tanh"] and len(layers) == 5
    assert isinstance(layers[-1], nn.Tanh) and isinstance(layers[3], nn.Linear)
    part = layers[1:4]
    assert isinstance(part, nn.ModuleList) and [type(m).__name__ for m in part] == names[1:4]
    assert part[2] is layers[3]
    with pytest.raises(IndexError):
        layers[5]
    del layers[1]
    assert [n for n, _ in layers.named_children()] == ["0", "1", "2", "3"]
    assert isinstance(layers.pop(), nn.Tanh) and len(layers) == 3
    layers[1] = nn.Identity()
    layers += [nn.ReLU()]
    assert len(layers + nn.ModuleList([nn.ReLU()])) == 5
    with pytest.raises(TypeError, match="iterable"):
        layers.extend(nn.ReLU())

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)])
    theirs = torch.nn.Module()
    theirs.layers = torch.nn.ModuleList([torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1)])
    assert list(Net().state_dict()) == list(theirs.state_dict())
    load_from(theirs, Net())


def test_module_dict_and_sequential_ordered_dict():
    heads = nn.ModuleDict({"a": nn.Linear(2, 2)})
    heads["b"] = nn.Linear(2, 1)
    heads.update([("c", nn.ReLU())])
    assert list(heads) == ["a", "b", "c"] and "b" in heads and len(heads) == 3
    assert [k for k, _ in heads.items()] == list(heads.keys())
    assert isinstance(heads.pop("c"), nn.ReLU) and len(heads) == 2
    theirs = torch.nn.ModuleDict({"a": torch.nn.Linear(2, 2), "b": torch.nn.Linear(2, 1)})
    assert list(heads.state_dict()) == list(theirs.state_dict())

    ours = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 3)), ("act", nn.ReLU()), ("out", nn.Linear(3, 1))]))
    tseq = torch.nn.Sequential(OrderedDict([("fc", torch.nn.Linear(2, 3)), ("act", torch.nn.ReLU()),
                                            ("out", torch.nn.Linear(3, 1))]))
    assert list(ours.state_dict()) == list(tseq.state_dict())
    assert list(ours[1:].state_dict()) == list(tseq[1:].state_dict())
    load_from(tseq, ours)
    x = np.random.default_rng(0).standard_normal((4, 2))
    assert_close(ours(minidl.tensor(x)), tseq(torch.tensor(x)), rtol=1e-12, atol=1e-12)
    del ours[0]
    del tseq[0]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in tseq.named_children()]


def test_parameter_list_and_dict_keys_and_gradients():
    params = nn.ParameterList([nn.Parameter(np.ones(2)), minidl.ones(3)])
    params.append(nn.Parameter(np.ones((2, 2))))
    assert len(params) == 3 and all(isinstance(p, nn.Parameter) for p in params)
    assert isinstance(params[1:], nn.ParameterList) and params[-1].shape == (2, 2)
    table = nn.ParameterDict({"w": nn.Parameter(np.ones(2))})
    table["b"] = minidl.zeros(1)
    assert list(table) == ["w", "b"] and "w" in table and isinstance(table["b"], nn.Parameter)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.params, self.table = params, table

    theirs = torch.nn.Module()
    theirs.params = torch.nn.ParameterList([torch.nn.Parameter(torch.ones(2)), torch.ones(3),
                                            torch.nn.Parameter(torch.ones(2, 2))])
    theirs.table = torch.nn.ParameterDict({"w": torch.nn.Parameter(torch.ones(2))})
    theirs.table["b"] = torch.zeros(1)
    plain = {"w": minidl.ones(1), "b": minidl.ones(1)}                     # a dict is sorted, as torch
    assert list(nn.ParameterDict(plain)) == ["b", "w"] == list(torch.nn.ParameterDict(
        {"w": torch.ones(1), "b": torch.ones(1)}))
    assert list(nn.ParameterDict(OrderedDict(plain))) == ["w", "b"]
    net = Net()
    assert list(net.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in net.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    (params[0] * 2).sum().backward()
    assert np.all(params[0].grad.array == 2)
    assert isinstance(table.pop("b"), nn.Parameter) and list(table) == ["w"]
    assert list(net.state_dict()) == ["params.0", "params.1", "params.2", "table.w"]


# ---------------------------------------------------------------- conv padding

SAME_CASES = [  # (dims, kernel, dilation)
    (2, (3, 3), 1), (2, (2, 4), 1), (2, (3, 2), (2, 1)), (1, 4, 1), (1, 3, 2), (1, 2, 3),
]


@pytest.mark.parametrize("dims,kernel,dilation", SAME_CASES)
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_conv_string_padding_matches_torch(dims, kernel, dilation, padding):
    ours_cls, torch_cls = (nn.Conv1d, torch.nn.Conv1d) if dims == 1 else (nn.Conv2d, torch.nn.Conv2d)
    theirs = torch_cls(2, 3, kernel, padding=padding, dilation=dilation)
    ours = load_from(theirs, ours_cls(2, 3, kernel, padding=padding, dilation=dilation, dtype=np.float64))
    shape = (2, 2, 7) if dims == 1 else (2, 2, 6, 7)
    x, tx = both(np.random.default_rng(1).standard_normal(shape))
    y, ty = ours(x), theirs(tx)
    assert_close(y, ty, rtol=1e-10, atol=1e-12)
    if padding == "same":
        assert y.shape[2:] == shape[2:]
    upstream = np.random.default_rng(2).standard_normal(y.shape)
    (y * minidl.tensor(upstream)).sum().backward()
    (ty * torch.tensor(upstream)).sum().backward()
    assert_close(x.grad, tx.grad, rtol=1e-10, atol=1e-12)
    assert_close(ours.weight.grad, theirs.weight.grad, rtol=1e-10, atol=1e-12)
    assert_close(ours.bias.grad, theirs.bias.grad, rtol=1e-10, atol=1e-12)
    assert repr(ours) == repr(theirs)


def test_conv_same_padding_gradcheck_and_functional():
    rng = np.random.default_rng(3)
    x = minidl.tensor(rng.standard_normal((1, 2, 4, 5)), requires_grad=True)
    w = minidl.tensor(rng.standard_normal((2, 2, 2, 3)), requires_grad=True)
    b = minidl.tensor(rng.standard_normal(2), requires_grad=True)
    assert gradcheck(lambda *a: F.conv2d(*a, padding="same"), [x, w, b])
    x1 = minidl.tensor(rng.standard_normal((1, 2, 5)), requires_grad=True)
    w1 = minidl.tensor(rng.standard_normal((3, 2, 4)), requires_grad=True)
    assert gradcheck(lambda a, k: F.conv1d(a, k, padding="same"), [x1, w1])
    assert_close(F.conv1d(x1, w1, padding="same"),
                 torch.nn.functional.conv1d(torch.tensor(x1.array), torch.tensor(w1.array), padding="same"),
                 rtol=1e-10, atol=1e-12)


def test_conv_padding_errors():
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(1, 1, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="'full'"):
        nn.Conv1d(1, 1, 3, padding="full")
    with pytest.raises(ValueError, match="strided"):
        F.conv2d(minidl.ones(1, 1, 4, 4), minidl.ones(1, 1, 3, 3), stride=2, padding="same")
    with pytest.raises(NotImplementedError, match="reflect"):
        nn.Conv2d(1, 1, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(1, 1, 3, padding_mode="zero")
    assert nn.Conv2d(1, 1, 3, padding=1, padding_mode="zeros").padding_mode == "zeros"


# ---------------------------------------------------------------- recurrent

RECURRENT = {"rnn": (nn.RNN, torch.nn.RNN), "lstm": (nn.LSTM, torch.nn.LSTM), "gru": (nn.GRU, torch.nn.GRU)}


def _flat(states):
    return list(states) if isinstance(states, tuple) else [states]


@pytest.mark.parametrize("kind", sorted(RECURRENT))
@pytest.mark.parametrize("batch_first,with_state", [(False, True), (True, False)])
def test_bidirectional_matches_torch(kind, batch_first, with_state):
    ours_cls, torch_cls = RECURRENT[kind]
    options = dict(num_layers=2, bidirectional=True, batch_first=batch_first)
    theirs = torch_cls(3, 4, **options)
    ours = ours_cls(3, 4, dtype=np.float64, **options)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    load_from(theirs, ours)
    rng = np.random.default_rng(4)
    x, tx = both(rng.standard_normal((2, 5, 3) if batch_first else (5, 2, 3)))
    hx, thx = None, None
    if with_state:
        pairs = [both(rng.standard_normal((4, 2, 4))) for _ in range(2 if kind == "lstm" else 1)]
        hx = tuple(p[0] for p in pairs) if kind == "lstm" else pairs[0][0]
        thx = tuple(p[1] for p in pairs) if kind == "lstm" else pairs[0][1]
    ours.flatten_parameters()
    theirs.flatten_parameters()
    out, states = ours(x, hx)
    tout, tstates = theirs(tx, thx)
    assert_close(out, tout, rtol=1e-10, atol=1e-12, what="output")
    for s, ts in zip(_flat(states), _flat(tstates)):
        assert s.shape == (4, 2, 4)
        assert_close(s, ts, rtol=1e-10, atol=1e-12, what="h_n")
    upstream = [rng.standard_normal(t.shape) for t in [out] + _flat(states)]
    loss = sum(((t * minidl.tensor(u)).sum() for t, u in zip([out] + _flat(states), upstream)),
               minidl.tensor(0.0, dtype=np.float64))
    tloss = sum((t * torch.tensor(u)).sum() for t, u in zip([tout] + _flat(tstates), upstream))
    loss.backward()
    tloss.backward()
    assert_close(x.grad, tx.grad, rtol=1e-9, atol=1e-11, what="dx")
    if with_state:
        for s, ts in zip(_flat(hx), _flat(thx)):
            assert_close(s.grad, ts.grad, rtol=1e-9, atol=1e-11, what="dh0")
    tparams = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        assert_close(param.grad, tparams[name].grad, rtol=1e-9, atol=1e-11, what=name)


@pytest.mark.parametrize("kind", sorted(RECURRENT))
def test_bidirectional_gradcheck(kind):
    layer = RECURRENT[kind][0](2, 2, num_layers=2, bidirectional=True, dtype=np.float64)
    x = minidl.tensor(np.random.default_rng(5).standard_normal((3, 1, 2)), requires_grad=True)

    def fn(x, *params):
        out, states = layer(x)
        return minidl.cat([out.reshape(-1)] + [s.reshape(-1) for s in _flat(states)])
    assert gradcheck(fn, [x] + list(layer.parameters()))


@pytest.mark.parametrize("kind", sorted(RECURRENT))
def test_recurrent_dropout(kind):
    ours_cls, torch_cls = RECURRENT[kind]
    theirs = torch_cls(3, 4, num_layers=2, dropout=1.0, bidirectional=True)
    ours = load_from(theirs, ours_cls(3, 4, num_layers=2, dropout=1.0, bidirectional=True, dtype=np.float64))
    x = np.random.default_rng(6).standard_normal((4, 2, 3))
    for training in (True, False):   # p = 1 drops every entry: deterministic in both libraries
        ours.train(training)
        theirs.train(training)
        out, _ = ours(minidl.tensor(x))
        assert_close(out, theirs(torch.tensor(x))[0], rtol=1e-10, atol=1e-12, what=f"training={training}")
    half = ours_cls(3, 4, num_layers=3, dropout=0.5, dtype=np.float64)
    minidl.manual_seed(7)
    first = half(minidl.tensor(x))[0].data
    minidl.manual_seed(7)
    assert np.array_equal(first, half(minidl.tensor(x))[0].data)
    assert not np.array_equal(first, half.eval()(minidl.tensor(x))[0].data)
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        ours_cls(3, 4, dropout=0.2)
    with pytest.raises(ValueError, match="range"):
        ours_cls(3, 4, num_layers=2, dropout=1.5)
    with pytest.raises(ValueError, match=r"\(4, 2, 4\)"):
        ours(minidl.tensor(x), (minidl.zeros(2, 2, 4, dtype=np.float64),) * 2 if kind == "lstm"
             else minidl.zeros(2, 2, 4, dtype=np.float64))
    assert "bidirectional=True" in repr(ours) and "dropout=1.0" in repr(ours)


def test_lstm_proj_size_refused():
    with pytest.raises(NotImplementedError, match="proj_size"):
        nn.LSTM(3, 4, proj_size=2)


# ---------------------------------------------------------------- dropout by channel

@pytest.mark.parametrize("layer,shape", [(nn.Dropout2d, (3, 4, 2, 5)), (nn.Dropout2d, (3, 4, 6)),
                                         (nn.Dropout1d, (3, 4, 6)), (nn.Dropout1d, (4, 6))])
def test_channel_dropout(layer, shape):
    drop = layer(p=0.4)
    x = minidl.tensor(np.random.default_rng(8).uniform(1, 2, shape), requires_grad=True)
    y = drop(x)
    ratio = (y.array / x.array).reshape(shape[:2] + (-1,) if len(shape) > 2 else shape[:1] + (-1,))
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[..., :1], ratio.shape))  # one draw per channel
    assert np.all(np.isclose(ratio, 0) | np.isclose(ratio, 1 / 0.6))
    assert 0 < np.count_nonzero(ratio[..., 0]) < ratio[..., 0].size
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, y.data / x.data)    # dy/dx = m / (1 - p)
    drop.eval()
    assert drop(x) is x
    assert repr(drop) == repr(getattr(torch.nn, layer.__name__)(p=0.4)).replace(", inplace=False", "")


def test_channel_dropout_statistics_and_errors():
    x = minidl.ones(200, 50, 1, 1)
    kept = np.mean(F.dropout2d(x, 0.3).array > 0)
    assert abs(kept - 0.7) < 0.03
    with pytest.raises(ValueError, match=r"dropout2d.*\(5,\)"):
        F.dropout2d(minidl.ones(5))
    with pytest.warns(UserWarning, match="2-D input to dropout2d"):   # PyTorch: the same warning
        flat = F.dropout2d(minidl.ones(400, 50), 0.3)                 # and one draw per entry
    assert abs(np.mean(flat.array > 0) - 0.7) < 0.03 and 0 < np.mean(flat.array[0] > 0) < 1
    with pytest.raises(ValueError, match=r"dropout1d.*\(1, 2, 3, 4\)"):
        F.dropout1d(minidl.ones(1, 2, 3, 4))
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout2d(1.5)
    assert F.dropout2d(x, 0.5, training=False) is x


# ---------------------------------------------------------------- shape layers

def test_identity_flatten_unflatten_match_torch():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    assert nn.Identity(54, unused=0.1)(minidl.tensor(x)).shape == x.shape
    for start, end in [(1, -1), (0, 1), (1, 2), (-2, -1)]:
        assert_close(nn.Flatten(start, end)(minidl.tensor(x)),
                     torch.nn.Flatten(start, end)(torch.tensor(x)), what=f"flatten {start} {end}")
    for dim, size in [(1, (3, 1)), (-1, (5, 1)), (2, (2, -1))]:
        ours, theirs = nn.Unflatten(dim, size), torch.nn.Unflatten(dim, size)
        assert_close(ours(minidl.tensor(x)), theirs(torch.tensor(x)), what=f"unflatten {dim} {size}")
        assert repr(ours) == repr(theirs)
    t = minidl.tensor(x.reshape(2, 60), requires_grad=True)
    nn.Unflatten(1, (3, 4, 5))(t).sum().backward()
    assert t.grad.shape == (2, 60)
    with pytest.raises(ValueError, match=r"Unflatten.*\(4, 4\)"):
        nn.Unflatten(1, (4, 4))(minidl.tensor(x))


def test_new_paths_on_each_device(device):
    """Bidirectional GRU with dropout, conv padding="same" and dropout2d give the cpu results
    (and gradients) on ``device`` (the CUDA simulator where no GPU is present; tiny shapes)."""
    rng = np.random.default_rng(9)
    gru = nn.GRU(2, 3, num_layers=2, dropout=0.5, bidirectional=True, dtype=np.float64).eval()
    conv = nn.Conv2d(2, 2, 2, padding="same", dtype=np.float64)
    x_seq, x_img = rng.standard_normal((3, 1, 2)), rng.standard_normal((1, 2, 3, 3))
    results = {}
    for where in ("cpu", device):
        gru.to(where)
        conv.to(where)
        a = minidl.tensor(x_seq, requires_grad=True, device=where)
        b = minidl.tensor(x_img, requires_grad=True, device=where)
        out, h_n = gru(a)
        y = conv(b)
        (out.sum() + h_n.sum() + y.sum()).backward()
        results[where] = [t.detach().cpu().numpy() for t in (out, h_n, y, a.grad, b.grad)]
        assert F.dropout2d(b, 0.5).shape == b.shape
    for ours, expected in zip(results[device], results["cpu"]):
        np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-12)
