"""LowRankLinear: gradients, equality with Linear(U V W), SVD factorisation of a Linear."""
import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.utils.gradcheck import gradcheck

from conftest import assert_close


def test_gradcheck(rng):
    layer = nn.LowRankLinear(4, 3, rank=2, dtype=np.float64)
    layer.V.array[...] = rng.standard_normal((2, 2))  # a general V, not the identity
    x = minidl.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    params = [layer.U, layer.V, layer.W, layer.bias]
    assert gradcheck(lambda x, u, v, w, b: nn.functional.low_rank_linear(x, u, v, w, b), [x, *params])


def test_without_bias_gradcheck(rng):
    layer = nn.LowRankLinear(3, 5, rank=3, bias=False, dtype=np.float64)
    x = minidl.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    assert gradcheck(lambda x: layer(x), [x])
    assert gradcheck(lambda u, v, w: nn.functional.low_rank_linear(x, u, v, w), [layer.U, layer.V, layer.W])


def test_equals_linear_of_the_product(rng):
    low = nn.LowRankLinear(6, 4, rank=2, dtype=np.float64)
    low.V.array[...] = rng.standard_normal((2, 2))
    dense = nn.Linear(6, 4, dtype=np.float64)
    dense.weight.array[...] = low.U.data @ low.V.data @ low.W.data
    dense.bias.array[...] = low.bias.data
    x = rng.standard_normal((5, 6))
    x_low, x_dense = minidl.tensor(x, requires_grad=True), minidl.tensor(x, requires_grad=True)
    y_low, y_dense = low(x_low), dense(x_dense)
    assert_close(y_low, y_dense.data, rtol=1e-12, atol=1e-12, what="output")
    upstream = rng.standard_normal((5, 4))
    (y_low * upstream).sum().backward()
    (y_dense * upstream).sum().backward()
    assert_close(x_low.grad, x_dense.grad.data, rtol=1e-12, atol=1e-12, what="d input")
    assert_close(low.bias.grad, dense.bias.grad.data, what="d bias")
    # the factor gradients are the dense weight gradient pushed through the chain
    d_weight = dense.weight.grad.data
    assert_close(low.U.grad, d_weight @ (low.V.data @ low.W.data).T, what="dU")
    assert_close(low.W.grad, (low.U.data @ low.V.data).T @ d_weight, what="dW")


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_full_rank_svd_reproduces_the_linear(dtype, tol, rng):
    dense = nn.Linear(7, 5, dtype=dtype)
    low = nn.LowRankLinear.from_linear(dense, rank=5)
    assert low.U.dtype == dtype
    x = minidl.tensor(rng.standard_normal((3, 7)).astype(dtype))
    assert_close(low(x), dense(x).data, rtol=tol, atol=tol, what="full-rank factorisation")


def test_truncated_svd_is_the_best_rank_r_approximation(rng):
    dense = nn.Linear(8, 6, dtype=np.float64)
    singular = np.linalg.svd(dense.weight.data, compute_uv=False)
    low = nn.factorize_linear(dense, rank=3)
    assert np.allclose(np.diag(low.V.data), singular[:3]) and np.allclose(low.V.data, np.diag(singular[:3]))
    error = np.linalg.norm(dense.weight.data - low.full_weight())
    assert error == pytest.approx(np.sqrt(np.sum(singular[3:] ** 2)), rel=1e-10)
    assert np.linalg.matrix_rank(low.full_weight()) == 3
    assert np.allclose(low.U.array.T @ low.U.data, np.eye(3))  # orthonormal singular vectors
    assert np.allclose(low.W.data @ low.W.array.T, np.eye(3))


def test_bad_rank_and_input_are_explained():
    with pytest.raises(ValueError, match=r"rank must be in 1..min\(in_features, out_features\) = 3, got 4"):
        nn.LowRankLinear(3, 5, rank=4)
    layer = nn.LowRankLinear(3, 5, rank=2)
    with pytest.raises(ValueError, match=r"LowRankLinear\(in_features=3, out_features=5, rank=2.*\(\*, 3\).*\(2, 4\)"):
        layer(minidl.zeros(2, 4))
