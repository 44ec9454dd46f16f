"""Batch normalisation against PyTorch (train, eval, running statistics, state_dict), gradchecks
of the closed-form backward, and errors."""
import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl import nn
from minidl.utils import gradcheck
from conftest import assert_close


@pytest.mark.parametrize("layer_name, x_shape, options", [
    ("BatchNorm2d", (4, 3, 5, 6), {}),                   # a task per channel
    ("BatchNorm2d", (2, 3, 2, 3), {}),                   # 6 positions: by rows (DENSE_BELOW)
    ("BatchNorm1d", (8, 5), {}),                         # by rows
    ("BatchNorm1d", (1024, 300), {}),                    # by rows, in several shares
    ("BatchNorm1d", (4, 3, 7), {"momentum": None}),
    ("BatchNorm2d", (3, 2, 4, 4), {"affine": False, "momentum": 0.3, "eps": 1e-3}),
    ("BatchNorm2d", (3, 2, 4, 4), {"track_running_stats": False}),
])
def test_batch_norm_matches_torch_in_train_and_eval(rng, layer_name, x_shape, options):
    torch = pytest.importorskip("torch")
    channels = x_shape[1]
    ours, theirs = getattr(nn, layer_name)(channels, **options), getattr(torch.nn, layer_name)(channels, **options)
    if ours.affine:  # non-trivial affine parameters, the same in both
        weight, bias = (rng.standard_normal(channels).astype(np.float32) for _ in range(2))
        ours.weight.array[...], ours.bias.array[...] = weight, bias
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(weight))
            theirs.bias.copy_(torch.tensor(bias))
    for mode in ("train", "train", "train", "eval"):
        ours.train(mode == "train")
        theirs.train(mode == "train")
        x = (3 * rng.standard_normal(x_shape) + 2).astype(np.float32)
        upstream = rng.standard_normal(x_shape).astype(np.float32)
        mx, tx = minidl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ours.zero_grad()
        theirs.zero_grad()
        out, expected = ours(mx), theirs(tx)
        out.backward(upstream)
        expected.backward(torch.tensor(upstream))
        assert_close(out, expected, what=f"{mode} y")
        assert_close(mx.grad, tx.grad, what=f"{mode} dx", atol=1e-4)
        if ours.affine:
            assert_close(ours.weight.grad, theirs.weight.grad, what=f"{mode} dweight", atol=1e-4)
            assert_close(ours.bias.grad, theirs.bias.grad, what=f"{mode} dbias", atol=1e-4)
        state, their_state = ours.state_dict(), theirs.state_dict()
        assert list(state) == list(their_state)
        for key in state:
            assert_close(state[key], their_state[key], what=key)
            assert state[key].dtype == their_state[key].numpy().dtype, key


def test_state_dict_round_trip_from_torch(rng):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.BatchNorm2d(3)
    theirs(torch.tensor(rng.standard_normal((4, 3, 2, 2)).astype(np.float32)))
    ours = nn.BatchNorm2d(3)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert int(ours.num_batches_tracked.array) == 1
    x = rng.standard_normal((2, 3, 2, 2)).astype(np.float32)
    assert_close(ours.eval()(minidl.tensor(x)), theirs.eval()(torch.tensor(x)))


def test_running_statistics_by_hand(rng):
    layer = nn.BatchNorm1d(2, momentum=0.25)
    x = rng.standard_normal((6, 2)).astype(np.float32)
    layer(minidl.tensor(x))
    np.testing.assert_allclose(layer.running_mean.data, 0.25 * x.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(layer.running_var.data, 0.75 + 0.25 * x.var(axis=0, ddof=1), rtol=1e-6)
    assert layer.running_mean.dtype == np.float32 and int(layer.num_batches_tracked.array) == 1
    layer.eval()(minidl.tensor(x))
    assert int(layer.num_batches_tracked.array) == 1


@pytest.mark.parametrize("x_shape", [(64, 3, 4, 4), (64, 3, 2, 2), (300, 3)])  # by channel, by rows, 1d
def test_statistics_keep_their_digits_under_a_large_mean(rng, x_shape):
    x = (1e4 + rng.standard_normal(x_shape)).astype(np.float32)
    layer = (nn.BatchNorm2d if len(x_shape) == 4 else nn.BatchNorm1d)(3, momentum=1.0)
    y = layer(minidl.tensor(x)).array
    exact, axes = x.astype(np.float64), (0,) + tuple(range(2, len(x_shape)))
    np.testing.assert_allclose(layer.running_mean.data, exact.mean(axis=axes), rtol=1e-7)
    np.testing.assert_allclose(layer.running_var.data, exact.var(axis=axes, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(y.std(axis=axes), 1, rtol=1e-4)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("x_shape", [(5, 3), (3, 2, 2, 3), (2, 2, 6, 6)])
def test_gradcheck(rng, training, x_shape):
    channels = x_shape[1]
    x = minidl.tensor(rng.standard_normal(x_shape), requires_grad=True)
    weight = minidl.tensor(rng.standard_normal(channels), requires_grad=True)
    bias = minidl.tensor(rng.standard_normal(channels), requires_grad=True)
    mean, var = rng.standard_normal(channels), rng.random(channels) + 0.5
    # fresh running stats each call: the finite differences must not see earlier updates
    assert gradcheck(lambda x, w, b: F.batch_norm(x, minidl.tensor(mean), minidl.tensor(var), w, b,
                                                  training=training), [x, weight, bias])


def test_identity_when_gamma_is_std_and_beta_is_mean(rng):
    x = rng.standard_normal((6, 3, 2, 2)) * 2 + 1
    eps = 1e-5
    gamma, beta = np.sqrt(x.var(axis=(0, 2, 3)) + eps), x.mean(axis=(0, 2, 3))
    y = F.batch_norm(minidl.tensor(x), None, None, minidl.tensor(gamma), minidl.tensor(beta), training=True, eps=eps)
    np.testing.assert_allclose(y.data, x, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layer, x_shape, words", [
    (nn.BatchNorm2d(4), (2, 3, 5, 5), ["BatchNorm2d(4", "4 channels", "(2, 3, 5, 5)"]),
    (nn.BatchNorm2d(4), (2, 4, 5), ["BatchNorm2d(4", "4 dimensions", "(2, 4, 5)"]),
    (nn.BatchNorm1d(4), (1, 4), ["BatchNorm1d(4", "more than 1 value per channel", "(1, 4)"]),
])
def test_errors_name_the_layer_and_shapes(layer, x_shape, words):
    with pytest.raises(ValueError) as error:
        layer(minidl.zeros(*x_shape))
    for word in words:
        assert word in str(error.value)
