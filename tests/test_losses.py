"""Losses: values and gradients against PyTorch, float64 gradient checks, stability, errors."""
import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl import nn
from minidl.utils import gradcheck
from conftest import assert_close


def logits_and_targets(rng, n=6, c=5, extra=(), dtype=np.float64):
    logits = minidl.tensor(rng.standard_normal((n, c) + extra).astype(dtype), requires_grad=True)
    target = minidl.tensor(rng.integers(0, c, size=(n,) + extra))
    return logits, target


CE_OPTIONS = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"label_smoothing": 0.2},
    {"weight": np.array([1.0, 2.0, 0.5, 3.0, 1.5])},
    {"weight": np.array([1.0, 2.0, 0.5, 3.0, 1.5]), "label_smoothing": 0.1},
    {"ignore_index": 2},
    {"ignore_index": 2, "label_smoothing": 0.3, "reduction": "sum"},
]


@pytest.mark.parametrize("options", CE_OPTIONS)
@pytest.mark.parametrize("extra", [(), (3,)])
def test_cross_entropy_gradcheck(options, extra, rng):
    logits, target = logits_and_targets(rng, extra=extra)
    kwargs = dict(options)
    if "weight" in kwargs:
        kwargs["weight"] = minidl.tensor(kwargs["weight"])
    assert gradcheck(lambda x: F.cross_entropy(x, target, **kwargs), [logits])


@pytest.mark.parametrize("options", CE_OPTIONS)
@pytest.mark.parametrize("extra", [(), (2, 3)])
def test_cross_entropy_matches_torch(options, extra, rng):
    torch = pytest.importorskip("torch")
    logits, target = logits_and_targets(rng, extra=extra, dtype=np.float32)
    t_logits = torch.tensor(logits.array, requires_grad=True)
    kwargs = dict(options)
    t_kwargs = dict(options)
    if "weight" in kwargs:
        kwargs["weight"] = minidl.tensor(kwargs["weight"].astype(np.float32))
        t_kwargs["weight"] = torch.tensor(options["weight"], dtype=torch.float32)
    loss = nn.CrossEntropyLoss(**kwargs)(logits, target)
    expected = torch.nn.CrossEntropyLoss(**t_kwargs)(t_logits, torch.tensor(target.array))
    upstream = rng.standard_normal(loss.shape).astype(np.float32)
    loss.backward(upstream)
    expected.backward(torch.tensor(upstream))
    assert loss.dtype == np.float32
    assert_close(loss, expected, what="loss")
    assert_close(logits.grad, t_logits.grad, what="dlogits")


@pytest.mark.parametrize("rows", [300, 1050])
@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1, "ignore_index": 3}])
def test_cross_entropy_over_shares_of_rows_matches_torch(options, rows, rng):
    """(rows, 1000) logits: the forward's rows run in shares on several threads from 2^17 values,
    the backward from 2^20 (1050 rows)."""
    torch = pytest.importorskip("torch")
    logits = (3 * rng.standard_normal((rows, 1000))).astype(np.float32)
    target = rng.integers(0, 1000, rows)
    target[::7] = 3
    weight = rng.uniform(0.5, 2.0, 1000).astype(np.float32)
    mx = minidl.tensor(logits, requires_grad=True)
    tx = torch.tensor(logits.astype(np.float64), requires_grad=True)
    loss = F.cross_entropy(mx, minidl.tensor(target), weight=minidl.tensor(weight), reduction="sum", **options)
    expected = torch.nn.functional.cross_entropy(tx, torch.tensor(target),
                                                 weight=torch.tensor(weight.astype(np.float64)), reduction="sum",
                                                 **options)
    loss.backward()
    expected.backward()
    assert_close(loss, expected, what="loss", rtol=1e-5)
    assert_close(mx.grad, tx.grad, what="dlogits", rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_kept_gradient_is_never_handed_out(reduction, rng):
    """Reduced, the forward pass keeps the loss's gradient and backward passes it on (times an
    upstream other than 1): while the graph holds it, .grad must take a copy, so that backward k
    times sums k gradients and a .grad zeroed in place leaves the kept gradient whole."""
    logits, target = logits_and_targets(rng, n=7, c=4, dtype=np.float32)
    loss = F.cross_entropy(logits, target, reduction=reduction)
    loss.backward(retain_graph=True)
    once = logits.grad.numpy().copy()
    assert np.abs(once).max() > 0
    for times in (2, 3):
        loss.backward(retain_graph=True)
        np.testing.assert_allclose(logits.grad.numpy(), times * once, rtol=1e-6)
    logits.grad.array[...] = 0
    (2.5 * loss).backward(retain_graph=True)
    np.testing.assert_allclose(logits.grad.numpy(), 2.5 * once, rtol=1e-6)
    logits.grad.array[...] = 0
    loss.backward()
    np.testing.assert_allclose(logits.grad.numpy(), once, rtol=1e-6)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = minidl.tensor(np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 1e4]], dtype=np.float32),
                           requires_grad=True)
    target = minidl.tensor([0, 2])
    loss = F.cross_entropy(logits, target)
    loss.backward()
    # row 0 is certain and right (loss 0), row 1 splits evenly between classes 1 and 2 (log 2)
    assert loss.item() == pytest.approx(np.log(2) / 2, rel=1e-5)
    np.testing.assert_allclose(logits.grad.data, [[0, 0, 0], [0, 0.25, -0.25]], atol=1e-6)


