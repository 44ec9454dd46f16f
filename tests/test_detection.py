"""YOLO-style detection loss (against the notes' formula written in NumPy) and binary
cross-entropy with soft targets (against PyTorch)."""
import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl import nn
from minidl.utils.gradcheck import gradcheck

from conftest import assert_close


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def h_b(t, q):
    return -t * np.log(q) - (1 - t) * np.log(1 - q)


def reference_per_cell(pred, target, classes, boxes, l_coord, l_noobj):
    """The notes' formula, cell by cell, box by box."""
    n, rows, cols, _ = pred.shape
    out = np.zeros((n, rows, cols))
    for index in np.ndindex(n, rows, cols):
        p, t = pred[index], target[index]
        loss, cell_has_object = 0.0, False
        for b in range(boxes):
            x, y, w, h, c = p[5 * b:5 * b + 5]
            tx, ty, tw, th, tc = t[5 * b:5 * b + 5]
            if tc > 0:
                cell_has_object = True
                loss += l_coord * (h_b(tx, sigmoid(x)) + h_b(ty, sigmoid(y))
                                   + 0.5 * (w - tw) ** 2 + 0.5 * (h - th) ** 2)
                loss += h_b(tc, sigmoid(c))
            else:
                loss += l_noobj * h_b(0.0, sigmoid(c))
        if cell_has_object:
            loss += sum(h_b(t[5 * boxes + i], sigmoid(p[5 * boxes + i])) for i in range(classes))
        out[index] = loss
    return out


def make_batch(rng, n=2, s=3, boxes=2, classes=3):
    pred = rng.standard_normal((n, s, s, 5 * boxes + classes))
    target = rng.uniform(0, 1, pred.shape)
    target[..., [2, 3]] = rng.uniform(0.1, 2.0, (n, s, s, 2))  # w, h need not lie in [0, 1]
    for b in range(boxes):
        present = rng.random((n, s, s)) < 0.5
        target[..., 5 * b + 4] = np.where(present, rng.choice([1.0, 0.7], (n, s, s)), 0.0)
    return pred, target


@pytest.mark.parametrize("boxes, classes", [(1, 2), (2, 3)])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_matches_the_formula(boxes, classes, reduction, rng):
    pred, target = make_batch(rng, boxes=boxes, classes=classes)
    loss = F.detection_loss(minidl.tensor(pred), minidl.tensor(target), classes, boxes,
                            lambda_coord=5.0, lambda_noobj=0.5, reduction=reduction)
    per_cell = reference_per_cell(pred, target, classes, boxes, 5.0, 0.5)
    expected = {"none": per_cell, "sum": per_cell.sum(), "mean": per_cell.sum() / len(pred)}[reduction]
    assert_close(loss, expected, rtol=1e-10, atol=1e-10)


def test_gradcheck(rng):
    pred, target = make_batch(rng, n=2, s=2, boxes=2, classes=2)
    x = minidl.tensor(pred, requires_grad=True)
    assert gradcheck(lambda x: F.detection_loss(x, target, 2, 2, lambda_coord=2.0, reduction="none"), [x])


def test_gradient_is_the_notes_formula_and_zero_where_the_indicator_is_off(rng):
    pred, target = make_batch(rng, n=1, s=2, boxes=1, classes=2)
    target[0, 0, 0, 4] = 1.0  # object in cell (0, 0)
    target[0, 1, 1, 4] = 0.0  # no object in cell (1, 1)
    x = minidl.tensor(pred, requires_grad=True)
    nn.DetectionLoss(num_classes=2, lambda_coord=3.0, lambda_noobj=0.25, reduction="sum")(x, target).backward()
    grad = x.grad.array
    p, t = pred[0, 0, 0], target[0, 0, 0]
    expected = np.concatenate([3.0 * (sigmoid(p[:2]) - t[:2]), 3.0 * (p[2:4] - t[2:4]),
                               [sigmoid(p[4]) - t[4]], sigmoid(p[5:]) - t[5:]])
    assert_close(grad[0, 0, 0], expected, rtol=1e-10, atol=1e-12, what="object cell")
    off = grad[0, 1, 1]
    assert np.all(off[:4] == 0), "coordinates of a cell without object get no gradient"
    assert np.all(off[5:] == 0), "classes of a cell without object get no gradient"
    assert off[4] == pytest.approx(0.25 * sigmoid(pred[0, 1, 1, 4]))


def test_bad_shapes_and_targets_are_explained():
    loss = nn.DetectionLoss(num_classes=3, num_boxes=2)
    with pytest.raises(ValueError, match=r"\(N, S, S, 13\).*B=2, classes=3.*\(1, 2, 2, 12\)"):
        loss(minidl.zeros(1, 2, 2, 12), minidl.zeros(1, 2, 2, 12))
    target = np.zeros((1, 2, 2, 13), dtype=np.float32)
    target[0, 0, 0, 4], target[0, 0, 0, 0] = 1.0, 1.5
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        loss(minidl.zeros(1, 2, 2, 13), target)


# ---------------------------------------------------------------- binary cross-entropy, soft targets

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy_soft_targets_match_torch(reduction, weighted, rng):
    torch = pytest.importorskip("torch")
    probs = rng.uniform(0.02, 0.98, (4, 5))
    soft = rng.uniform(0, 1, (4, 5))
    weight = rng.uniform(0.5, 2.0, (4, 5)) if weighted else None
    y = minidl.tensor(probs, requires_grad=True)
    ty = torch.tensor(probs, requires_grad=True)
    loss = F.binary_cross_entropy(y, minidl.tensor(soft), weight=weight, reduction=reduction)
    t_loss = torch.nn.functional.binary_cross_entropy(
        ty, torch.tensor(soft), weight=None if weight is None else torch.tensor(weight), reduction=reduction)
    assert_close(loss, t_loss, rtol=1e-10, atol=1e-12, what="loss")
    upstream = rng.standard_normal(np.shape(loss.data))
    loss.backward(upstream)
    t_loss.backward(torch.tensor(upstream))
    assert_close(y.grad, ty.grad, rtol=1e-10, atol=1e-12, what="d probabilities")


def test_binary_cross_entropy_soft_targets_gradcheck(rng):
    y = minidl.tensor(rng.uniform(0.05, 0.95, (3, 4)), requires_grad=True)
    soft = minidl.tensor(rng.uniform(0, 1, (3, 4)))
    assert gradcheck(lambda y: F.binary_cross_entropy(y, soft, reduction="none"), [y])
