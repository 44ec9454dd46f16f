"""Losses as Functions; cross-entropy runs the device's fused softmax_ce kernel."""
import numpy as np

from ...device import like
from ...function import Function, require_float
from ...functions import where
from ...kernels import for_device
from ...meta import MetaArray
from ...ops import same_meta
from ...tensor import Tensor
from .vector import pairwise_distance

_REDUCTIONS = ("mean", "sum", "none")


def _check_class_target(name, input, target):
    """Check (N, C) or (N, C, d1, ...) input against (N) or (N, d1, ...) integer class indices."""
    shape = tuple(input.shape)
    expected = shape[:1] + shape[2:] if input.ndim > 1 else ()
    if input.ndim < 1 or tuple(target.shape) != expected:
        raise ValueError(f"{name}: input of shape {shape} needs a target of shape {expected} "
                         f"(class indices), got {tuple(target.shape)}")
    if not np.issubdtype(target.dtype, np.integer):
        raise TypeError(f"{name}: target must hold integer class indices, got dtype {target.dtype}")


def _rows_last(array):
    """Move the class axis (1) last and flatten the rest: (N, C, d...) -> (N * prod(d), C)."""
    if array.ndim == 1:
        return array[None, :]
    if array.ndim > 2:
        array = np.moveaxis(array, 1, -1)
    return np.ascontiguousarray(array.reshape(-1, array.shape[-1]), like=like(array))


def _rows_back(grad_rows, shape):
    """Inverse of ``_rows_last``."""
    if len(shape) == 1:
        return grad_rows[0]
    if len(shape) > 2:
        moved = (shape[0],) + shape[2:] + (shape[1],)
        return np.ascontiguousarray(np.moveaxis(grad_rows.reshape(moved), -1, 1), like=like(grad_rows))
    return grad_rows


def _check_classes(name, target, n_classes, ignore_index):
    """target != ignore_index, after a check that every other target is a class index."""
    valid = target != ignore_index
    if not target.size or (target.min() >= 0 and target.max() < n_classes):
        return valid
    bad = valid & ((target < 0) | (target >= n_classes))
    if bad.any():
        raise IndexError(f"{name}: target {int(target[bad][0])} is out of range for "
                         f"{n_classes} classes (expected 0..{n_classes - 1} or ignore_index)")
    return valid


def _row_scale(weights, reduction):
    """The factor of every row's loss in the reduced loss: None for 'none', 1 for 'sum', 1 / (the
    rows' weights summed) for 'mean'; d(reduced)/d(loss_i) is that times the row's weight."""
    if reduction == "none":
        return None
    return weights.dtype.type(1) if reduction == "sum" else 1 / weights.sum(dtype=weights.dtype)


def _reduce_rows(losses, scale, out_shape):
    """The reduced loss of per-row losses: themselves (``out_shape``) for scale None, else scale
    times their sum."""
    return losses.reshape(out_shape) if scale is None else losses.sum(dtype=losses.dtype) * scale


def loss_meta(input, target, *options):
    """A loss is a scalar, or per-sample values (target's shape) with reduction 'none'."""
    return MetaArray(target.shape if options[-1] == "none" else (), input.dtype)


