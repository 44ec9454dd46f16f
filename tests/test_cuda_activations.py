"""GELU (exact and tanh: cuda kernels of their own) and SiLU, ELU, Softplus, Mish, Hardtanh
(NumPy expressions on cuda arrays) on "cuda" equal the cpu results, outputs and gradients.
Under the CUDA simulator when no GPU is present (tests/conftest.py): tiny shapes."""
import numpy as np
import pytest

import minidl
import minidl.nn.functional as F

from test_cuda import _on_both

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not minidl.cuda.is_available(), reason="CUDA is not available")]


def _values():
    """Both signs, the tails and the Softplus threshold region, as (3, 7) float32."""
    return np.linspace(-6, 6, 21, dtype=np.float32).reshape(3, 7)


@pytest.mark.parametrize("activation", [
    F.gelu, lambda x: F.gelu(x, approximate="tanh"), F.silu, lambda x: F.elu(x, alpha=0.7),
    lambda x: F.softplus(x, beta=2.0, threshold=4.0), F.mish, lambda x: F.hardtanh(x, -2.0, 3.0),
], ids=["gelu", "gelu_tanh", "silu", "elu", "softplus", "mish", "hardtanh"])
def test_activation_on_cuda_equals_cpu(activation):
    _on_both(activation, [_values()])


def test_gelu_keeps_float64_on_cuda():
    x = minidl.tensor(_values().astype(np.float64), device="cuda", requires_grad=True)
    y = F.gelu(x)
    y.sum().backward()
    assert y.dtype == np.float64 and x.grad.dtype == np.float64
    expected = F.gelu(minidl.tensor(_values().astype(np.float64)))
    np.testing.assert_allclose(y.cpu().data, expected.data, rtol=1e-12, atol=1e-12)
