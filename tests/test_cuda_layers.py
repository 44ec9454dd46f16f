"""Convolution, tiled convolution, locally connected, pooling and batch norm on "cuda" equal
the cpu results (float32, 1e-4), gradients too; a small CNN trains identically on both.
Under the CUDA simulator when no GPU is present (tests/conftest.py): tiny shapes."""
import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl import nn, optim

from test_cuda import _close, _on_both, _rand

pytestmark = pytest.mark.skipif(not minidl.cuda.is_available(), reason="CUDA is not available")


@pytest.mark.parametrize("options", [
    {}, {"stride": 2, "padding": 1}, {"dilation": 2, "padding": 2}, {"groups": 2},
])
def test_conv2d_matches_cpu(options):
    out_channels = 4
    w = _rand(out_channels, 4 // options.get("groups", 1), 3, 3)
    _on_both(lambda x, w, b: F.conv2d(x, w, b, **options), [_rand(2, 4, 5, 5), w, _rand(out_channels)])


def test_conv2d_without_bias_and_conv1d_match_cpu():
    _on_both(lambda x, w: F.conv2d(x, w, padding=(0, 1)), [_rand(1, 2, 4, 3), _rand(3, 2, 2, 3)])
    _on_both(lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1),
             [_rand(2, 3, 7), _rand(2, 3, 3), _rand(2)])


def test_tiled_conv2d_matches_cpu():
    # weight (O, th, tw, C, kh, kw): a 2 x 2 tile over a 4 x 4 output
    _on_both(lambda x, w, b: F.tiled_conv2d(x, w, b, padding=1),
             [_rand(2, 2, 4, 4), _rand(3, 2, 2, 2, 3, 3), _rand(3)])


def test_locally_connected2d_matches_cpu():
    _on_both(lambda x, w, b: F.locally_connected2d(x, w, b, stride=2),
             [_rand(2, 2, 5, 5), _rand(2, 2, 2, 2, 2, 2), _rand(2, 2, 2)])


@pytest.mark.parametrize("name", ["max", "max_overlap_pad", "avg", "avg_exclude_pad", "adaptive",
                                  "max1d"])
def test_pooling_matches_cpu(name):
    x = _rand(2, 2, 5, 5)
    fn = {
        "max": lambda t: F.max_pool2d(t, 2),
        "max_overlap_pad": lambda t: F.max_pool2d(t, 3, stride=2, padding=1),
        "avg": lambda t: F.avg_pool2d(t, 2, stride=1),
        "avg_exclude_pad": lambda t: F.avg_pool2d(t, 3, stride=2, padding=1, count_include_pad=False),
        "adaptive": lambda t: F.adaptive_avg_pool2d(t, (2, 3)),
        "max1d": lambda t: F.max_pool1d(t.reshape(2, 2, 25), 3, stride=2),
    }[name]
    _on_both(fn, [x])


def test_max_pool_ties_send_the_gradient_to_one_winner():
    x = np.ones((1, 1, 2, 4), dtype=np.float32)
    _on_both(lambda t: F.max_pool2d(t, 2), [x])


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 4), (2, 3, 2, 2)])
def test_batch_norm_training_matches_cpu_and_updates_running_stats(shape):
    results = {}
    for device in ("cpu", "cuda"):
        mean = minidl.tensor(np.full(3, 0.5, np.float32), device=device)
        var = minidl.tensor(np.full(3, 2.0, np.float32), device=device)
        x = minidl.tensor(_rand(*shape) * 3 + 1, device=device, requires_grad=True)
        g = minidl.tensor(_rand(3), device=device, requires_grad=True)
        b = minidl.tensor(_rand(3) + 1, device=device, requires_grad=True)
        y = F.batch_norm(x, mean, var, g, b, training=True, momentum=0.2)
        (y * minidl.tensor(_rand(*shape), device=device)).sum().backward()
        results[device] = (y, x.grad, g.grad, b.grad, mean, var)
    for gpu, cpu in zip(results["cuda"], results["cpu"]):
        _close(gpu, cpu)