class CrossEntropy(Function):
    """Fused log-softmax + NLL, formula in kernels/*/softmax_ce: one kernel forward, and with
    reduction 'none' one backward. Reduced ('mean', 'sum'), the forward kernel writes the gradient
    of the reduced loss itself, and backward passes it on, times the upstream gradient unless
    that is a host 1."""

    infer = staticmethod(loss_meta)

    @staticmethod
    def forward(ctx, logits, target, class_weight, ignore_index, smoothing, reduction):
        kernel = for_device(ctx.device, "softmax_ce")
        rows = _rows_last(logits)
        flat_target = np.ascontiguousarray(target.reshape(-1), dtype=np.int64, like=like(logits))
        n_classes = rows.shape[1]
        valid = _check_classes("cross_entropy", flat_target, n_classes, ignore_index)
        if class_weight is None:
            weight = np.ones(n_classes, dtype=logits.dtype, like=like(logits))
            row_weights = valid.astype(logits.dtype)
        else:
            weight = np.ascontiguousarray(class_weight, dtype=logits.dtype, like=like(logits))
            row_weights = np.where(valid, weight[np.where(valid, flat_target, 0)], 0).astype(logits.dtype)
        scale = _row_scale(row_weights, reduction)
        # kept is the gradient of the reduced loss, or (scale None) what the device's backward
        # kernel needs besides the logits (cpu: the exponentials and 1 / their sums)
        losses, kept = kernel.cross_entropy_forward(rows, flat_target, weight, ignore_index, smoothing, scale)
        ctx.save_for_backward(rows, flat_target, kept, weight)
        ctx.options = (ignore_index, smoothing, scale, logits.shape)
        return np.asarray(_reduce_rows(losses, scale, target.shape), dtype=logits.dtype, like=like(logits))

    @staticmethod
    def backward(ctx, grad):
        rows, flat_target, kept, weight = ctx.saved_arrays
        ignore_index, smoothing, scale, shape = ctx.options
        if scale is not None:  # kept is the gradient (the engine copies what ctx still holds)
            d_rows = kept if type(grad) is np.ndarray and grad == 1 else (kept * grad).astype(kept.dtype, copy=False)
            return _rows_back(d_rows, shape), None, None
        grad_rows = np.ascontiguousarray(grad.reshape(-1), dtype=rows.dtype, like=like(rows))
        d_rows = for_device(ctx.device, "softmax_ce").cross_entropy_backward(
            rows, flat_target, kept, grad_rows, weight, ignore_index, smoothing)
        return _rows_back(d_rows, shape), None, None


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """L = -sum_c q_c log softmax(x)_c, q = (1 - e) onehot(t) + e / C;  dL/dx = softmax(x) - q."""
    check_reduction("cross_entropy", reduction)
    require_float("cross_entropy", input)
    _check_class_target("cross_entropy", input, target)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    weight = weight.array if isinstance(weight, Tensor) else weight
    return CrossEntropy.apply(input, target, weight, int(ignore_index), float(label_smoothing), reduction)


class NLLLoss(Function):
    """L_i = -w_t logp[i, t_i];  dlogp[i, c] = -w_t 1[c = t_i] (scaled by the reduction)."""

    infer = staticmethod(loss_meta)

    @staticmethod
    def forward(ctx, logp, target, class_weight, ignore_index, reduction):
        rows = _rows_last(logp)
        flat_target = target.reshape(-1).astype(np.int64)
        valid = _check_classes("nll_loss", flat_target, rows.shape[1], ignore_index)
        weight = (np.ones(rows.shape[1], logp.dtype, like=like(logp)) if class_weight is None
                  else np.asarray(class_weight, like=like(logp)))
        safe_target = np.where(valid, flat_target, 0)
        row_weights = np.where(valid, weight[safe_target], 0).astype(logp.dtype)
        losses = -rows[np.arange(len(rows)), safe_target] * row_weights
        scale = _row_scale(row_weights, reduction)
        ctx.options = (safe_target, row_weights, scale, rows.shape, logp.shape)
        return np.asarray(_reduce_rows(losses, scale, target.shape), dtype=logp.dtype, like=like(logp))

    @staticmethod
    def backward(ctx, grad):
        safe_target, row_weights, scale, rows_shape, shape = ctx.options
        per_row = grad.reshape(-1) if scale is None else scale * grad
        d_rows = np.zeros(rows_shape, dtype=row_weights.dtype, like=like(row_weights))
        d_rows[np.arange(rows_shape[0]), safe_target] = -row_weights * per_row
        return _rows_back(d_rows, shape), None, None


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    check_reduction("nll_loss", reduction)
    require_float("nll_loss", input)
    _check_class_target("nll_loss", input, target)
    weight = weight.array if isinstance(weight, Tensor) else weight
    return NLLLoss.apply(input, target, weight, int(ignore_index), reduction)


# ---------------------------------------------------------------- regression and binary losses

def check_reduction(name, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_same_shape(name, input, target):
    require_float(name, input)
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(f"{name}: input of shape {tuple(input.shape)} and target of shape "
                         f"{tuple(target.shape)} differ; reshape one so they match")


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def mse_loss(input, target, reduction="mean"):
    """L = (y - t)^2 (then reduced);  dL/dy = 2 (y - t)."""
    check_reduction("mse_loss", reduction)
    _check_same_shape("mse_loss", input, target)
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input, target, reduction="mean"):
    """L = |y - t|;  dL/dy = sign(y - t)."""
    check_reduction("l1_loss", reduction)
    _check_same_shape("l1_loss", input, target)
    return _reduce((input - target).abs(), reduction)


