"""Vectors along an axis: one_hot, p-norms, normalize, cosine_similarity, pairwise_distance."""
import numpy as np

from ...device import like
from ...function import Function, require_float
from ...meta import MetaArray
from ...tensor import Tensor


def one_hot(tensor, num_classes=-1):
    """int64 tensor of shape tensor.shape + (num_classes,): 1 at each index, 0 elsewhere;
    num_classes=-1 takes the largest index + 1. No gradient (the input holds indices)."""
    if not isinstance(tensor, Tensor) or not np.issubdtype(tensor.dtype, np.integer):
        raise TypeError(f"one_hot: expected an integer tensor of class indices, got "
                        f"{getattr(tensor, 'dtype', type(tensor).__name__)}")
    index = tensor.array
    if num_classes == -1:
        num_classes = int(index.max()) + 1 if index.size else 0
    if index.size and (int(index.min()) < 0 or int(index.max()) >= num_classes):
        raise ValueError(f"one_hot: class values must be in [0, {num_classes}), got "
                         f"{int(index.min())}..{int(index.max())} (input of shape {tuple(index.shape)})")
    classes = np.arange(num_classes, like=like(index))
    return Tensor._from_array((index[..., None] == classes).astype(np.int64), tensor.device)


class VectorNorm(Function):
    """n = (sum_k |x_k|^p)^(1/p) along ``dim``;  dx_k = dn sign(x_k) |x_k|^(p-1) / n^(p-1)
    (0 where n = 0). p = inf: n = max_k |x_k|, dn shared equally among the entries reaching it."""

    @staticmethod
    def infer(x, p, dim, keepdim):
        shape = list(x.shape)
        if keepdim:
            shape[dim] = 1
        else:
            del shape[dim]
        return MetaArray(tuple(shape), x.dtype)

    @staticmethod
    def forward(ctx, x, p, dim, keepdim):
        magnitude = np.abs(x)
        if p == np.inf:
            norm = magnitude.max(axis=dim, keepdims=True)
        else:
            norm = (magnitude ** p).sum(axis=dim, keepdims=True) ** (1 / p)
        ctx.save_for_backward(x, norm)
        ctx.options = (p, dim)
        return (norm if keepdim else norm.squeeze(dim)).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x, norm = ctx.saved_arrays
        p, dim = ctx.options
        grad = grad.reshape(norm.shape)
        magnitude = np.abs(x)
        if p == np.inf:
            winners = magnitude == norm
            share = winners / winners.sum(axis=dim, keepdims=True)
            return (grad * np.sign(x) * share).astype(x.dtype, copy=False)
        safe = np.where(norm > 0, norm, 1)
        dx = grad * np.sign(x) * (magnitude / safe) ** (p - 1)
        return np.where(norm > 0, dx, 0).astype(x.dtype, copy=False)


def vector_norm(input, p=2.0, dim=-1, keepdim=False):
    """The p-norm of ``input`` along ``dim`` (VectorNorm)."""
    require_float("vector_norm", input)
    p = float(p)
    if not p > 0:
        raise ValueError(f"vector_norm: p must be > 0 (or inf), got {p}")
    if not -input.ndim <= dim < max(input.ndim, 1):
        raise IndexError(f"vector_norm: dim {dim} is out of range for input of shape {tuple(input.shape)}")
    return VectorNorm.apply(input, p=p, dim=dim % input.ndim, keepdim=keepdim)


def normalize(input, p=2.0, dim=1, eps=1e-12):
    """y = x / max(||x||_p, eps) along ``dim``; the gradient flows through the norm (VectorNorm)
    and the clamp (none below eps), as PyTorch."""
    return input / vector_norm(input, p, dim, keepdim=True).clip(min=eps)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """cos = sum_dim (x1 / max(||x1||, eps)) (x2 / max(||x2||, eps)), x1 and x2 broadcast,
    as PyTorch computes it; gradients through the norms (VectorNorm)."""
    require_float("cosine_similarity", x2, "x2")
    return ((x1 / vector_norm(x1, 2, dim, keepdim=True).clip(min=eps))
            * (x2 / vector_norm(x2, 2, dim, keepdim=True).clip(min=eps))).sum(dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """d = ||x1 - x2 + eps||_p along the last axis (PyTorch adds eps to the difference)."""
    return vector_norm(x1 - x2 + eps, p, -1, keepdim)
