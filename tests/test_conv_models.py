"""The CNN models build with no arguments, take 28x28 grey images, train one step, and have the
parameter counts their docstrings state."""
import numpy as np
import pytest

import minidl
from minidl import nn, optim
from models import MODELS, fashion_cnn, lenet, local_cnn, tiled_cnn


SIZES = [(lenet, 61_706), (fashion_cnn, 421_738), (tiled_cnn, 477_898), (local_cnn, 1_218_282)]


@pytest.mark.parametrize("module, n_params", SIZES)
def test_model_builds_and_trains_one_step(module, n_params):
    model = module.build()
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert f"{n_params:,}" in module.__doc__
    x = minidl.randn(4, 1, 28, 28)
    y = minidl.tensor(np.array([0, 1, 2, 3]))
    before = [p.array.copy() for p in model.parameters()]
    loss = nn.CrossEntropyLoss()(model(x), y)
    loss.backward()
    optim.SGD(model.parameters(), lr=0.1).step()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
    assert all(not np.array_equal(a, p.data) for a, p in zip(before, model.parameters()))
    model.eval()
    assert model(x).shape == (4, 10)


@pytest.mark.parametrize("module, n_params", SIZES)
def test_model_summarises_on_the_meta_device(module, n_params):
    result = minidl.summary(module.build(), (1, 28, 28), verbose=False)
    assert result.total_params == n_params
    assert result.rows[0]["output_shape"] == (1, 10)


def test_models_are_registered():
    for name, module in [("lenet", lenet), ("fashion_cnn", fashion_cnn), ("tiled_cnn", tiled_cnn),
                         ("local_cnn", local_cnn)]:
        assert MODELS[name] is module.build
