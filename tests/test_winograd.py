"""Winograd F(2x2, 3x3) and F(4x4, 3x3) convolution: against the im2col path over random shapes
(float32, within 1e-4 relative), float64 gradient checks, PyTorch parity, chunking, and which
shapes take it."""
import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl.kernels.cpu import conv, winograd
from minidl.utils import gradcheck
from conftest import assert_close


@pytest.fixture
def forced(monkeypatch):
    """conv2d takes Winograd wherever it is supported (not only where it pays)."""
    monkeypatch.setattr(winograd, "ALGORITHM", "winograd")


def relative(actual, expected):
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-30))


def random_cases(count, seed=0):
    rng = np.random.default_rng(seed)
    cases = [(1, 1, 3, 3, 1, (0, 0)), (1, 3, 4, 5, 2, (2, 2)), (2, 5, 7, 6, 3, (1, 0))]
    for _ in range(count - len(cases)):
        padding = tuple(int(p) for p in rng.integers(0, 3, 2))
        h, w = (int(v) for v in rng.integers(3, 12, 2))
        cases.append((int(rng.integers(1, 4)), int(rng.integers(1, 8)), h, w, int(rng.integers(1, 8)), padding))
    return cases


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("n, c, h, w, o, padding", random_cases(12))
def test_matches_the_im2col_path_in_float32(n, c, h, w, o, padding, tile):
    rng = np.random.default_rng(n * 1000 + c * 100 + h * 10 + w)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32)
    out_size = (h + 2 * padding[0] - 2, w + 2 * padding[1] - 2)
    dy = rng.standard_normal((n, o) + out_size).astype(np.float32)
    args = ((1, 1), padding, (1, 1), 1)
    winograd_y = winograd.conv2d_forward(x, weight, bias, padding, out_size, tile=tile)
    winograd_dx, winograd_dw = winograd.conv2d_backward(x, weight, dy, padding, tile=tile)
    original = winograd.ALGORITHM
    try:
        winograd.ALGORITHM = "im2col"
        y = conv.conv2d_forward(x, weight, bias, *args, out_size)
        dx, dw, _ = conv.conv2d_backward(x, weight, dy, *args)
    finally:
        winograd.ALGORITHM = original
    assert winograd_y.dtype == np.float32 and winograd_y.shape == y.shape
    assert relative(winograd_y, y) < 1e-4
    assert relative(winograd_dx, dx) < 1e-4
    assert relative(winograd_dw, dw) < 1e-4


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("x_shape, w_shape, padding", [
    ((2, 3, 5, 4), (2, 3, 3, 3), 1),
    ((1, 2, 4, 6), (3, 2, 3, 3), 0),
    ((1, 1, 3, 3), (2, 1, 3, 3), (2, 1)),
])
def test_gradcheck_in_float64(forced, monkeypatch, rng, x_shape, w_shape, padding, tile):
    monkeypatch.setattr(winograd, "TILE", tile)
    inputs = [minidl.tensor(rng.standard_normal(s), requires_grad=True) for s in (x_shape, w_shape, w_shape[:1])]
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=padding), inputs)


