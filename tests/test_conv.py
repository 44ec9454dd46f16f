"""Convolutions: conv1d/conv2d against PyTorch, tiled and locally connected against a NumPy
reference from the formula, the identities between them, gradchecks, layers and errors."""
import math
import os

import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl import nn
from minidl.utils import gradcheck
from conftest import assert_close


def leaf(array):
    return minidl.tensor(array, requires_grad=True)


def run(fn, arrays, upstream):
    """fn over float leaves made from arrays; returns the output and each input's gradient."""
    leaves = [None if a is None else leaf(a) for a in arrays]
    out = fn(*leaves)
    out.backward(upstream)
    return out, [None if t is None else t.grad.data for t in leaves]


# ---------------------------------------------------------------- against PyTorch

CONV2D_CASES = [
    # N, C, H, W, O, kernel, stride, padding, dilation, groups, bias
    (2, 3, 8, 8, 4, (3, 3), 1, 0, 1, 1, True),
    (2, 3, 9, 7, 5, (3, 2), (2, 1), (1, 2), 1, 1, True),
    (1, 2, 11, 10, 3, (5, 3), 3, 2, (2, 1), 1, False),
    (3, 4, 7, 9, 6, (3, 3), (1, 2), 1, 2, 2, True),
    (2, 6, 6, 5, 6, (1, 1), 1, 0, 1, 3, True),
    (2, 4, 5, 5, 4, (2, 2), 2, 1, 1, 4, True),
]


@pytest.mark.parametrize("n, c, h, w, o, kernel, stride, padding, dilation, groups, bias", CONV2D_CASES)
def test_conv2d_matches_torch(rng, n, c, h, w, o, kernel, stride, padding, dilation, groups, bias):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((o, c // groups) + kernel).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32) if bias else None
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(weight, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True) if bias else None
    expected = torch.nn.functional.conv2d(tx, tw, tb, stride, padding, dilation, groups)
    upstream = rng.standard_normal(tuple(expected.shape)).astype(np.float32)
    expected.backward(torch.tensor(upstream))
    out, (dx, dw, db) = run(lambda *a: F.conv2d(*a, stride, padding, dilation, groups), [x, weight, b], upstream)
    assert out.dtype == np.float32
    assert_close(out, expected, what="y")
    assert_close(dx, tx.grad, what="dx")
    assert_close(dw, tw.grad, what="dweight")
    if bias:
        assert_close(db, tb.grad, what="dbias")


@pytest.mark.parametrize("stride, padding, dilation, groups", [(1, 0, 1, 1), (2, 1, 1, 2), (3, 2, 2, 1)])
def test_conv1d_matches_torch(rng, stride, padding, dilation, groups):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 4, 13)).astype(np.float32)
    weight = rng.standard_normal((6, 4 // groups, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, weight, b))
    expected = torch.nn.functional.conv1d(tx, tw, tb, stride, padding, dilation, groups)
    upstream = rng.standard_normal(tuple(expected.shape)).astype(np.float32)
    expected.backward(torch.tensor(upstream))
    out, (dx, dw, db) = run(lambda *a: F.conv1d(*a, stride, padding, dilation, groups), [x, weight, b], upstream)
    assert_close(out, expected, what="y")
    assert_close(dx, tx.grad, what="dx")
    assert_close(dw, tw.grad, what="dweight")
    assert_close(db, tb.grad, what="dbias")


def test_conv_layers_match_torch_defaults_and_init():
    torch = pytest.importorskip("torch")
    for ours, theirs, x_shape in [(nn.Conv2d(3, 8, (3, 5), stride=2, padding=(1, 2)),
                                   torch.nn.Conv2d(3, 8, (3, 5), stride=2, padding=(1, 2)), (2, 3, 9, 9)),
                                  (nn.Conv1d(4, 6, 3, padding=1, groups=2),
                                   torch.nn.Conv1d(4, 6, 3, padding=1, groups=2), (2, 4, 10))]:
        assert ours.weight.shape == tuple(theirs.weight.shape)
        for attr in ("stride", "padding", "dilation", "groups", "in_channels", "out_channels", "kernel_size"):
            assert getattr(ours, attr) == getattr(theirs, attr), attr
        fan_in = theirs.weight[0].numel()
        for p in (ours.weight, ours.bias):  # kaiming_uniform(a=sqrt(5)): bound 1/sqrt(fan_in)
            assert np.abs(p.data).max() <= 1 / math.sqrt(fan_in) + 1e-7
            assert np.abs(p.data).max() > 0.8 / math.sqrt(fan_in)
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(ours.weight.array))
            theirs.bias.copy_(torch.tensor(ours.bias.array))
        x = np.random.default_rng(0).standard_normal(x_shape).astype(np.float32)
        assert_close(ours(minidl.tensor(x)), theirs(torch.tensor(x)))


# ---------------------------------------------------------------- output size and identities

@pytest.mark.parametrize("size, kernel, stride, padding, dilation", [
    (28, 5, 1, 2, 1), (28, 5, 1, 0, 1), (10, 3, 3, 1, 2), (7, 7, 1, 0, 1), (9, 2, 2, 0, 3)])
def test_output_size_follows_the_formula(size, kernel, stride, padding, dilation):
    expected = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    assert F.conv_output_size(size, kernel, stride, padding, dilation) == expected
    y = F.conv2d(minidl.zeros(1, 1, size, size + 1), minidl.zeros(1, 1, kernel, kernel),
                 stride=stride, padding=padding, dilation=dilation)
    assert y.shape == (1, 1, expected, F.conv_output_size(size + 1, kernel, stride, padding, dilation))


def test_one_by_one_conv_is_linear_per_pixel(rng):
    x = rng.standard_normal((2, 5, 4, 3))
    weight, bias = rng.standard_normal((7, 5, 1, 1)), rng.standard_normal(7)
    y = F.conv2d(minidl.tensor(x), minidl.tensor(weight), minidl.tensor(bias))
    pixels = minidl.tensor(x.transpose(0, 2, 3, 1))  # (N, H, W, C)
    expected = F.linear(pixels, minidl.tensor(weight[:, :, 0, 0]), minidl.tensor(bias))
    np.testing.assert_allclose(y.data, expected.array.transpose(0, 3, 1, 2), rtol=1e-12)


def tiled_reference(x, weight, bias, stride, padding):
    """Y[n, o, i, j] = b[o] + sum_{c,u,v} K[o, i % th, j % tw, c, u, v] Xp[n, c, i s + u, j s + v]."""
    (sh, sw), (ph, pw) = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n_out, th, tw, _, kh, kw = weight.shape
    oh, ow = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    y = np.zeros((x.shape[0], n_out, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            y[:, :, i, j] = np.einsum("ncuv,ocuv->no", patch, weight[:, i % th, j % tw])
    return y if bias is None else y + bias.reshape(n_out, *([1, 1] if bias.ndim == 1 else [oh, ow]))


@pytest.mark.parametrize("tile, stride, padding", [((2, 2), (1, 1), (0, 0)), ((2, 3), (2, 1), (1, 0)),
                                                   ((3, 1), (1, 2), (1, 1))])
def test_tiled_conv2d_matches_reference(rng, tile, stride, padding):
    x = rng.standard_normal((2, 3, 8, 7))
    weight, bias = rng.standard_normal((4,) + tile + (3, 3, 2)), rng.standard_normal(4)
    y = F.tiled_conv2d(minidl.tensor(x), minidl.tensor(weight), minidl.tensor(bias), stride, padding)
    np.testing.assert_allclose(y.data, tiled_reference(x, weight, bias, stride, padding), rtol=1e-10, atol=1e-12)


def test_locally_connected2d_matches_reference(rng):
    x = rng.standard_normal((2, 3, 6, 5))
    weight, bias = rng.standard_normal((4, 3, 2, 3, 3, 2)), rng.standard_normal((4, 3, 2))
    y = F.locally_connected2d(minidl.tensor(x), minidl.tensor(weight), minidl.tensor(bias), 2, (1, 0))
    np.testing.assert_allclose(y.data, tiled_reference(x, weight, bias, (2, 2), (1, 0)), rtol=1e-10, atol=1e-12)


def test_tile_one_is_conv2d_forward_and_backward(rng):
    x, kernel, bias = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    upstream = rng.standard_normal((2, 4, 5, 7))
    y_tiled, grads_tiled = run(lambda a, k, b: F.tiled_conv2d(a, k, b, stride=(1, 1), padding=(0, 1)),
                               [x, kernel[:, None, None], bias], upstream)
    y_conv, grads_conv = run(lambda a, k, b: F.conv2d(a, k, b, padding=(0, 1)), [x, kernel, bias], upstream)
    np.testing.assert_allclose(y_tiled.data, y_conv.data, rtol=1e-12)
    for g_tiled, g_conv in zip(grads_tiled, grads_conv):
        np.testing.assert_allclose(g_tiled.reshape(g_conv.shape), g_conv, rtol=1e-12)


def test_tile_of_output_size_is_locally_connected_forward_and_backward(rng):
    x, weight = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 4, 3, 2, 2))
    upstream = rng.standard_normal((2, 4, 3, 4))
    y_tiled, grads_tiled = run(lambda a, k: F.tiled_conv2d(a, k, stride=(2, 1)), [x, weight], upstream)
    y_local, grads_local = run(lambda a, k: F.locally_connected2d(a, k, stride=(2, 1)), [x, weight], upstream)
    np.testing.assert_allclose(y_tiled.data, y_local.data, rtol=1e-12)
    for g_tiled, g_local in zip(grads_tiled, grads_local):
        np.testing.assert_allclose(g_tiled, g_local, rtol=1e-12)


def test_locally_connected_with_equal_weights_is_conv2d(rng):
    x, kernel = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    shared = np.broadcast_to(kernel[:, None, None], (4, 6, 6, 3, 3, 3)).copy()
    y_local = F.locally_connected2d(minidl.tensor(x), minidl.tensor(shared), padding=1)
    y_conv = F.conv2d(minidl.tensor(x), minidl.tensor(kernel), padding=1)
    np.testing.assert_allclose(y_local.data, y_conv.data, rtol=1e-12)


# ---------------------------------------------------------------- float64 gradient checks

@pytest.mark.parametrize("op, x_shape, w_shape, b_shape, options", [
    (F.conv2d, (2, 4, 6, 5), (4, 2, 3, 2), (4,), dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=2)),
    (F.conv1d, (2, 3, 7), (2, 3, 3), (2,), dict(stride=2, padding=1, dilation=2)),
    (F.tiled_conv2d, (2, 2, 6, 5), (3, 2, 3, 2, 2, 2), (3,), dict(stride=1, padding=(1, 0))),
    (F.locally_connected2d, (2, 2, 5, 4), (3, 2, 2, 2, 2, 2), (3, 2, 2), dict(stride=2)),
])
def test_gradcheck(rng, op, x_shape, w_shape, b_shape, options):
    inputs = [leaf(rng.standard_normal(s)) for s in (x_shape, w_shape, b_shape)]
    assert gradcheck(lambda x, w, b: op(x, w, b, **options), inputs)


