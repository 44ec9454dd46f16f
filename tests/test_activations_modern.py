"""GELU (exact and tanh), SiLU, ELU, Softplus, Mish, Hardtanh and the LogSoftmax module:
PyTorch parity of outputs and gradients (float32 and float64), float64 gradchecks."""
import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl import nn
from minidl.utils import gradcheck
from conftest import assert_close

CASES = [
    ("GELU", {}), ("GELU", {"approximate": "tanh"}), ("SiLU", {}), ("ELU", {}), ("ELU", {"alpha": 0.5}),
    ("Softplus", {}), ("Softplus", {"beta": 2.0, "threshold": 3.0}), ("Mish", {}), ("Hardtanh", {}),
    ("Hardtanh", {"min_val": -0.5, "max_val": 2.0}), ("LogSoftmax", {"dim": 1}),
]


def _inputs(rng, dtype):
    x = 3 * rng.standard_normal((4, 9))
    x[0, :3] = (-30.0, 30.0, 0.0)  # far tails: no overflow, no NaN
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, options", CASES)
def test_matches_torch(rng, name, options, dtype):
    torch = pytest.importorskip("torch")
    x = _inputs(rng, dtype)
    upstream = rng.standard_normal(x.shape).astype(dtype)
    mx, tx = minidl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, expected = getattr(nn, name)(**options)(mx), getattr(torch.nn, name)(**options)(tx)
    out.backward(upstream)
    expected.backward(torch.tensor(upstream))
    assert out.dtype == dtype and mx.grad.dtype == dtype
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-13}
    assert_close(out, expected, what=f"{name} y", **tol)
    assert_close(mx.grad, tx.grad, what=f"{name} dx", **tol)


@pytest.mark.parametrize("name, options", [("SiLU", {}), ("GELU", {}), ("GELU", {"approximate": "tanh"})])
def test_large_float32_inputs_match_torch(rng, name, options):
    """600,000 elements: past the kernels' thresholds, so their parallel builds run. Against
    PyTorch in float64 (its float32 results carry errors of their own in the tails)."""
    torch = pytest.importorskip("torch")
    x = (3 * rng.standard_normal((600, 1000))).astype(np.float32)
    upstream = rng.standard_normal(x.shape).astype(np.float32)
    mx, tx = minidl.tensor(x, requires_grad=True), torch.tensor(x.astype(np.float64), requires_grad=True)
    out, expected = getattr(nn, name)(**options)(mx), getattr(torch.nn, name)(**options)(tx)
    out.backward(upstream)
    expected.backward(torch.tensor(upstream.astype(np.float64)))
    assert out.dtype == np.float32 and mx.grad.dtype == np.float32
    assert_close(out, expected, what=f"{name} y", rtol=1e-5, atol=1e-6)
    assert_close(mx.grad, tx.grad, what=f"{name} dx", rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape, dim", [((300, 4000), -1), ((3, 400, 1000), 1), ((2, 3, 5), 0)])
def test_softmax_kernels_match_torch_along_any_axis(rng, name, shape, dim):
    """Rows along ``dim``; 1.2 million float32 elements run over shares of the rows. Against
    PyTorch in float64."""
    torch = pytest.importorskip("torch")
    x = (4 * rng.standard_normal(shape)).astype(np.float32)
    upstream = rng.standard_normal(shape).astype(np.float32)
    mx, tx = minidl.tensor(x, requires_grad=True), torch.tensor(x.astype(np.float64), requires_grad=True)
    out, expected = getattr(F, name)(mx, dim=dim), getattr(torch.nn.functional, name)(tx, dim=dim)
    out.backward(upstream)
    expected.backward(torch.tensor(upstream.astype(np.float64)))
    assert out.dtype == np.float32 and out.shape == shape
    assert_close(out, expected, what=f"{name} y", rtol=1e-5, atol=1e-6)
    assert_close(mx.grad, tx.grad, what=f"{name} dx", rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fn", [
    lambda x: F.gelu(x), lambda x: F.gelu(x, approximate="tanh"), F.silu, lambda x: F.elu(x, 0.7),
    lambda x: F.softplus(x, beta=1.5, threshold=4.0), F.mish, lambda x: F.hardtanh(x, -0.8, 0.9),
])
def test_gradcheck(rng, fn):
    x = rng.standard_normal((3, 5)) * 2
    x = np.where(np.abs(np.abs(x) - 0.85) < 0.05, 0.3, x)  # away from Hardtanh's kinks
    assert gradcheck(fn, [minidl.tensor(x, requires_grad=True)])


def test_bad_arguments():
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(minidl.zeros(2), approximate="erf")
    with pytest.raises(ValueError, match="min_val"):
        F.hardtanh(minidl.zeros(2), 1.0, -1.0)
