"""Module system, dense layers, init and dropout."""
import math

import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl import nn
from minidl.utils import gradcheck
from conftest import assert_close


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.scale = nn.Parameter(np.ones(4, dtype=np.float32))
        self.register_buffer("count", minidl.zeros(1))
        self.plain = 5  # not registered

    def forward(self, x):
        return self.fc(x) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(4, 2, bias=False))

    def forward(self, x):
        return self.head(self.block(x))


def test_registration_and_traversal():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["block.scale", "block.fc.weight", "block.fc.bias", "head.1.weight"]
    assert [n for n, _ in net.named_buffers()] == ["block.count"]
    assert len(list(net.children())) == 2
    assert len(list(net.modules())) == 6
    assert "plain" not in dict(net.named_parameters())
    assert list(net.state_dict()) == ["block.scale", "block.count", "block.fc.weight", "block.fc.bias",
                                      "head.1.weight"]


def test_shared_parameter_is_listed_once():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, shared)
    assert len(list(model.parameters())) == 2


def test_reassigning_an_attribute_unregisters_it():
    block = Block()
    block.fc = None
    assert "fc.weight" not in dict(block.named_parameters())


def test_assignment_before_init_is_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match="super"):
        Broken()


def test_train_eval_and_zero_grad():
    net = Net()
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net(minidl.randn(5, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_state_dict_round_trip_copies():
    a, b = Net(), Net()
    b.load_state_dict(a.state_dict())
    x = minidl.randn(4, 3)
    np.testing.assert_array_equal(a(x).data, b(x).data)
    state = a.state_dict()
    state["block.fc.weight"][...] = 0  # a state_dict is a copy
    assert np.any(a.block.fc.weight.array != 0)


def test_load_state_dict_reports_by_name_and_writes_nothing_on_error():
    net = Net()
    before = net.state_dict()
    state = Net().state_dict()
    del state["block.scale"]
    state["extra.weight"] = np.zeros(2)
    state["head.1.weight"] = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(RuntimeError) as error:
        net.load_state_dict(state)
    message = str(error.value)
    assert "missing keys: block.scale" in message
    assert "unexpected keys: extra.weight" in message
    assert "size mismatch for head.1.weight: checkpoint has shape (3, 4), model has (2, 4)" in message
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_load_state_dict_non_strict_returns_missing_and_unexpected():
    net = Net()
    state = Net().state_dict()
    del state["block.count"]
    state["junk"] = np.zeros(1)
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert missing == ["block.count"] and unexpected == ["junk"]
    np.testing.assert_array_equal(net.block.fc.weight.data, state["block.fc.weight"])


def test_repr_like_pytorch():
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10), nn.Dropout(0.2))
    assert repr(model) == ("Sequential(\n"
                           "  (0): Flatten(start_dim=1, end_dim=-1)\n"
                           "  (1): Linear(in_features=784, out_features=10, bias=True)\n"
                           "  (2): Dropout(p=0.2)\n"
                           ")")


def test_module_to_float64_casts_parameters_and_buffers():
    net = Net().to(minidl.float64)
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net.block.count.dtype == np.float64
    assert net(minidl.randn(2, 3, dtype=np.float64)).dtype == np.float64


def test_linear_matches_torch(rng):
    torch = pytest.importorskip("torch")
    layer = nn.Linear(5, 3)
    t_layer = torch.nn.Linear(5, 3)
    with torch.no_grad():
        t_layer.weight.copy_(torch.tensor(layer.weight.array))
        t_layer.bias.copy_(torch.tensor(layer.bias.array))
    data = rng.standard_normal((2, 4, 5)).astype(np.float32)
    x = minidl.tensor(data, requires_grad=True)
    tx = torch.tensor(data, requires_grad=True)
    out, expected = layer(x), t_layer(tx)
    upstream = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(upstream)
    expected.backward(torch.tensor(upstream))
    assert_close(out, expected)
    assert_close(x.grad, tx.grad)
    assert_close(layer.weight.grad, t_layer.weight.grad)
    assert_close(layer.bias.grad, t_layer.bias.grad)


@pytest.mark.parametrize("shape", [(5, 4), (4,), (2, 3, 4), (2, 1, 3, 4)], ids=["2d", "1d", "3d", "4d"])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck(bias, shape, rng):
    layer = nn.Linear(4, 3, bias=bias).double()
    x = minidl.tensor(rng.standard_normal(shape), requires_grad=True)
    params = [x, layer.weight] + ([layer.bias] if bias else [])
    assert gradcheck(lambda x, w, b=None: F.linear(x, w, b), params)