def test_keeps_float64_and_skips_unneeded_input_grad(rng):
    x = minidl.tensor(rng.standard_normal((1, 2, 5, 5)))  # a constant input: no dx
    weight = leaf(rng.standard_normal((3, 2, 3, 3)))
    y = F.conv2d(x, weight)
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad is None and weight.grad.dtype == np.float64


# ---------------------------------------------------------------- layers and errors

def test_tiled_and_local_layers_shapes_and_init():
    tiled = nn.TiledConv2d(3, 8, 3, tile_size=(2, 2), padding=1)
    local = nn.LocallyConnected2d(3, 8, input_size=(6, 5), kernel_size=3, stride=1)
    assert tiled.weight.shape == (8, 2, 2, 3, 3, 3) and tiled.bias.shape == (8,)
    assert local.weight.shape == (8, 4, 3, 3, 3, 3) and local.bias.shape == (8, 4, 3)
    for layer in (tiled, local):
        assert np.abs(layer.weight.data).max() <= 1 / math.sqrt(27) + 1e-7
    x = minidl.randn(2, 3, 6, 5)
    assert tiled(x).shape == (2, 8, 6, 5) and local(x).shape == (2, 8, 4, 3)
    assert nn.TiledConv2d(3, 8, 3, 2, bias=False).bias is None


@pytest.mark.parametrize("layer, x_shape, words", [
    (nn.Conv2d(3, 4, 3), (2, 2, 8, 8), ["Conv2d(3, 4", "(2, 2, 8, 8)", "expects 3"]),
    (nn.Conv2d(1, 4, 5, padding=1), (1, 1, 2, 2), ["Conv2d(1, 4", "kernel (5, 5)", "padded input (4, 4)"]),
    (nn.Conv1d(2, 4, 3), (1, 3, 9), ["Conv1d(2, 4", "(1, 3, 9)", "expects 2"]),
    (nn.TiledConv2d(2, 4, 3, tile_size=(5, 2)), (1, 2, 6, 6), ["TiledConv2d(2, 4", "tile (5, 2)", "output (4, 4)"]),
    (nn.TiledConv2d(2, 4, 3, tile_size=2), (1, 3, 6, 6), ["TiledConv2d", "(1, 3, 6, 6)", "expects 2"]),
    (nn.LocallyConnected2d(2, 4, 6, 3), (1, 2, 7, 6), ["LocallyConnected2d", "(N, 2, 6, 6)", "(1, 2, 7, 6)"]),
])
def test_errors_name_the_layer_and_shapes(layer, x_shape, words):
    with pytest.raises(ValueError) as error:
        layer(minidl.zeros(*x_shape))
    for word in words:
        assert word in str(error.value)


def test_backward_uses_its_own_input_after_other_convolutions(rng):
    """The backward pass may find its unfolded input in the workspace; never another conv's."""
    a, b = (leaf(rng.standard_normal((2, 2, 5, 5))) for _ in range(2))
    weight = leaf(rng.standard_normal((3, 2, 3, 3)))
    assert gradcheck(lambda a, b, w: F.conv2d(a, w) * F.conv2d(b, w, padding=1)[:, :, 1:-1, 1:-1]
                     + F.conv2d(a, w), [a, b, weight])