class BinaryCrossEntropy(Function):
    """L = -w (t log y + (1 - t) log(1 - y)), logs clamped at -100 (as PyTorch);
    dL/dy = w (y - t) / max(y (1 - y), 1e-12)."""

    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, y, t, weight):
        with np.errstate(divide="ignore"):
            loss = -(t * np.maximum(np.log(y), -100) + (1 - t) * np.maximum(np.log1p(-y), -100))
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(y, t, weight)
        return loss.astype(y.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        y, t, weight = ctx.saved_arrays
        dy = grad * (y - t) / np.maximum(y * (1 - y), 1e-12)
        if weight is not None:
            dy = dy * weight
        return dy.astype(y.dtype, copy=False), None, None


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    check_reduction("binary_cross_entropy", reduction)
    _check_same_shape("binary_cross_entropy", input, target)
    if ((input.array < 0) | (input.array > 1)).any():
        raise ValueError("binary_cross_entropy: input must hold probabilities in [0, 1]; "
                         "for logits use binary_cross_entropy_with_logits")
    weight = weight.array if isinstance(weight, Tensor) else weight
    return _reduce(BinaryCrossEntropy.apply(input, _as_data(target), weight), reduction)


class BinaryCrossEntropyWithLogits(Function):
    """Stable from logits x, with pos_weight p:  L = (1 - t) x + (1 + (p - 1) t) softplus(-x),
    softplus(-x) = max(-x, 0) + log(1 + e^-|x|);  dL/dx = (1 - t) - (1 + (p - 1) t) sigmoid(-x)
    (p = 1: sigmoid(x) - t)."""

    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x, t, weight, pos_weight):
        softplus_neg = np.maximum(-x, 0) + np.log1p(np.exp(-np.abs(x)))
        coef = 1 if pos_weight is None else 1 + (pos_weight - 1) * t
        loss = (1 - t) * x + coef * softplus_neg
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(x, t, weight, coef)
        return loss.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x, t, weight, coef = ctx.saved_arrays
        half = x.dtype.type(0.5)
        sigmoid_neg = half - half * np.tanh(half * x)
        dx = grad * ((1 - t) - coef * sigmoid_neg)
        if weight is not None:
            dx = dx * weight
        return dx.astype(x.dtype, copy=False), None, None, None


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    check_reduction("binary_cross_entropy_with_logits", reduction)
    _check_same_shape("binary_cross_entropy_with_logits", input, target)
    return _reduce(BinaryCrossEntropyWithLogits.apply(
        input, _as_data(target), _as_data(weight), _as_data(pos_weight)), reduction)


def _as_data(value):
    return value.array if isinstance(value, Tensor) else value


# ---------------------------------------------------------------- robust, divergence and margin losses

class SmoothL1(Function):
    """Elementwise, d = y - t:  L = scale (d^2 / (2 beta) if |d| < beta else |d| - beta / 2);
    dL/dy = scale clip(d / beta, -1, 1) (sign(d) for beta = 0), dL/dt = -dL/dy.
    smooth_l1_loss has scale 1; huber_loss(delta) is delta * smooth_l1_loss(beta=delta)."""

    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, y, t, beta, scale):
        d = y - t
        size = np.abs(d)
        with np.errstate(divide="ignore", invalid="ignore"):
            loss = np.where(size < beta, 0.5 * d * d / beta, size - 0.5 * beta)
        ctx.save_for_backward(d)
        ctx.options = (beta, scale)
        return (scale * loss).astype(y.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (d,) = ctx.saved_arrays
        beta, scale = ctx.options
        slope = np.sign(d) if beta == 0 else np.clip(d / beta, -1, 1)
        dy = (scale * grad * slope).astype(d.dtype, copy=False)
        return dy, (-dy if ctx.needs_input_grad[1] else None), None, None


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    """L = d^2 / (2 beta) where |d| < beta, else |d| - beta / 2 (d = input - target); SmoothL1."""
    check_reduction("smooth_l1_loss", reduction)
    _check_same_shape("smooth_l1_loss", input, target)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    return _reduce(SmoothL1.apply(input, target, beta=float(beta), scale=1.0), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0):
    """L = d^2 / 2 where |d| < delta, else delta (|d| - delta / 2); SmoothL1 with scale delta."""
    check_reduction("huber_loss", reduction)
    _check_same_shape("huber_loss", input, target)
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")
    return _reduce(SmoothL1.apply(input, target, beta=float(delta), scale=float(delta)), reduction)


class KLDivergence(Function):
    """Pointwise KL divergence of the log-probabilities x from the target t:
    L = t (log t - x) (0 where t = 0);  dL/dx = -t,  dL/dt = log t + 1 - x (t > 0; -x at t = 0).
    log_target (t = log q): L = e^t (t - x);  dL/dx = -e^t,  dL/dt = e^t (t - x + 1)."""

    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x, t, log_target):
        if log_target:
            loss = np.exp(t) * (t - x)
        else:
            positive = t > 0
            loss = np.where(positive, t * (np.log(np.where(positive, t, 1)) - x), -t * x)
        ctx.save_for_backward(x, t)
        ctx.log_target = log_target
        return loss.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x, t = ctx.saved_arrays
        if ctx.log_target:
            q = np.exp(t)
            dx, dt = -q, q * (t - x + 1)
        else:
            positive = t > 0
            dx = -t
            dt = np.where(positive, np.log(np.where(positive, t, 1)) + 1 - x, -x)
        return ((grad * dx).astype(x.dtype, copy=False),
                (grad * dt).astype(x.dtype, copy=False) if ctx.needs_input_grad[1] else None)


