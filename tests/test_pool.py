"""Pooling against PyTorch, float64 gradchecks, ties, the avg-pool/conv identity, layers, errors."""
import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl import nn
from minidl.utils import gradcheck
from conftest import assert_close


def compare_with_torch(rng, ours, theirs, x_shape, x=None):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(x_shape).astype(np.float32) if x is None else x
    tx = torch.tensor(x, requires_grad=True)
    expected = theirs(torch.nn.functional, tx)
    upstream = rng.standard_normal(tuple(expected.shape)).astype(np.float32)
    expected.backward(torch.tensor(upstream))
    mx = minidl.tensor(x, requires_grad=True)
    out = ours(mx)
    out.backward(upstream)
    assert out.dtype == np.float32
    assert_close(out, expected, what="y")
    assert_close(mx.grad, tx.grad, what="dx")


POOL2D_CASES = [  # kernel, stride, padding
    (2, None, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 0)), (3, 1, 0), (2, 3, 1),
]


@pytest.mark.parametrize("kernel, stride, padding", POOL2D_CASES)
def test_max_pool2d_matches_torch(rng, kernel, stride, padding):
    compare_with_torch(rng, lambda x: F.max_pool2d(x, kernel, stride, padding),
                       lambda tf, x: tf.max_pool2d(x, kernel, stride, padding), (2, 3, 7, 8))


@pytest.mark.parametrize("kernel, stride, padding", POOL2D_CASES)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d_matches_torch(rng, kernel, stride, padding, count_include_pad):
    compare_with_torch(rng, lambda x: F.avg_pool2d(x, kernel, stride, padding, count_include_pad),
                       lambda tf, x: tf.avg_pool2d(x, kernel, stride, padding, count_include_pad=count_include_pad),
                       (2, 3, 7, 8))


@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 2, 1), (4, 3, 2)])
def test_pool1d_matches_torch(rng, kernel, stride, padding):
    compare_with_torch(rng, lambda x: F.max_pool1d(x, kernel, stride, padding),
                       lambda tf, x: tf.max_pool1d(x, kernel, stride, padding), (2, 3, 11))
    compare_with_torch(rng, lambda x: F.avg_pool1d(x, kernel, stride, padding, count_include_pad=False),
                       lambda tf, x: tf.avg_pool1d(x, kernel, stride, padding, count_include_pad=False), (2, 3, 11))


@pytest.mark.parametrize("output_size", [3, (2, 4), (7, 1), (None, 3), (9, 5)])
def test_adaptive_avg_pool2d_matches_torch(rng, output_size):
    compare_with_torch(rng, lambda x: F.adaptive_avg_pool2d(x, output_size),
                       lambda tf, x: tf.adaptive_avg_pool2d(x, output_size), (2, 3, 7, 5))


def test_max_pool_ties_have_one_winner(rng):
    x = np.zeros((1, 2, 4, 4), dtype=np.float32)  # every window is a tie
    compare_with_torch(rng, lambda t: F.max_pool2d(t, 3, 1), lambda tf, t: tf.max_pool2d(t, 3, 1), x.shape, x)
    mx = minidl.tensor(x, requires_grad=True)
    F.max_pool2d(mx, 2).sum().backward()
    assert mx.grad.array.sum() == 8  # 2 channels x 4 windows, one unit each
    assert mx.grad.array.max() == 1


@pytest.mark.parametrize("op", [
    lambda x: F.max_pool2d(x, 3, 2, 1),
    lambda x: F.avg_pool2d(x, (2, 3), 1, (1, 1)),
    lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
    lambda x: F.adaptive_avg_pool2d(x, (3, 2)),
    lambda x: F.max_pool1d(x.flatten(2), 3, 2),
])
def test_gradcheck(rng, op):
    assert gradcheck(op, [minidl.tensor(rng.standard_normal((2, 2, 5, 4)), requires_grad=True)])


def test_avg_pool_is_conv_with_constant_kernel(rng):
    x = minidl.tensor(rng.standard_normal((2, 3, 7, 6)))
    kernel = np.zeros((3, 3, 3, 2))
    for c in range(3):
        kernel[c, c] = 1 / 6
    expected = F.conv2d(x, minidl.tensor(kernel), stride=2, padding=1)
    np.testing.assert_allclose(F.avg_pool2d(x, (3, 2), 2, 1).data, expected.data, rtol=1e-12)


def test_output_size_follows_the_formula():
    x = minidl.zeros(1, 1, 11, 8)
    y = F.max_pool2d(x, 3, 2, 1)
    assert y.shape[2:] == (F.conv_output_size(11, 3, 2, 1), F.conv_output_size(8, 3, 2, 1))


def test_layers_match_functional(rng):
    x = minidl.tensor(rng.standard_normal((2, 3, 8, 8)))
    np.testing.assert_array_equal(nn.MaxPool2d(2)(x).data, F.max_pool2d(x, 2).data)
    np.testing.assert_array_equal(nn.AvgPool2d(3, 2, 1, count_include_pad=False)(x).data,
                                  F.avg_pool2d(x, 3, 2, 1, count_include_pad=False).data)
    np.testing.assert_allclose(nn.AdaptiveAvgPool2d((1, 1))(x).array.reshape(2, 3), x.array.mean(axis=(2, 3)),
                               rtol=1e-12)
    seq = minidl.tensor(rng.standard_normal((2, 3, 9)))
    assert nn.MaxPool1d(3)(seq).shape == (2, 3, 3) and nn.AvgPool1d(2, 1)(seq).shape == (2, 3, 8)
    assert F.max_pool2d(x, 2).dtype == np.float64


@pytest.mark.parametrize("layer, x_shape, words", [
    (nn.MaxPool2d(5), (1, 2, 4, 4), ["MaxPool2d(kernel_size=5", "kernel (5, 5)", "(1, 2, 4, 4)"]),
    (nn.AvgPool2d(2, padding=2), (1, 2, 4, 4), ["AvgPool2d", "padding (2, 2)", "half the kernel (2, 2)"]),
    (nn.MaxPool1d(2), (1, 2, 4, 4), ["MaxPool1d", "(N, C, L)", "(1, 2, 4, 4)"]),
])
def test_errors_name_the_layer_and_shapes(layer, x_shape, words):
    with pytest.raises(ValueError) as error:
        layer(minidl.zeros(*x_shape))
    for word in words:
        assert word in str(error.value)


def test_the_2x2_kernel_picks_the_same_winners_as_the_general_one(rng):
    from minidl.kernels.cpu import pool
    x = np.round(rng.standard_normal((3, 4, 9, 10)), 0).astype(np.float32)  # many ties
    x[0, 0, 0, 1] = x[1, 2, 5, 5] = x[1, 2, 5, 4] = np.nan
    rows, cols = 2 * np.arange(4), 2 * np.arange(5)
    fast = pool.max_pool2d_forward(x, rows, rows + 2, cols, cols + 2)
    general = pool._max_pool_windows(x, rows, rows + 2, cols, cols + 2)
    np.testing.assert_array_equal(fast[0], general[0])
    np.testing.assert_array_equal(fast[1], general[1])
    assert np.isnan(fast[0][0, 0, 0, 0]) and fast[1][1, 2, 2, 2] == 5 * 10 + 5  # the last NaN wins