def test_linear_of_a_4d_and_a_permuted_input_matches_torch(rng):
    """The leading axes fold into one GEMM; a non-contiguous input folds through a copy."""
    torch = pytest.importorskip("torch")
    weight = rng.standard_normal((3, 5))
    bias = rng.standard_normal(3)
    data = rng.standard_normal((2, 3, 4, 5))
    for view in (lambda t: t, lambda t: t.permute(2, 0, 1, 3)):
        x = minidl.tensor(data, requires_grad=True)
        w, b = minidl.tensor(weight, requires_grad=True), minidl.tensor(bias, requires_grad=True)
        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (data, weight, bias))
        out, expected = F.linear(view(x), w, b), torch.nn.functional.linear(view(tx), tw, tb)
        upstream = rng.standard_normal(out.shape)
        out.backward(upstream)
        expected.backward(torch.tensor(upstream))
        for mine, theirs in ((out, expected), (x.grad, tx.grad), (w.grad, tw.grad), (b.grad, tb.grad)):
            np.testing.assert_allclose(np.asarray(mine.data), theirs.detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("in_features, out_features", [(40, 64), (300, 32), (64, 48)])
def test_float32_linear_on_the_tiles_matches_torch(rng, monkeypatch, in_features, out_features):
    """Y = X W^T, dX = dY W and dW = dY^T X on register tiles (TILED_PRODUCT_FROM and COPIED_B_ROWS 0) for a
    (3, 8, in) input of 24 rows; 48 outputs or 40 inputs leave those products to numpy; a
    permuted (non-contiguous) input too."""
    torch = pytest.importorskip("torch")
    from minidl.kernels.cpu import matmul
    monkeypatch.setattr(matmul, "TILED_PRODUCT_FROM", 0)
    monkeypatch.setattr(matmul, "COPIED_B_ROWS", 0)
    weight = rng.standard_normal((out_features, in_features)).astype(np.float32)
    bias = rng.standard_normal(out_features).astype(np.float32)
    data = rng.standard_normal((8, 3, in_features)).astype(np.float32)
    x = minidl.tensor(data, requires_grad=True)
    w, b = minidl.tensor(weight, requires_grad=True), minidl.tensor(bias, requires_grad=True)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (data, weight, bias))
    out = F.linear(x.permute(1, 0, 2), w, b)
    expected = torch.nn.functional.linear(tx.permute(1, 0, 2), tw, tb)
    upstream = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(upstream)
    expected.backward(torch.tensor(upstream))
    assert out.dtype == np.float32
    for mine, theirs, what in ((out, expected, "y"), (x.grad, tx.grad, "dx"), (w.grad, tw.grad, "dw"),
                               (b.grad, tb.grad, "db")):
        assert_close(mine, theirs, rtol=1e-4, atol=1e-4 * np.sqrt(in_features), what=what)


def test_linear_error_names_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"Linear\(in_features=784, out_features=10, bias=True\): "
                                         r"linear: expected input of shape \(\*, 784\), got \(8, 28, 28\)"):
        nn.Linear(784, 10)(minidl.randn(8, 28, 28))


def test_linear_init_bounds_follow_pytorch():
    layer = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    for p in (layer.weight, layer.bias):
        assert np.abs(p.data).max() <= bound
        assert np.abs(p.data).max() > 0.9 * bound  # uniform over the whole range, not narrower


@pytest.mark.parametrize("method,expected_std", [
    (lambda t: nn.init.kaiming_normal_(t, nonlinearity="relu"), math.sqrt(2 / 500)),
    (lambda t: nn.init.kaiming_uniform_(t, nonlinearity="relu"), math.sqrt(2 / 500)),
    (lambda t: nn.init.xavier_normal_(t), math.sqrt(2 / (500 + 400))),
    (lambda t: nn.init.xavier_uniform_(t), math.sqrt(2 / (500 + 400))),
])
def test_init_standard_deviations(method, expected_std):
    weight = nn.Parameter(np.empty((400, 500), dtype=np.float32))
    method(weight)
    assert weight.array.std() == pytest.approx(expected_std, rel=0.03)
    assert abs(weight.array.mean()) < 0.05 * expected_std * 10


def test_init_zeros_and_gain():
    w = nn.Parameter(np.ones((2, 2), dtype=np.float32))
    nn.init.zeros_(w)
    assert not w.array.any()
    assert nn.init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    with pytest.raises(ValueError, match="2 or more dimensions"):
        nn.init.xavier_uniform_(nn.Parameter(np.zeros(3)))