@pytest.mark.parametrize("layer, x_shape", [
    (nn.Conv1d(3, 4, 3, stride=2, padding=1), (2, 3, 9)),
    (nn.Conv2d(3, 4, (3, 2), dilation=2), (2, 3, 9, 8)),
    (nn.TiledConv2d(3, 4, 3, tile_size=2), (2, 3, 6, 7)),
    (nn.LocallyConnected2d(3, 4, (6, 7), 2, stride=2), (2, 3, 6, 7)),
])
def test_meta_device_gives_the_real_output_shape(layer, x_shape):
    expected = layer(minidl.zeros(*x_shape)).shape
    layer.to("meta")
    assert layer(minidl.zeros(*x_shape, device="meta")).shape == expected


# ---------------------------------------------------------------- the direct path (few channels, stride 1)

def _direct_cases(count, seed=0):
    """(n, c, h, w, o, kernel, padding, dilation): kernels of 1-6 columns (3 and 5 have loops of
    their own), asymmetric padding and dilation."""
    rng = np.random.default_rng(seed)
    cases = [(3, 1, 28, 28, 6, (5, 5), (2, 2), (1, 1)), (2, 3, 9, 7, 4, (3, 3), (1, 1), (1, 1)),
             (1, 2, 5, 5, 3, (1, 1), (0, 0), (1, 1)), (2, 1, 6, 9, 2, (2, 4), (1, 0), (2, 1))]
    while len(cases) < count:
        kernel = tuple(int(k) for k in rng.integers(1, 7, 2))
        dilation = tuple(int(d) for d in rng.integers(1, 3, 2))
        padding = tuple(int(p) for p in rng.integers(0, 3, 2))
        h, w = (int(d * (k - 1) + 1 + rng.integers(0, 6)) for k, d in zip(kernel, dilation))
        channels = int(rng.integers(1, 1 + min(3, 75 // (kernel[0] * kernel[1]))))  # within 75 taps
        cases.append((int(rng.integers(1, 4)), channels, h, w, int(rng.integers(1, 9)), kernel, padding, dilation))
    return cases


@pytest.fixture
def force_algorithm(monkeypatch):
    """force(name): conv2d computes every shape by that path (the kernel tests' small shapes
    would otherwise go where the size rules of _algorithm send them)."""
    from minidl.kernels.cpu import conv

    def force(name):
        monkeypatch.setattr(conv, "_algorithm", lambda *shape: name)
    return force


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, c, h, w, o, kernel, padding, dilation", _direct_cases(14))
def test_direct_path_matches_torch(rng, force_algorithm, dtype, n, c, h, w, o, kernel, padding, dilation):
    force_algorithm("direct")
    tolerance = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    _conv2d_matches_torch(rng, dtype, (n, c, h, w), (o, c) + kernel, padding, dilation, tolerance)


def _conv2d_matches_torch(rng, dtype, x_shape, w_shape, padding, dilation, tolerance, stride=1):
    """F.conv2d (with bias) forward and backward against PyTorch on the same inputs, outputs
    and gradients in ``dtype``."""
    torch = pytest.importorskip("torch")
    arrays = [rng.standard_normal(s).astype(dtype) for s in (x_shape, w_shape, w_shape[:1])]
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    expected = torch.nn.functional.conv2d(*tensors, stride, padding, dilation)
    upstream = rng.standard_normal(tuple(expected.shape)).astype(dtype)
    expected.backward(torch.tensor(upstream))
    out, grads = run(lambda *a: F.conv2d(*a, stride, padding, dilation), arrays, upstream)
    assert out.dtype == dtype
    assert_close(out, expected, what="y", **tolerance)
    for name, grad, t in zip(("dx", "dweight", "dbias"), grads, tensors):
        assert grad.dtype == dtype
        assert_close(grad, t.grad, what=name, **tolerance)


@pytest.mark.parametrize("x_shape, w_shape, options", [
    ((2, 1, 7, 6), (3, 1, 5, 5), dict(padding=2)),
    ((2, 2, 6, 7), (3, 2, 3, 3), dict(padding=(1, 0), dilation=(1, 2))),
    ((1, 3, 5, 6), (2, 3, 2, 4), dict(padding=(0, 1))),
])
def test_direct_path_gradcheck(rng, force_algorithm, x_shape, w_shape, options):
    force_algorithm("direct")
    inputs = [leaf(rng.standard_normal(s)) for s in (x_shape, w_shape, w_shape[:1])]
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, **options), inputs)


def _grouped_cases(count, seed=5):
    """(n, groups, in per group, out per group, h, w, kernel, padding, dilation): depthwise (one
    input channel per group, with and without a channel multiplier) and grouped, odd sizes."""
    rng = np.random.default_rng(seed)
    cases = [(2, 6, 1, 1, 7, 6, (3, 3), (1, 1), (1, 1)), (3, 4, 1, 2, 5, 8, (3, 3), (0, 1), (1, 1)),
             (2, 3, 2, 3, 9, 7, (5, 5), (2, 2), (1, 1))]
    while len(cases) < count:
        kernel = tuple(int(k) for k in rng.integers(1, 6, 2))
        dilation = tuple(int(d) for d in rng.integers(1, 3, 2))
        h, w = (int(d * (k - 1) + 1 + rng.integers(0, 6)) for k, d in zip(kernel, dilation))
        cases.append((int(rng.integers(1, 4)), int(rng.integers(2, 6)), int(rng.integers(1, 4)), int(rng.integers(1, 4)),
                      h, w, kernel, tuple(int(p) for p in rng.integers(0, 3, 2)), dilation))
    return cases


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, groups, c, o, h, w, kernel, padding, dilation", _grouped_cases(9))
def test_grouped_direct_path_matches_torch(rng, dtype, n, groups, c, o, h, w, kernel, padding, dilation):
    from minidl.kernels.cpu import conv
    w_shape, out_size = (groups * o, c) + kernel, (h, w)  # the size only matters past 64 channels
    assert conv._algorithm(w_shape, (1, 1), padding, dilation, groups, out_size) == "direct"
    torch = pytest.importorskip("torch")
    arrays = [rng.standard_normal(s).astype(dtype) for s in ((n, groups * c, h, w), w_shape, w_shape[:1])]
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    expected = torch.nn.functional.conv2d(*tensors, 1, padding, dilation, groups)
    upstream = rng.standard_normal(tuple(expected.shape)).astype(dtype)
    expected.backward(torch.tensor(upstream))
    out, grads = run(lambda *a: F.conv2d(*a, 1, padding, dilation, groups), arrays, upstream)
    tolerance = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    assert_close(out, expected, what="y", **tolerance)
    for name, grad, t in zip(("dx", "dweight", "dbias"), grads, tensors):
        assert_close(grad, t.grad, what=name, **tolerance)


def test_grouped_direct_path_gradcheck_and_a_nan_stays_in_its_group(rng):
    from minidl.kernels.cpu import conv, winograd
    inputs = [leaf(rng.standard_normal(s)) for s in ((2, 4, 5, 6), (6, 2, 3, 3), (6,))]
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=1, groups=2), inputs)
    x = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    x[1, 3, 2, 5] = np.nan  # group 1 of image 1: the kernels skip that image, the exact sums take it
    weight = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((2, 6, 5, 6)).astype(np.float32)
    args = ((1, 1), (1, 1), (1, 1), 2)
    assert conv._algorithm(weight.shape, *args, (5, 6)) == "direct"
    _, dw, _ = conv.conv2d_backward(x, weight, dy, *args)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(winograd, "ALGORITHM", "im2col")
        _, reference, _ = conv.conv2d_backward(x, weight, dy, *args)
    assert np.isfinite(dw[:3]).all() and np.isnan(dw[3:]).any()
    assert_close(dw, reference, what="dweight", rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("w_shape, stride, groups, direct", [
    ((6, 1, 5, 5), (1, 1), 1, True),       # LeNet's first layer: 150 weights
    ((32, 1, 3, 3), (1, 1), 1, True),      # FashionCNN's first layer: 288
    ((6, 2, 5, 5), (1, 1), 1, True),       # 300
    ((16, 3, 5, 5), (1, 1), 1, False),     # 1,200: im2col in chunks is faster
    ((16, 6, 5, 5), (1, 1), 1, False),     # LeNet's second layer
    ((64, 1, 3, 3), (1, 1), 1, False),
    ((6, 1, 5, 5), (2, 2), 1, False),      # strided
    ((4, 1, 3, 3), (1, 1), 2, True),       # grouped
    ((64, 1, 3, 3), (1, 1), 64, True),     # depthwise: any size
    ((64, 1, 3, 3), (2, 2), 64, False),    # strided
])
def test_which_shapes_take_the_direct_path(w_shape, stride, groups, direct):
    from minidl.kernels.cpu import direct_conv
    assert direct_conv.chosen(w_shape, stride, groups) is direct


def _blocked_3x3_cases(count, seed=1):
    """(n, c, h, w, o, padding): more than 8 input channels or 32 outputs (past the per-row
    loops), output channels that do not fill the last block of 4, planes from one output to
    wider than the accumulator."""
    rng = np.random.default_rng(seed)
    cases = [(2, 16, 11, 11, 32, (1, 1)), (3, 9, 5, 7, 5, (1, 0)), (1, 12, 3, 3, 33, (0, 0)),
             (2, 1, 4, 6, 40, (0, 1)),
             (1, 9, 70, 30, 5, (1, 1)),   # three row chunks of the accumulator
             (1, 9, 3, 1100, 5, (1, 0))]  # a row wider than the accumulator's 1024 positions
    while len(cases) < count:
        padding = tuple(int(p) for p in rng.integers(0, 2, 2))
        h, w = (int(3 - 2 * p + rng.integers(0, 7)) for p in padding)
        cases.append((int(rng.integers(1, 4)), int(rng.integers(9, 14)), h, w, int(rng.integers(1, 11)), padding))
    return cases


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, c, h, w, o, padding", _blocked_3x3_cases(10))
def test_blocked_3x3_path_matches_torch(rng, dtype, n, c, h, w, o, padding):
    from minidl.kernels.cpu import conv
    assert conv._algorithm((o, c, 3, 3), (1, 1), padding, (1, 1), 1, (h, w)) == "direct 3x3"
    tolerance = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-11)
    _conv2d_matches_torch(rng, dtype, (n, c, h, w), (o, c, 3, 3), padding, 1, tolerance)


