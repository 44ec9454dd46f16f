"""YOLO-style detection loss over an S x S grid of cells (the notes' "YOLO-style detection loss").

Prediction and target have shape (N, S, S, B*5 + C): per cell, B boxes of (x, y, w, h, c)
followed by C class scores. The prediction holds raw outputs: x, y, c and the class scores
p_i go through the logistic s, w and h stay linear. With H_b(t, q) = -t log q - (1-t) log(1-q),
per box b with indicator 1_b = [target c_b > 0] and per cell 1_cell = max_b 1_b:

    L_cell = sum_b 1_b [ l_coord (H_b(t_x, s(x)) + H_b(t_y, s(y)) + 1/2 (w - t_w)^2 + 1/2 (h - t_h)^2)
                         + H_b(t_c, s(c)) ]
           + sum_b l_noobj (1 - 1_b) H_b(0, s(c))
           + 1_cell sum_i H_b(t_pi, s(p_i))

Gradients: s(.) - t for the logistic entries, (w - t_w) and (h - t_h) for the linear ones,
each times its weight; zero wherever the indicator switches the term off. H_b on the logits is
binary_cross_entropy_with_logits (the stable form, soft targets in [0, 1]).

The indicator comes from the target's confidence entry, so the target says which box of a
cell is responsible for an object (YOLO v1 picks it by IoU with the prediction). With
l_coord = 1 and B = 1 this is the notes' formula term for term; YOLO v1 used l_coord = 5.
"""
import numpy as np

from ...device import like
from ...function import require_float
from ...tensor import Tensor
from .loss import binary_cross_entropy_with_logits, check_reduction


def detection_weights(target, num_boxes, lambda_coord, lambda_noobj):
    """Per-entry weights of the logistic (BCE) and the linear (1/2 squared error) terms, and
    the BCE targets: arrays of target's shape built from the object indicators."""
    logistic = np.zeros(target.shape, dtype=target.dtype, like=like(target))
    linear = np.zeros(target.shape, dtype=target.dtype, like=like(target))
    any_object = np.zeros(target.shape[:-1], dtype=bool, like=like(target))
    for box in range(num_boxes):
        x, y, w, h, c = range(5 * box, 5 * box + 5)
        present = target[..., c] > 0
        any_object |= present
        logistic[..., x] = logistic[..., y] = lambda_coord * present
        linear[..., w] = linear[..., h] = lambda_coord * present
        logistic[..., c] = np.where(present, 1.0, lambda_noobj)
    logistic[..., 5 * num_boxes:] = any_object[..., None]
    bce_target = np.where(logistic > 0, target, 0).astype(target.dtype)
    return logistic, linear, bce_target


def _check(input, target, num_classes, num_boxes):
    require_float("detection_loss", input)
    width = 5 * num_boxes + num_classes
    if input.ndim != 4 or tuple(input.shape) != tuple(target.shape) or input.shape[-1] != width:
        raise ValueError(f"detection_loss: expected prediction and target of shape (N, S, S, "
                         f"{width}) = (N, S, S, B*5 + classes) with B={num_boxes}, classes="
                         f"{num_classes}; got {tuple(input.shape)} and {tuple(target.shape)}")


def detection_loss(input, target, num_classes, num_boxes=1, lambda_coord=1.0, lambda_noobj=0.5,
                   reduction="mean"):
    """The loss in this module's docstring. ``reduction``: 'mean' (sum over cells, mean over
    the N images), 'sum', or 'none' (per cell, shape (N, S, S))."""
    check_reduction("detection_loss", reduction)
    _check(input, target, num_classes, num_boxes)
    target = target.array if isinstance(target, Tensor) else np.asarray(target)
    logistic, linear, bce_target = detection_weights(target, num_boxes, lambda_coord, lambda_noobj)
    if np.any((logistic > 0) & ((target < 0) | (target > 1))):
        raise ValueError("detection_loss: target x, y, confidence and class entries must lie in "
                         "[0, 1] where they count (they are the logistic outputs' targets)")
    bce = binary_cross_entropy_with_logits(input, bce_target, weight=logistic, reduction="none")
    diff = input - np.where(linear > 0, target, 0).astype(target.dtype)
    per_cell = (bce + diff * diff * (0.5 * linear)).sum(dim=-1)
    if reduction == "none":
        return per_cell
    total = per_cell.sum()
    return total if reduction == "sum" else total / input.shape[0]