def test_dropout_train_and_eval(rng):
    layer = nn.Dropout(0.25)
    x = minidl.ones(200, 100, requires_grad=True)
    y = layer(x)
    kept = y.array != 0
    assert kept.mean() == pytest.approx(0.75, abs=0.02)
    np.testing.assert_allclose(y.array[kept], 1 / 0.75, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data != 0, kept)
    layer.eval()
    assert layer(x) is x
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


@pytest.mark.parametrize("layer,torch_name", [
    (nn.ReLU(), "ReLU"), (nn.Sigmoid(), "Sigmoid"), (nn.Tanh(), "Tanh"),
    (nn.LeakyReLU(0.2), "LeakyReLU"), (nn.Softmax(1), "Softmax"), (nn.LogSoftmax(1), "LogSoftmax"),
])
def test_activation_layers_match_torch(layer, torch_name, rng):
    torch = pytest.importorskip("torch")
    args = {"LeakyReLU": (0.2,), "Softmax": (1,), "LogSoftmax": (1,)}.get(torch_name, ())
    theirs = getattr(torch.nn, torch_name)(*args)
    data = rng.standard_normal((3, 4)).astype(np.float32) * 5
    x, tx = minidl.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    out, expected = layer(x), theirs(tx)
    upstream = rng.standard_normal((3, 4)).astype(np.float32)
    out.backward(upstream)
    expected.backward(torch.tensor(upstream))
    assert_close(out, expected)
    assert_close(x.grad, tx.grad)


def test_sequential_indexing_and_identity():
    model = nn.Sequential(nn.Linear(2, 3), nn.Identity(), nn.ReLU())
    assert isinstance(model[0], nn.Linear) and len(model) == 3
    assert len(model[1:]) == 2
    x = minidl.randn(4, 2)
    np.testing.assert_array_equal(model(x).data, np.maximum(model[0](x).data, 0))


@pytest.mark.parametrize("pool", [nn.MaxPool2d(2), nn.MaxPool2d(3, stride=2, padding=1)])
def test_sequential_pools_before_relu_with_the_same_bits(pool):
    """Sequential runs ReLU -> MaxPool2d as pool -> ReLU: outputs and gradients must be the
    same bits as the modules one by one, also for windows of negatives, zeros and ties."""
    rng = np.random.default_rng(0)
    data = rng.integers(-3, 4, size=(2, 3, 7, 7)).astype(np.float32)  # ties, zeros, negatives
    data[0, 0, :2, :2] = -1.0  # a window with no positive value
    upstream = rng.standard_normal((2, 3) + (3, 3) if pool.kernel_size == 2 else (2, 3, 4, 4)).astype(np.float32)
    relu = nn.ReLU()
    results = []
    for run in (lambda t: nn.Sequential(relu, pool)(t), lambda t: pool(relu(t))):
        x = minidl.tensor(data, requires_grad=True)
        y = run(x)
        y.backward(minidl.tensor(upstream.reshape(y.shape)))
        results.append((y.detach().numpy(), x.grad.numpy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_sequential_gives_the_relu_the_pooled_tensor_unless_hooked(monkeypatch):
    sizes = []
    relu_forward = nn.ReLU.forward
    monkeypatch.setattr(nn.ReLU, "forward", lambda self, t: sizes.append(t.shape) or relu_forward(self, t))
    relu = nn.ReLU()
    nn.Sequential(relu, nn.MaxPool2d(2))(minidl.randn(1, 2, 4, 4))
    assert sizes == [(1, 2, 2, 2)]
    relu.register_forward_hook(lambda module, inputs, output: None)
    nn.Sequential(relu, nn.MaxPool2d(2))(minidl.randn(1, 2, 4, 4))
    assert sizes[-1] == (1, 2, 4, 4)  # hooked: as written
    pooled = nn.MaxPool2d(2)
    pooled.register_forward_pre_hook(lambda module, inputs: None)
    nn.Sequential(nn.ReLU(), pooled)(minidl.randn(1, 2, 4, 4))
    assert sizes[-1] == (1, 2, 4, 4)


def test_get_submodule_follows_dotted_paths():
    inner = nn.Linear(2, 2)
    model = nn.Sequential(nn.ReLU(), nn.Sequential(inner))
    assert model.get_submodule("1.0") is inner and model.get_submodule("") is model
    with pytest.raises(AttributeError, match="no submodule '2'"):
        model.get_submodule("1.2")
