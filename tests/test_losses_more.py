"""SmoothL1Loss, HuberLoss, KLDivLoss, CosineEmbeddingLoss, MarginRankingLoss and
TripletMarginLoss: PyTorch parity (module and function, every reduction, every gradient,
float64) and finite-difference gradchecks."""
import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl import nn
from minidl.utils.gradcheck import gradcheck

from conftest import assert_close

torch = pytest.importorskip("torch")


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _signs(n, seed=9):
    return np.random.default_rng(seed).choice([-1.0, 1.0], n)


def _kl_inputs():
    logp = np.log(np.random.default_rng(1).dirichlet(np.ones(4), 3))
    q = np.random.default_rng(2).dirichlet(np.ones(4), 3)
    return logp, q


# name: (module kwargs, float inputs, constant inputs (targets without gradient))
CASES = {
    "SmoothL1Loss": ({"beta": 0.7}, [_x(3, 4), _x(3, 4, seed=1)], []),
    "SmoothL1Loss-beta0": ({"beta": 0.0}, [_x(3, 4), _x(3, 4, seed=1)], []),
    "HuberLoss": ({"delta": 0.6}, [_x(3, 4), _x(3, 4, seed=1)], []),
    "KLDivLoss": ({}, list(_kl_inputs()), []),
    "KLDivLoss-log_target": ({"log_target": True}, [_kl_inputs()[0], np.log(_kl_inputs()[1])], []),
    "CosineEmbeddingLoss": ({"margin": 0.1}, [_x(4, 3), _x(4, 3, seed=1)], [_signs(4)]),
    "MarginRankingLoss": ({"margin": 0.2}, [_x(5), _x(5, seed=1)], [_signs(5)]),
    "TripletMarginLoss": ({"margin": 2.0}, [_x(4, 3), _x(4, 3, seed=1), _x(4, 3, seed=2)], []),
    "TripletMarginLoss-swap-p1": ({"margin": 3.0, "p": 1.0, "swap": True},
                                  [_x(4, 3), _x(4, 3, seed=1), _x(4, 3, seed=2)], []),
}
REDUCTIONS = {"KLDivLoss": ("batchmean", "sum", "none", "mean")}


def _params():
    for name, case in CASES.items():
        for reduction in REDUCTIONS.get(name.split("-")[0], ("mean", "sum", "none")):
            yield pytest.param(name, reduction, id=f"{name}-{reduction}")


@pytest.mark.filterwarnings("ignore:reduction. .mean. divides")
@pytest.mark.parametrize("name, reduction", list(_params()))
def test_matches_torch(name, reduction):
    kwargs, floats, constants = CASES[name]
    cls = name.split("-")[0]
    ours = getattr(nn, cls)(reduction=reduction, **kwargs)
    theirs = getattr(torch.nn, cls)(reduction=reduction, **kwargs)
    mine = [minidl.tensor(a, requires_grad=True) for a in floats] + [minidl.tensor(a) for a in constants]
    ref = [torch.tensor(a, requires_grad=True) for a in floats] + [torch.tensor(a) for a in constants]
    y, ty = ours(*mine), theirs(*ref)
    assert_close(y, ty, 1e-10, 1e-10, "loss")
    up = np.random.default_rng(3).standard_normal(tuple(ty.shape))
    (y * minidl.tensor(up)).sum().backward()
    (ty * torch.tensor(up)).sum().backward()
    for i, (a, t) in enumerate(zip(mine[:len(floats)], ref)):
        assert_close(a.grad, t.grad, 1e-10, 1e-10, f"gradient of input {i}")


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck(name):
    kwargs, floats, constants = CASES[name]
    loss = getattr(nn, name.split("-")[0])(reduction="none", **kwargs)
    inputs = [minidl.tensor(a, requires_grad=True) for a in floats] + [minidl.tensor(a) for a in constants]
    assert gradcheck(lambda *t: loss(*t), inputs)


def test_functions_defaults_and_errors():
    x, t = minidl.tensor(_x(3, 4)), minidl.tensor(_x(3, 4, seed=1))
    assert_close(F.smooth_l1_loss(x, t), _torch_call("smooth_l1_loss", x, t))
    assert_close(F.huber_loss(x, t, delta=2.0), _torch_call("huber_loss", x, t, delta=2.0))
    with pytest.raises(ValueError, match="reduction"):
        nn.KLDivLoss(reduction="avg")
    with pytest.raises(ValueError, match=r"cosine_embedding_loss: .*\(3, 4\), \(3, 4\) and \(2,\)"):
        F.cosine_embedding_loss(x, t, minidl.tensor(np.ones(2)))
    with pytest.raises(ValueError, match=r"smooth_l1_loss: input of shape \(3, 4\) and target of shape \(4,\)"):
        F.smooth_l1_loss(x, minidl.tensor(np.ones(4)))
    with pytest.raises(TypeError, match="triplet_margin_loss"):
        F.triplet_margin_loss(minidl.tensor(np.ones((2, 2), np.int64)), x, t)


def _torch_call(name, *tensors, **kwargs):
    return getattr(torch.nn.functional, name)(*[torch.tensor(t.numpy()) for t in tensors], **kwargs)