def kl_div(input, target, reduction="mean", log_target=False):
    """KL divergence with ``input`` as log-probabilities (KLDivergence); reduction "batchmean"
    divides the sum by the batch size (the true KL divergence), "mean" by the element count."""
    if reduction != "batchmean":
        check_reduction("kl_div", reduction)
    _check_same_shape("kl_div", input, target)
    loss = KLDivergence.apply(input, target, log_target=bool(log_target))
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction)


def _check_pair_target(name, x1, x2, target):
    """x1, x2 of one shape (N, D) or (D,) and a target of shape (N,) or ()."""
    require_float(name, x1, "input1")
    if tuple(x1.shape) != tuple(x2.shape) or x1.ndim not in (1, 2) or tuple(target.shape) != tuple(x1.shape[:-1]):
        raise ValueError(f"{name}: expected input1 and input2 of one shape (N, D) or (D,) and a target "
                         f"of shape (N,) or (), got {tuple(x1.shape)}, {tuple(x2.shape)} and "
                         f"{tuple(target.shape)}")


def cosine_embedding_loss(input1, input2, target, margin=0.0, reduction="mean"):
    """cos = x1.x2 / sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12)) per row (PyTorch's formula);
    L = 1 - cos where y = 1, max(0, cos - margin) where y = -1; gradients through cos."""
    check_reduction("cosine_embedding_loss", reduction)
    _check_pair_target("cosine_embedding_loss", input1, input2, target)
    cos = (input1 * input2).sum(-1) / (((input1 * input1).sum(-1) + 1e-12)
                                       * ((input2 * input2).sum(-1) + 1e-12)).sqrt()
    loss = where(target == 1, 1 - cos, 0.0) + where(target == -1, (cos - margin).clip(min=0.0), 0.0)
    return _reduce(loss, reduction)


def margin_ranking_loss(input1, input2, target, margin=0.0, reduction="mean"):
    """L = max(0, -y (x1 - x2) + margin);  dL/dx1 = -y, dL/dx2 = y where the hinge is active."""
    check_reduction("margin_ranking_loss", reduction)
    require_float("margin_ranking_loss", input1, "input1")
    if not tuple(input1.shape) == tuple(input2.shape) == tuple(target.shape):
        raise ValueError(f"margin_ranking_loss: input1, input2 and target must have one shape, got "
                         f"{tuple(input1.shape)}, {tuple(input2.shape)} and {tuple(target.shape)}")
    return _reduce((-target * (input1 - input2) + margin).clip(min=0.0), reduction)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2.0, eps=1e-6, swap=False,
                        reduction="mean"):
    """L = max(d(a, p) - d(a, n) + margin, 0), d the pairwise p-distance ||u - v + eps||_p;
    swap uses min(d(a, n), d(p, n)) for the negative. Gradients through the distances
    (VectorNorm: d||v||_p / dv = sign(v) |v|^(p-1) / ||v||^(p-1))."""
    check_reduction("triplet_margin_loss", reduction)
    require_float("triplet_margin_loss", anchor, "anchor")
    if not tuple(anchor.shape) == tuple(positive.shape) == tuple(negative.shape) or anchor.ndim not in (1, 2):
        raise ValueError(f"triplet_margin_loss: anchor, positive and negative must have one shape (N, D) "
                         f"or (D,), got {tuple(anchor.shape)}, {tuple(positive.shape)} and "
                         f"{tuple(negative.shape)}")
    d_positive = pairwise_distance(anchor, positive, p, eps)
    d_negative = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_negative = d_negative.minimum(pairwise_distance(positive, negative, p, eps))
    return _reduce((d_positive - d_negative + margin).clip(min=0.0), reduction)