def test_cross_entropy_errors_name_the_shapes_and_values():
    logits = minidl.randn(4, 3)
    with pytest.raises(ValueError, match=r"cross_entropy: input of shape \(4, 3\) needs a target of shape \(4,\)"):
        F.cross_entropy(logits, minidl.tensor([0, 1, 2]))
    with pytest.raises(IndexError, match="target 3 is out of range for 3 classes"):
        F.cross_entropy(logits, minidl.tensor([0, 1, 2, 3]))
    with pytest.raises(IndexError, match="target -1 is out of range for 3 classes"):
        F.cross_entropy(logits, minidl.tensor([0, -1, 2, 1]))
    with pytest.raises(IndexError, match="target -1 is out of range for 3 classes"):  # besides ignored rows
        F.cross_entropy(logits, minidl.tensor([-100, -1, 2, 1]))
    assert np.isfinite(F.cross_entropy(logits, minidl.tensor([-100, 0, 2, 1])).item())
    assert np.isfinite(F.cross_entropy(logits, minidl.tensor([0, 1, 2, 5]), ignore_index=5).item())
    with pytest.raises(TypeError, match="integer class indices"):
        F.cross_entropy(logits, minidl.tensor([0.0, 1.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="reduction"):
        nn.CrossEntropyLoss(reduction="avg")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_matches_torch_and_gradchecks(reduction, rng):
    torch = pytest.importorskip("torch")
    logits, target = logits_and_targets(rng)
    weight = np.array([0.5, 1.0, 2.0, 1.0, 3.0])
    logp = logits.log_softmax(1)
    loss = F.nll_loss(logp, target, weight=minidl.tensor(weight), ignore_index=1, reduction=reduction)
    t_logits = torch.tensor(logits.array, requires_grad=True)
    expected = torch.nn.functional.nll_loss(t_logits.log_softmax(1), torch.tensor(target.array),
                                            weight=torch.tensor(weight), ignore_index=1,
                                            reduction=reduction)
    upstream = rng.standard_normal(loss.shape)
    loss.backward(upstream)
    expected.backward(torch.tensor(upstream))
    assert_close(loss, expected)
    assert_close(logits.grad, t_logits.grad)
    assert gradcheck(lambda x: nn.NLLLoss(reduction=reduction)(x.log_softmax(1), target), [logits])


def test_cross_entropy_equals_log_softmax_then_nll(rng):
    logits, target = logits_and_targets(rng)
    fused = F.cross_entropy(logits, target).item()
    composed = F.nll_loss(logits.log_softmax(1), target).item()
    assert fused == pytest.approx(composed, rel=1e-12)


REGRESSION = {
    "mse": (nn.MSELoss, "MSELoss", False),
    "l1": (nn.L1Loss, "L1Loss", False),
    "bce": (nn.BCELoss, "BCELoss", True),
    "bce_logits": (nn.BCEWithLogitsLoss, "BCEWithLogitsLoss", False),
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", sorted(REGRESSION))
def test_pointwise_losses_match_torch_and_gradcheck(name, reduction, rng):
    torch = pytest.importorskip("torch")
    ours, theirs, probabilities = REGRESSION[name]
    raw = rng.standard_normal((4, 3))
    data = 1 / (1 + np.exp(-raw)) if probabilities else raw
    target_data = rng.random((4, 3)) if name.startswith("bce") else rng.standard_normal((4, 3))
    x = minidl.tensor(data, requires_grad=True)
    target = minidl.tensor(target_data)
    loss = ours(reduction=reduction)(x, target)
    tx = torch.tensor(data, requires_grad=True)
    expected = getattr(torch.nn, theirs)(reduction=reduction)(tx, torch.tensor(target_data))
    upstream = rng.standard_normal(loss.shape)
    loss.backward(upstream)
    expected.backward(torch.tensor(upstream))
    assert_close(loss, expected, rtol=1e-7, atol=1e-9)
    assert_close(x.grad, tx.grad, rtol=1e-7, atol=1e-9)
    assert gradcheck(lambda x: ours(reduction=reduction)(x, target), [x])


def test_bce_with_logits_pos_weight_and_weight_match_torch(rng):
    torch = pytest.importorskip("torch")
    data, target_data = rng.standard_normal((5, 3)) * 30, rng.random((5, 3))
    pos_weight, weight = np.array([0.5, 2.0, 3.0]), rng.random((5, 3))
    x = minidl.tensor(data, requires_grad=True)
    loss = nn.BCEWithLogitsLoss(weight=minidl.tensor(weight), pos_weight=minidl.tensor(pos_weight))(
        x, minidl.tensor(target_data))
    tx = torch.tensor(data, requires_grad=True)
    expected = torch.nn.BCEWithLogitsLoss(weight=torch.tensor(weight), pos_weight=torch.tensor(pos_weight))(
        tx, torch.tensor(target_data))
    loss.backward()
    expected.backward()
    assert np.isfinite(loss.item())
    assert_close(loss, expected, rtol=1e-10)
    assert_close(x.grad, tx.grad, rtol=1e-10)


def test_bce_clamps_log_of_zero_like_torch():
    torch = pytest.importorskip("torch")
    y = np.array([0.0, 1.0, 0.5])
    t = np.array([1.0, 0.0, 1.0])
    ours = F.binary_cross_entropy(minidl.tensor(y), minidl.tensor(t)).item()
    theirs = torch.nn.functional.binary_cross_entropy(torch.tensor(y), torch.tensor(t)).item()
    assert ours == pytest.approx(theirs)


def test_loss_shape_and_range_errors():
    with pytest.raises(ValueError, match=r"mse_loss: input of shape \(4, 1\) and target of shape \(4,\)"):
        F.mse_loss(minidl.randn(4, 1), minidl.randn(4))
    with pytest.raises(ValueError, match="probabilities"):
        F.binary_cross_entropy(minidl.tensor([1.5]), minidl.tensor([1.0]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_nan_logit_makes_its_row_nan(rng, dtype):
    """A NaN logit of either sign (the max may skip one, the sum of exponentials does not) makes
    its row's loss and gradient NaN, as in PyTorch; the other rows stay finite."""
    logits = rng.standard_normal((3, 5)).astype(dtype)
    logits[0, 2], logits[1, 4] = np.nan, -np.nan
    x = minidl.tensor(logits, requires_grad=True)
    losses = F.cross_entropy(x, minidl.tensor([1, 0, 3]), reduction="none")
    losses.sum().backward()
    assert np.isnan(losses.array[:2]).all() and np.isfinite(losses.array[2])
    assert np.isnan(x.grad.array[:2]).all() and np.isfinite(x.grad.array[2]).all()