def test_batch_norm_eval_matches_cpu():
    mean, var = _rand(3), _rand(3, low=0.5)
    _on_both(lambda x, g, b: F.batch_norm(x, minidl.tensor(mean, device=x.device),
                                          minidl.tensor(var, device=x.device), g, b, training=False),
             [_rand(2, 3, 2, 2), _rand(3), _rand(3)])


class _TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)  # a bias before batch norm has gradient 0
        self.bn = nn.BatchNorm2d(2)
        self.fc = nn.Linear(2 * 2 * 2, 3)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        return self.fc(x.flatten(1))


def test_small_cnn_trains_identically_on_cuda():
    x, y = _rand(3, 1, 4, 4), np.array([0, 2, 1])
    runs = {}
    for device in ("cpu", "cuda"):
        minidl.manual_seed(0)
        model = _TinyCNN().to(device)
        opt = optim.Adam(model.parameters(), lr=0.05)
        xt, yt = minidl.tensor(x, device=device), minidl.tensor(y, device=device)
        losses = []
        for _ in range(3):
            loss = F.cross_entropy(model(xt), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        runs[device] = (losses, model.state_dict())
    np.testing.assert_allclose(runs["cuda"][0], runs["cpu"][0], rtol=1e-4)
    assert runs["cuda"][0][-1] < runs["cuda"][0][0]
    for key, value in runs["cpu"][1].items():
        np.testing.assert_allclose(runs["cuda"][1][key], value, rtol=1e-4, atol=1e-5, err_msg=key)


def test_embedding_matches_cpu_and_repeated_indices_accumulate():
    index = np.array([[1, 3, 1], [0, 1, 4]])
    _on_both(lambda w: F.embedding(minidl.tensor(index, device=w.device), w, padding_idx=0), [_rand(5, 3)])
    layer = nn.Embedding(5, 3).to("cuda")
    with pytest.raises(IndexError, match="index 7 is out of range"):
        layer(minidl.tensor(np.array([1, 7]), device="cuda"))


@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_recurrent_layers_match_cpu(kind):
    results = {}
    for device in ("cpu", "cuda"):
        minidl.manual_seed(0)
        if kind.startswith("rnn"):
            layer = nn.RNN(3, 2, num_layers=2, nonlinearity=kind[4:])
        else:
            layer = (nn.LSTM if kind == "lstm" else nn.GRU)(3, 2, num_layers=2, batch_first=True)
        layer.to(device)
        shape = (3, 2, 3) if kind.startswith("rnn") else (2, 3, 3)  # (T, N, I) or batch first
        x = minidl.tensor(_rand(*shape), device=device, requires_grad=True)
        h0 = minidl.tensor(_rand(2, 2, 2) * 0.5, device=device, requires_grad=True)
        state = (h0, h0 * 0.5) if kind == "lstm" else h0
        out, h_n = layer(x, state)
        h_last = h_n[0] if kind == "lstm" else h_n
        loss = (out * minidl.tensor(_rand(*out.shape), device=device)).sum() + (h_last * h_last).sum()
        loss.backward()
        results[device] = [out, h_last, x.grad, h0.grad] + [p.grad for p in layer.parameters()]
        assert out.device == device
    for i, (gpu, cpu) in enumerate(zip(results["cuda"], results["cpu"])):
        _close(gpu, cpu, f"{kind} result {i}")


def test_detection_loss_matches_cpu():
    rng = np.random.default_rng(4)
    target = rng.random((2, 2, 2, 5 * 2 + 3)).astype(np.float32)
    target[..., 4] = (target[..., 4] > 0.5)  # box 0 confidence: object or not
    target[..., 9] = 0.0
    _on_both(lambda x, t: F.detection_loss(x, t, num_classes=3, num_boxes=2),
             [_rand(2, 2, 2, 13), target])