def _register_tile_cases(count, seed=5):
    """(n, c, h, w, o, kernel, stride, padding): 3x3 and 5x5 windows at stride 1 and 2, every
    padding from 0 to k - 1, odd sizes, output channels that do not fill the last tile of 8."""
    rng = np.random.default_rng(seed)
    cases = [(2, 37, 9, 9, 17, 3, 1, (1, 1)),     # many input channels, a last tile of 1 output channel
             (1, 3, 40, 33, 8, 3, 1, (0, 1)),     # wide positions past several chunks of tiles
             (3, 2, 1, 1, 24, 3, 1, (1, 1)),      # one output position
             (2, 6, 14, 14, 16, 5, 1, (0, 0)),    # LeNet's second layer
             (2, 7, 9, 8, 19, 5, 1, (4, 1)),
             (2, 16, 32, 32, 32, 3, 2, (1, 1)),   # the bench's ConvTranspose2d, as the convolution it transposes
             (1, 5, 8, 7, 9, 3, 2, (0, 2)),       # an odd width: x's last column reaches no output
             (2, 3, 3, 4, 10, 3, 2, (2, 1)),      # one output row
             (1, 4, 11, 12, 17, 5, 2, (3, 4)),
             (2, 3, 1, 5, 9, 3, 2, (1, 1))]      # one row of x: dX's phase 0 has no rows
    while len(cases) < count:
        k, stride = int(rng.choice([3, 5])), int(rng.choice([1, 2]))
        padding = tuple(int(p) for p in rng.integers(0, k, 2))
        h, w = (int(k - 2 * p + rng.integers(0, 8 * stride)) for p in padding)
        cases.append((int(rng.integers(1, 4)), int(rng.integers(1, 14)), max(h, 1), max(w, 1),
                      int(rng.integers(1, 21)), k, stride, padding))
    return cases


@pytest.mark.parametrize("n, c, h, w, o, k, stride, padding", _register_tile_cases(30))
def test_register_tiles_equal_the_float64_paths(rng, n, c, h, w, o, k, stride, padding):
    """register_conv's tiles in float32 (forward, dX, dK, db) against conv2d's float64 paths
    (direct_conv's loops or im2col): the same convolution of the same values, within float32
    rounding."""
    from minidl.kernels.cpu import conv, register_conv
    out_size = tuple((s + 2 * p - k) // stride + 1 for s, p in zip((h, w), padding))
    if min(out_size) < 1:
        pytest.skip("no output")
    args = ((stride, stride), padding, (1, 1), 1)
    assert register_conv.supported((o, c, k, k), *args[:3], 1)
    x = rng.standard_normal((n, c, h, w))
    weight, bias = rng.standard_normal((o, c, k, k)), rng.standard_normal(o)
    dy = rng.standard_normal((n, o) + out_size)
    as32 = [a.astype(np.float32) for a in (x, weight, bias, dy)]
    assert_close(register_conv.conv2d_forward(*as32[:3], *args[:2]),
                 conv.conv2d_forward(x, weight, bias, *args, out_size), what="y", rtol=1e-4, atol=1e-4)
    ours = register_conv.conv2d_backward(as32[0], as32[1], as32[3], *args[:2])
    for name, grad, reference in zip(("dx", "dweight", "dbias"), ours, conv.conv2d_backward(x, weight, dy, *args)):
        assert grad.dtype == np.float32
        assert_close(grad, reference, what=name, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n, c, h, w, o, k, padding", [(2, 16, 32, 32, 32, 3, (1, 1)), (3, 5, 9, 8, 12, 3, (0, 2)),
                                                      (2, 6, 13, 11, 9, 5, (2, 3)), (1, 3, 6, 7, 20, 5, (4, 0))])