@pytest.mark.parametrize("n, c, h, w, o, padding, stride, dilation, groups, kernel", [
    (2, 4, 9, 7, 5, 1, 1, 1, 1, 3),     # Winograd
    (1, 3, 6, 11, 2, (0, 2), 1, 1, 1, 3),  # Winograd, odd sizes, uneven padding
    (2, 4, 9, 8, 4, 1, 2, 1, 1, 3),     # stride 2: im2col
    (2, 4, 9, 8, 4, 2, 1, 2, 1, 3),     # dilation 2: im2col
    (2, 4, 9, 8, 4, 1, 1, 1, 2, 3),     # groups 2: im2col
    (2, 4, 9, 8, 4, 3, 1, 1, 1, 3),     # padding 3: im2col
    (2, 4, 9, 8, 4, 1, 1, 1, 1, 5),     # 5x5: im2col
])
@pytest.mark.parametrize("tile", [2, 4])
def test_conv2d_matches_torch_where_winograd_is_forced(forced, monkeypatch, rng, n, c, h, w, o, padding, stride,
                                                       dilation, groups, kernel, tile):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(winograd, "TILE", tile)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((o, c // groups, kernel, kernel)).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
    expected = torch.nn.functional.conv2d(tx, tw, tb, stride, padding, dilation, groups)
    upstream = rng.standard_normal(tuple(expected.shape)).astype(np.float32)
    expected.backward(torch.tensor(upstream))
    mx, mw, mb = (minidl.tensor(a, requires_grad=True) for a in (x, weight, bias))
    out = F.conv2d(mx, mw, mb, stride, padding, dilation, groups)
    out.backward(upstream)
    assert_close(out, expected, what="y")
    assert_close(mx.grad.data, tx.grad, what="dx")
    assert_close(mw.grad.data, tw.grad, what="dweight")
    assert_close(mb.grad.data, tb.grad, what="dbias")


@pytest.mark.parametrize("tile", [2, 4])
def test_chunks_of_images_give_the_same_result(monkeypatch, rng, tile):
    x = rng.standard_normal((5, 3, 6, 7))
    weight, dy = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal((5, 4, 6, 7))

    def both():
        return (winograd.conv2d_forward(x, weight, None, (1, 1), (6, 7), tile=tile),
                winograd.conv2d_backward(x, weight, dy, (1, 1), tile=tile))
    whole = both()
    monkeypatch.setattr(winograd, "CHUNK_BYTES", 1)  # one image per chunk
    chunked = both()
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-12, atol=1e-12)
    for a, b in zip(chunked[1], whole[1]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_skips_gradients_not_needed(rng):
    x, weight = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 3, 3))
    dy = rng.standard_normal((2, 4, 5, 5))
    dx, dw = winograd.conv2d_backward(x, weight, dy, (1, 1), need_dx=False)
    assert dx is None and dw.shape == weight.shape
    dx, dw = winograd.conv2d_backward(x, weight, dy, (1, 1), need_dw=False)
    assert dw is None and dx.shape == x.shape


@pytest.mark.parametrize("tile", [2, 4])
def test_backward_uses_its_own_input_after_other_convolutions(forced, monkeypatch, rng, tile):
    """The forward's transformed input may be reused by the backward; never another conv's."""
    monkeypatch.setattr(winograd, "TILE", tile)
    a, b = (minidl.tensor(rng.standard_normal((2, 2, 5, 5)), requires_grad=True) for _ in range(2))
    weight = minidl.tensor(rng.standard_normal((3, 2, 3, 3)), requires_grad=True)
    assert gradcheck(lambda a, b, w: F.conv2d(a, w) * F.conv2d(b, w, padding=1)[:, :, 1:-1, 1:-1]
                     + F.conv2d(a, w), [a, b, weight])


def test_the_tile_follows_the_output_size(monkeypatch):
    assert winograd.tile_for((32, 32)) == 4 and winograd.tile_for((16, 40)) == 4
    assert winograd.tile_for((14, 14)) == 2 and winograd.tile_for((1, 30)) == 2
    monkeypatch.setattr(winograd, "TILE", 2)
    assert winograd.tile_for((32, 32)) == 2


def test_which_shapes_take_winograd(monkeypatch):
    assert winograd.chosen((128, 128, 3, 3), (1, 1), (1, 1), (1, 1), 1, (16, 16))
    assert winograd.chosen((256, 128, 3, 3), (1, 1), (0, 2), (1, 1), 1, (16, 16))
    assert not winograd.chosen((32, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1, (16, 16))  # too few channels to pay
    assert not winograd.chosen((128, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1, (16, 16))  # register tiles win there
    assert not winograd.chosen((32, 1, 3, 3), (1, 1), (1, 1), (1, 1), 1, (16, 16))
    assert not winograd.chosen((128, 128, 3, 3), (2, 2), (1, 1), (1, 1), 1, (16, 16))
    assert not winograd.chosen((128, 128, 3, 3), (1, 1), (1, 1), (2, 2), 1, (16, 16))
    assert not winograd.chosen((128, 128, 3, 3), (1, 1), (1, 1), (1, 1), 2, (16, 16))
    assert not winograd.chosen((128, 128, 3, 3), (1, 1), (3, 3), (1, 1), 1, (16, 16))
    assert not winograd.chosen((128, 128, 5, 5), (1, 1), (1, 1), (1, 1), 1, (16, 16))
    assert winograd.chosen((128, 128, 3, 3), (1, 1), (1, 1), (1, 1), 1, (14, 14))
    assert not winograd.chosen((128, 128, 3, 3), (1, 1), (1, 1), (1, 1), 1, (13, 14))  # small planes: im2col
    monkeypatch.setattr(winograd, "ALGORITHM", "im2col")
    assert not winograd.chosen((64, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1, (16, 16))
    monkeypatch.setattr(winograd, "ALGORITHM", "winograd")
    assert winograd.chosen((32, 1, 3, 3), (1, 1), (1, 1), (1, 1), 1, (16, 16))
