"""The benchmark's PyTorch twins compute the same network as minidl's models (else its ratios
would compare different work)."""
import os
import sys

import numpy as np
import pytest

import minidl

torch = pytest.importorskip("torch")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
from bench_common import torch_twin  # noqa: E402
from models import MODELS  # noqa: E402


@pytest.mark.parametrize("name", ["mlp", "lenet", "fashion_cnn"])
def test_torch_twin_computes_the_same_outputs(name):
    minidl.manual_seed(0)
    model = MODELS[name]().eval()
    twin = torch_twin(model).eval()
    images = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)
    expected = model(minidl.tensor(images)).detach().numpy()
    with torch.no_grad():
        np.testing.assert_allclose(twin(torch.from_numpy(images)).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_torch_twin_refuses_a_layer_it_cannot_translate():
    with pytest.raises(TypeError, match="no PyTorch translation for Tanh"):
        torch_twin(minidl.nn.Sequential(minidl.nn.Tanh()))