def test_stride_2_tiles_match_torch(rng, n, c, h, w, o, k, padding):
    """Strided float32 convolutions on the phase-plane tiles, forward and backward, against PyTorch."""
    from minidl.kernels.cpu import conv
    assert conv._algorithm((o, c, k, k), (2, 2), padding, (1, 1), 1, (h // 2, w // 2)) == "register tiles"
    _conv2d_matches_torch(rng, np.float32, (n, c, h, w), (o, c, k, k), padding, 1, dict(rtol=1e-4, atol=1e-4),
                          stride=2)


def _winograd_tile_cases(count, seed=7):
    """(n, c, h, w, o, padding): paddings 0 to 2, odd output sizes (a last tile row or column
    half outside), blocks of tiles that end inside a row of tiles, rows of tiles longer than a
    block, channels that do not fill the last tile of output channels."""
    rng = np.random.default_rng(seed)
    cases = [(2, 16, 32, 32, 32, (1, 1)),   # the bench's conv2d: full blocks
             (2, 17, 13, 30, 33, (2, 2)),   # rows of 16 tiles over blocks; a last tile of 1 output channel
             (1, 9, 3, 3, 8, (0, 0)),       # one output position
             (2, 3, 2, 70, 40, (1, 1)),     # rows of 35 tiles: blocks end inside them
             (1, 1, 9, 7, 5, (1, 0)),       # one input channel
             (2, 5, 5, 6, 8, (2, 0)),
             (1, 8, 34, 60, 16, (1, 1))]   # dK's tiles in two chunks (416 + 94), the last vector part full
    while len(cases) < count:
        padding = tuple(int(p) for p in rng.integers(0, 3, 2))
        h, w = (int(3 - 2 * p + rng.integers(0, 20)) for p in padding)
        cases.append((int(rng.integers(1, 4)), int(rng.integers(1, 20)), max(h, 1), max(w, 1),
                      int(rng.integers(1, 41)), padding))
    return cases


@pytest.mark.parametrize("n, c, h, w, o, padding", _winograd_tile_cases(20))
def test_winograd_tiles_equal_the_float64_paths(rng, n, c, h, w, o, padding):
    """register_conv's passes on the F(2x2, 3x3) tiles (forward, dX, dK where the padding is at
    most 1) in float32 against conv2d's float64 paths: the same convolution of the same values,
    within float32 rounding."""
    from minidl.kernels.cpu import conv, register_conv
    out_size = tuple(s + 2 * p - 2 for s, p in zip((h, w), padding))
    if min(out_size) < 1:
        pytest.skip("no output")
    args = ((1, 1), padding, (1, 1), 1)
    x = rng.standard_normal((n, c, h, w))
    weight, bias = rng.standard_normal((o, c, 3, 3)), rng.standard_normal(o)
    dy = rng.standard_normal((n, o) + out_size)
    as32 = [a.astype(np.float32) for a in (x, weight, bias, dy)]
    ours = register_conv.conv2d_forward(*as32[:3], *args[:2], winograd=True)
    assert ours.dtype == np.float32
    assert_close(ours, conv.conv2d_forward(x, weight, bias, *args, out_size), what="y", rtol=1e-4, atol=1e-4)
    grads = register_conv.conv2d_backward(as32[0], as32[1], as32[3], *args[:2], winograd_dx=True, winograd_dk=True)
    for name, grad, reference in zip(("dx", "dweight", "dbias"), grads, conv.conv2d_backward(x, weight, dy, *args)):
        assert grad.dtype == np.float32
        assert_close(grad, reference, what=name, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("where", ["input", "weight", "bias", "dy"])
def test_winograd_tiles_leave_a_nonfinite_value_to_the_direct_tiles(rng, where):
    """In a transform inf - inf is NaN: an image holding an inf (of x in the forward pass, of dY
    in dX), or every image when the weight (or the forward's bias) holds one, is computed by the
    direct tiles, the same outputs bit for bit; the other images stay on the Winograd tiles."""
    from minidl.kernels.cpu import register_conv
    x = rng.standard_normal((3, 16, 8, 9)).astype(np.float32)
    weight = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(32).astype(np.float32)
    dy = rng.standard_normal((3, 32, 8, 9)).astype(np.float32)
    array, index = {"input": (x, (1, 2, 3, 4)), "weight": (weight, (3, 2, 1, 2)), "bias": (bias, 2),
                    "dy": (dy, (1, 5, 3, 4))}[where]
    array[index] = np.inf
    if where == "dy":
        ours, direct = (register_conv.conv2d_backward(x, weight, dy, (1, 1), (1, 1), True, False, tiles)[0]
                        for tiles in (True, False))
    else:
        ours, direct = (register_conv.conv2d_forward(x, weight, bias, (1, 1), (1, 1), tiles) for tiles in (True, False))
    assert np.isinf(direct).any()
    held = [0, 1, 2] if where in ("weight", "bias") else [1]
    np.testing.assert_array_equal(ours[held], direct[held])
    if len(held) == 1:
        assert np.isfinite(ours[[0, 2]]).all() and not np.array_equal(ours[[0, 2]], direct[[0, 2]])
        np.testing.assert_allclose(ours[[0, 2]], direct[[0, 2]], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("where", ["input", "dy"])
def test_winograd_weight_grad_leaves_a_nonfinite_image_to_the_direct_tiles(rng, where):
    """dK on the Winograd tiles: an image of x or dY holding an inf adds its direct (or, for x,
    exact) dK, so that the non-finite entries of dK are those of the direct tiles and the rest
    agree within rounding."""
    from minidl.kernels.cpu import register_conv
    x = rng.standard_normal((3, 16, 8, 9)).astype(np.float32)
    weight = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((3, 32, 8, 9)).astype(np.float32)
    {"input": x, "dy": dy}[where][1, 5, 3, 4] = np.inf
    ours, direct = (register_conv.conv2d_backward(x, weight, dy, (1, 1), (1, 1), False, True, False, tiles)[1]
                    for tiles in (True, False))
    assert not np.isfinite(direct).all()
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(direct))
    np.testing.assert_array_equal(np.isinf(ours), np.isinf(direct))
    finite = np.isfinite(direct)
    np.testing.assert_allclose(ours[finite], direct[finite], rtol=1e-4, atol=1e-4)


def test_bench_conv2d_runs_on_the_winograd_tiles_and_matches_torch(rng):
    """The bench's conv2d row (a smaller batch) takes the Winograd tiles forward; F.conv2d
    forward and backward against PyTorch in float32."""
    from minidl.kernels.cpu import conv, register_tiles
    if register_tiles.LANES != 16:
        pytest.skip("the Winograd tiles are chosen with AVX-512 only")
    x, weight = np.zeros((2, 16, 32, 32), np.float32), np.zeros((32, 16, 3, 3), np.float32)
    assert conv._algorithm_for(x, weight, (1, 1), (1, 1), (1, 1), 1, (32, 32)) == "register tiles"
    assert conv._winograd_tiles(weight.shape, (1, 1), (32, 32))
    _conv2d_matches_torch(rng, np.float32, x.shape, weight.shape, (1, 1), 1, dict(rtol=1e-4, atol=1e-4))


AVX2_TILES = """
import numpy as np
from minidl.kernels.cpu import conv, register_conv, register_tiles
rng = np.random.default_rng(0)
worst = 0.0
for (n, c, h, w, o, k, s, p) in ((2, 5, 9, 8, 13, 3, 1, (1, 0)), (3, 4, 7, 9, 7, 5, 1, (2, 1)),
                                 (2, 3, 9, 10, 8, 3, 2, (1, 1))):
    x, weight, bias = rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, k, k)), rng.standard_normal(o)
    out = tuple((size + 2 * q - k) // s + 1 for size, q in zip((h, w), p))
    dy = rng.standard_normal((n, o) + out)
    args = ((s, s), p, (1, 1), 1)
    pairs = [(register_conv.conv2d_forward(*(a.astype(np.float32) for a in (x, weight, bias)), (s, s), p),
              conv.conv2d_forward(x, weight, bias, *args, out))]
    pairs += zip(register_conv.conv2d_backward(*(a.astype(np.float32) for a in (x, weight, dy)), (s, s), p),
                 conv.conv2d_backward(x, weight, dy, *args))
    worst = max([worst] + [np.abs(a - b).max() / max(1.0, np.abs(b).max()) for a, b in pairs])
x, weight, bias = rng.standard_normal((2, 5, 9, 40)), rng.standard_normal((13, 5, 3, 3)), rng.standard_normal(13)
dy = rng.standard_normal((2, 13, 9, 40))
ours = [register_conv.conv2d_forward(*(a.astype(np.float32) for a in (x, weight, bias)), (1, 1), (1, 1), True)]
ours += register_conv.conv2d_backward(*(a.astype(np.float32) for a in (x, weight, dy)), (1, 1), (1, 1),
                                      True, True, True, True)
args = ((1, 1), (1, 1), (1, 1), 1)
references = [conv.conv2d_forward(x, weight, bias, *args, (9, 40))] + list(conv.conv2d_backward(x, weight, dy, *args))
for a, b in zip(ours, references):
    worst = max(worst, np.abs(a - b).max() / np.abs(b).max())
from minidl.kernels.cpu import matmul
matmul.TILED_PRODUCT_FROM = 0
a, b = rng.standard_normal((48, 300)), rng.standard_normal((300, 64))
for ours in (matmul.product(a.astype(np.float32), b.astype(np.float32)),
             matmul.transposed_product(np.ascontiguousarray(a.T, np.float32), b.astype(np.float32))):
    worst = max(worst, np.abs(ours - a @ b).max() / np.abs(a @ b).max())
print(register_tiles.LANES, register_tiles.TILE_ROWS, worst)
"""


def test_register_tiles_with_avx2_vectors(tmp_path):
    """Compiled for an AVX2 CPU (NUMBA_CPU_NAME=haswell, a cache of its own) the tiles take
    8-float vectors and 6-channel tiles, and compute the same convolutions (direct and Winograd)
    and products as float64."""
    import platform
    import subprocess
    import sys
    from llvmlite import binding
    if platform.machine() not in ("x86_64", "AMD64") or not binding.get_host_cpu_features().get("avx2"):
        pytest.skip("needs an x86-64 CPU with AVX2")
    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", AVX2_TILES], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lanes, rows, worst = out.stdout.split()
    assert (int(lanes), int(rows)) == (8, 6) and float(worst) < 1e-4


@pytest.mark.parametrize("x_shape, w_shape, padding", [
    ((2, 9, 5, 4), (6, 9, 3, 3), (1, 1)),
    ((1, 10, 4, 5), (5, 10, 3, 3), (0, 1)),
])
def test_blocked_3x3_path_gradcheck(rng, x_shape, w_shape, padding):
    from minidl.kernels.cpu import conv
    assert conv._algorithm(w_shape, (1, 1), padding, (1, 1), 1, x_shape[2:]) == "direct 3x3"
    inputs = [leaf(rng.standard_normal(s)) for s in (x_shape, w_shape, w_shape[:1])]
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=padding), inputs)


@pytest.mark.parametrize("w_shape, stride, padding, dilation, groups, out_size, algorithm", [
    ((6, 1, 5, 5), (1, 1), (2, 2), (1, 1), 1, (28, 28), "direct"),         # LeNet's first layer
    ((32, 1, 3, 3), (1, 1), (1, 1), (1, 1), 1, (28, 28), "direct 3x3"),    # FashionCNN's first layer
    ((8, 4, 3, 3), (1, 1), (1, 1), (1, 1), 1, (16, 16), "direct"),         # few outputs: per-row loops
    ((64, 32, 3, 3), (1, 1), (1, 1), (1, 1), 1, (14, 14), "direct 3x3"),   # its second
    ((32, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1, (32, 32), "direct 3x3"),   # the bench's conv2d row
    ((128, 128, 3, 3), (1, 1), (1, 1), (1, 1), 1, (14, 14), "winograd"),
    ((64, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1, (14, 14), "direct 3x3"),    # register tiles beat Winograd
    ((128, 128, 3, 3), (1, 1), (1, 1), (1, 1), 1, (12, 12), "im2col chunks"),  # wide, small planes
    ((256, 128, 3, 3), (1, 1), (1, 1), (1, 1), 1, (4, 4), "im2col"),       # past CHUNKED_MAX_WEIGHTS
    ((64, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1, (7, 7), "direct 3x3"),      # a small plane
    ((32, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1, (11, 11), "direct 3x3"),
    ((16, 8, 3, 3), (1, 1), (1, 1), (1, 1), 1, (4, 4), "direct 3x3"),       # few channels: any plane
    ((16, 8, 3, 3), (1, 1), (2, 2), (1, 1), 1, (20, 20), "register tiles"),  # padding 2: 1,152 weights
    ((8, 2, 3, 3), (1, 1), (2, 2), (1, 1), 1, (20, 20), "direct"),
    ((32, 16, 3, 3), (1, 1), (2, 2), (1, 1), 1, (32, 32), "register tiles"),  # padding 2
    ((32, 16, 3, 3), (2, 2), (1, 1), (1, 1), 1, (16, 16), "register tiles"),  # stride 2: phase planes
    ((32, 16, 3, 3), (1, 1), (1, 1), (2, 2), 1, (30, 30), "im2col chunks"),  # dilated
    ((32, 8, 3, 3), (1, 1), (1, 1), (1, 1), 2, (32, 32), "direct"),        # grouped
    ((64, 1, 3, 3), (1, 1), (1, 1), (1, 1), 64, (16, 16), "direct"),       # depthwise
    ((64, 1, 3, 3), (2, 2), (1, 1), (1, 1), 64, (8, 8), "im2col"),         # strided depthwise
    ((16, 6, 5, 5), (1, 1), (0, 0), (1, 1), 1, (10, 10), "register tiles"),  # LeNet's second layer
    ((16, 6, 7, 7), (1, 1), (0, 0), (1, 1), 1, (10, 10), "im2col chunks"),  # no tiles for 7x7
])
def test_which_algorithm_computes_a_shape(w_shape, stride, padding, dilation, groups, out_size, algorithm):
    from minidl.kernels.cpu import conv
    assert conv._algorithm(w_shape, stride, padding, dilation, groups, out_size) == algorithm


@pytest.mark.parametrize("stride, padding", [(1, (1, 1)), (1, (2, 2)), (1, (1, 0)), (2, (1, 1)), (2, (0, 2))])
def test_3x3_paths_equal_the_im2col_reference_with_a_nan(rng, stride, padding):
    """The float32 paths (tiles at stride 1 and 2) against the im2col reference, with a NaN in
    one image that must reach that image's outputs and dweight only."""
    from minidl.kernels.cpu import conv, winograd
    x = rng.standard_normal((3, 10, 6, 5)).astype(np.float32)
    x[1, 4, 2, 3] = np.nan
    weight = rng.standard_normal((7, 10, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(7).astype(np.float32)
    out_size = tuple((s + 2 * p - 3) // stride + 1 for s, p in zip(x.shape[2:], padding))
    dy = rng.standard_normal((3, 7) + out_size).astype(np.float32)
    args = ((stride, stride), padding, (1, 1), 1)
    y = conv.conv2d_forward(x, weight, bias, *args, out_size)
    grads = conv.conv2d_backward(x, weight, dy, *args)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(winograd, "ALGORITHM", "im2col")
        reference_y = conv.conv2d_forward(x, weight, bias, *args, out_size)
        reference_grads = conv.conv2d_backward(x, weight, dy, *args)
    assert np.isnan(y[1]).any() and not np.isnan(y[0]).any()
    assert_close(y, reference_y, what="y", rtol=1e-4, atol=1e-4)
    for name, grad, reference in zip(("dx", "dweight", "dbias"), grads, reference_grads):
        assert_close(grad, reference, what=name, rtol=1e-4, atol=1e-4)


def test_direct_path_equals_the_im2col_path_and_skips_unneeded_grads(rng, monkeypatch):
    """The im2col reference (MINIDL_CONV_ALGORITHM=im2col) on a first layer (no dx) and a NaN
    that must reach the output and the weight gradient."""
    from minidl.kernels.cpu import conv, winograd
    x = rng.standard_normal((4, 1, 12, 12)).astype(np.float32)
    weight = rng.standard_normal((6, 1, 5, 5)).astype(np.float32)
    dy = rng.standard_normal((4, 6, 12, 12)).astype(np.float32)
    args = ((1, 1), (2, 2), (1, 1), 1)
    y = conv.conv2d_forward(x, weight, None, *args, (12, 12))
    dx, dw, db = conv.conv2d_backward(x, weight, dy, *args, need_dx=False)
    assert dx is None
    monkeypatch.setattr(winograd, "ALGORITHM", "im2col")
    reference_dx, reference_dw, reference_db = conv.conv2d_backward(x, weight, dy, *args)
    assert_close(y, conv.conv2d_forward(x, weight, None, *args, (12, 12)), what="y")
    assert_close(dw, reference_dw, what="dweight")
    assert_close(db, reference_db, what="dbias")
    monkeypatch.setattr(winograd, "ALGORITHM", "auto")
    x[1, 0, 5, 5] = np.nan
    y = conv.conv2d_forward(x, weight, None, *args, (12, 12))
    _, dw, _ = conv.conv2d_backward(x, weight, dy, *args, need_dx=False)
    assert np.isnan(y[1, :, 3:8, 3:8]).all() and np.isfinite(y[0]).all() and np.isnan(dw).all()


@pytest.mark.parametrize("image_major_positions", [0, 10 ** 9])  # image-major or batch-major columns
@pytest.mark.parametrize("x_shape, w_shape, options", [
    ((3, 4, 9, 8), (6, 2, 3, 2), dict(stride=(2, 1), padding=(1, 0), groups=2)),
    ((2, 4, 11, 10), (5, 4, 5, 5), dict(dilation=(2, 1), padding=2)),
    ((2, 6, 7, 7), (4, 6, 5, 5), {}),
])
def test_im2col_column_layouts_match_torch(rng, monkeypatch, image_major_positions, x_shape, w_shape, options):
    torch = pytest.importorskip("torch")
    from minidl.kernels.cpu import conv
    from minidl.kernels.cpu import winograd
    monkeypatch.setattr(conv, "IMAGE_MAJOR_POSITIONS", image_major_positions)
    monkeypatch.setattr(winograd, "ALGORITHM", "im2col")  # the whole-batch columns
    assert conv._algorithm(w_shape, options.get("stride", (1, 1)), _pair(options.get("padding", 0)),
                           _pair(options.get("dilation", 1)), options.get("groups", 1), x_shape[2:]) == "im2col"
    arrays = [rng.standard_normal(s).astype(np.float32) for s in (x_shape, w_shape, w_shape[:1])]
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    expected = torch.nn.functional.conv2d(*tensors, **options)
    upstream = rng.standard_normal(tuple(expected.shape)).astype(np.float32)
    expected.backward(torch.tensor(upstream))
    out, grads = run(lambda *a: F.conv2d(*a, **options), arrays, upstream)
    assert_close(out, expected, what="y", rtol=1e-4, atol=1e-4)
    for name, grad, t in zip(("dx", "dweight", "dbias"), grads, tensors):
        assert_close(grad, t.grad, what=name, rtol=1e-4, atol=1e-4)


def _pair(value):
    return tuple(value) if isinstance(value, tuple) else (value, value)


def test_batch_major_columns_gradcheck(rng, monkeypatch):
    from minidl.kernels.cpu import conv
    monkeypatch.setattr(conv, "IMAGE_MAJOR_POSITIONS", 10 ** 9)
    inputs = [leaf(rng.standard_normal(s)) for s in ((2, 4, 6, 5), (6, 2, 3, 2), (6,))]
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1, groups=2), inputs)


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("w_shape, padding, algorithm", [
    ((5, 2, 3, 3), (0, 0), "direct"), ((5, 10, 3, 3), (0, 0), "direct 3x3"), ((5, 10, 3, 3), (1, 0), "direct 3x3"),
])
def test_a_nonfinite_input_spreads_to_the_same_weight_gradients_as_im2col(rng, value, w_shape, padding, algorithm):
    """A NaN or inf in an image's last column: the direct paths' sums over wide positions would
    also multiply it by the zeros past ow (0 x inf = NaN); that image's dK is summed exactly."""
    from minidl.kernels.cpu import conv, winograd
    assert conv._algorithm(w_shape, (1, 1), padding, (1, 1), 1, (6, 7)) == algorithm
    x = rng.standard_normal((3, w_shape[1], 6, 7)).astype(np.float32)
    x[1, 1, 2, 6] = value
    out_size = (6 + 2 * padding[0] - 2, 7 + 2 * padding[1] - 2)
    dy = rng.standard_normal((3, w_shape[0]) + out_size).astype(np.float32)
    weight = rng.standard_normal(w_shape).astype(np.float32)
    args = ((1, 1), padding, (1, 1), 1)
    _, dw, _ = conv.conv2d_backward(x, weight, dy, *args)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(winograd, "ALGORITHM", "im2col")
        _, reference, _ = conv.conv2d_backward(x, weight, dy, *args)
    assert np.isfinite(reference).any() and not np.isfinite(reference).all()
    assert_close(dw, reference, what="dweight", rtol=1e-4, atol=1e-4)


def _shares_backwards(kernel, n_tasks, *rest, work=None, balance=False, per_share=None):
    """tasks.run with its shares run on this thread, last share first."""
    from minidl.kernels.cpu import tasks
    count = tasks.shares(n_tasks, work, balance, per_share)
    for share in reversed(range(count)):
        kernel(share, share * n_tasks // count, (share + 1) * n_tasks // count, *rest)


@pytest.mark.parametrize("w_shape, algorithm", [((5, 2, 3, 3), "direct"), ((6, 10, 3, 3), "direct 3x3")])
def test_balanced_direct_passes_give_the_same_bits_in_any_order(rng, monkeypatch, force_algorithm, w_shape,
                                                                algorithm):
    """With balance (more shares than threads, taken by whichever thread is free), each share's
    partial dK and db cover the same images whatever thread runs it and whenever: the result of
    shares run backwards on one thread equals the concurrent one, and matches PyTorch."""
    from minidl.kernels.cpu import conv, direct_conv, tasks
    force_algorithm(algorithm)
    monkeypatch.setattr(direct_conv, "_BALANCE_MIN_FLOPS", 0)
    x = rng.standard_normal((13, w_shape[1], 6, 7)).astype(np.float32)
    weight = rng.standard_normal(w_shape).astype(np.float32)
    dy = rng.standard_normal((13, w_shape[0], 6, 7)).astype(np.float32)
    args = ((1, 1), (1, 1), (1, 1), 1)
    y = conv.conv2d_forward(x, weight, None, *args, (6, 7))
    grads = conv.conv2d_backward(x, weight, dy, *args)
    assert tasks.shares(13, balance=True) > tasks.shares(13)
    monkeypatch.setattr(tasks, "run", _shares_backwards)
    assert np.array_equal(conv.conv2d_forward(x, weight, None, *args, (6, 7)), y)
    for reordered, first in zip(conv.conv2d_backward(x, weight, dy, *args), grads):
        assert np.array_equal(reordered, first)
    torch = pytest.importorskip("torch")
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(weight, requires_grad=True)
    torch.nn.functional.conv2d(tx, tw, padding=1).backward(torch.tensor(dy))
    for ours, theirs in zip(grads[:2], (tx.grad, tw.grad)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-4, atol=1e-4)


def _chunked_cases(count, seed=3):
    """Random strided, padded, dilated shapes, with odd sizes, for the chunked im2col path."""
    rng = np.random.default_rng(seed)
    cases = [((7, 6, 14, 14), (16, 6, 4, 4), dict()),                             # a 4x4 window: no tiles
             ((5, 3, 9, 8), (4, 3, 3, 3), dict(stride=2, padding=2, dilation=2)),
             ((3, 4, 9, 11), (5, 4, 3, 2), dict(stride=2, padding=1))]             # odd width, stride 2
    for _ in range(count - len(cases)):
        kh, kw = (int(k) for k in rng.integers(1, 5, 2))
        options = dict(stride=(int(rng.integers(2, 4)), int(rng.integers(1, 4))),  # strided: not direct
                       padding=tuple(int(v) for v in rng.integers(0, 3, 2)),
                       dilation=tuple(int(v) for v in rng.integers(1, 3, 2)))
        h, w = (int(v) + 2 * max(kh, kw) for v in rng.integers(1, 8, 2))
        c = int(rng.integers(1, 6))
        cases.append(((int(rng.integers(1, 9)), c, h, w), (int(rng.integers(1, 7)), c, kh, kw), options))
    return cases


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, options", _chunked_cases(11))
def test_chunked_im2col_matches_torch(rng, monkeypatch, dtype, x_shape, w_shape, options):
    """Chunks of 1-3 images (a small CHUNK_FLOATS), the last one of a share shorter."""
    from minidl.kernels.cpu import conv
    monkeypatch.setattr(conv, "CHUNK_FLOATS", 2 * w_shape[1] * w_shape[2] * w_shape[3] * 25)
    stride, padding, dilation = (_pair(options.get(k, d)) for k, d in (("stride", 1), ("padding", 0), ("dilation", 1)))
    out_size = tuple((x_shape[2 + a] + 2 * padding[a] - dilation[a] * (w_shape[2 + a] - 1) - 1) // stride[a] + 1
                     for a in range(2))
    assert conv._algorithm(w_shape, stride, padding, dilation, 1, out_size) == "im2col chunks"
    tolerance = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-11)
    _conv2d_matches_torch(rng, dtype, x_shape, w_shape, padding, dilation, tolerance, stride)


@pytest.mark.parametrize("x_shape, w_shape, options", [
    ((3, 2, 7, 6), (3, 2, 3, 2), dict(stride=2, padding=1)),
    ((2, 3, 8, 7), (2, 3, 2, 3), dict(stride=(1, 2), dilation=(2, 1))),
])
def test_chunked_im2col_gradcheck(rng, monkeypatch, x_shape, w_shape, options):
    from minidl.kernels.cpu import conv
    monkeypatch.setattr(conv, "CHUNK_FLOATS", 1)  # one image a chunk
    inputs = [leaf(rng.standard_normal(s)) for s in (x_shape, w_shape, w_shape[:1])]
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, **options), inputs)


def test_chunked_im2col_gives_the_same_bits_in_any_share_order_and_in_one_share(rng, monkeypatch):
    """Each share's partial dK' covers the same images whichever thread runs it: shares run
    backwards give the same bits; one share (no single-threaded BLAS to split over) the same
    numbers; the first layer's input needs no dx, and then none is computed."""
    from minidl.kernels.cpu import conv, direct_conv, tasks
    monkeypatch.setattr(direct_conv, "_BALANCE_MIN_FLOPS", 0)
    monkeypatch.setattr(conv, "CHUNK_FLOATS", 300)
    x = rng.standard_normal((13, 6, 14, 14)).astype(np.float32)
    weight = rng.standard_normal((16, 6, 4, 4)).astype(np.float32)
    dy = rng.standard_normal((13, 16, 11, 11)).astype(np.float32)
    args = ((1, 1), (0, 0), (1, 1), 1)
    assert conv._algorithm(weight.shape, *args, (11, 11)) == "im2col chunks"
    assert tasks.shares_calling_blas(13, balance=True) > 2
    y, grads = conv.conv2d_forward(x, weight, None, *args, (11, 11)), conv.conv2d_backward(x, weight, dy, *args)
    dx_free = conv.conv2d_backward(x, weight, dy, *args, need_dx=False)
    assert dx_free[0] is None and np.array_equal(dx_free[1], grads[1])
    run = tasks.run
    monkeypatch.setattr(tasks, "run", _shares_backwards)
    assert np.array_equal(conv.conv2d_forward(x, weight, None, *args, (11, 11)), y)
    for reordered, first in zip(conv.conv2d_backward(x, weight, dy, *args), grads):
        assert np.array_equal(reordered, first)
    monkeypatch.setattr(tasks, "run", run)
    monkeypatch.setattr(tasks, "kernel_blas_can_be_serial", lambda: False)
    monkeypatch.setattr(tasks, "serial_kernel_blas", lambda: __import__("contextlib").nullcontext(False))
    assert np.array_equal(conv.conv2d_forward(x, weight, None, *args, (11, 11)), y)
    for single, first in zip(conv.conv2d_backward(x, weight, dy, *args), grads):
        np.testing.assert_allclose(single, first, rtol=1e-6, atol=1e-5)
