"""Scaled dot-product attention as one Function, and the mask conventions around it.

Over leading batch axes (B = their product), queries Q (B, L, E), keys K (B, S, E), values
V (B, S, Ev), an additive mask M broadcastable to (*batch, L, S) and c = scale:

    S = c Q K^T + M,   P = softmax_rows(S),   O = P V                     (forward)
    dV = P^T dO,   dP = dO V^T,   dS = P * (dP - rowsum(dP * P)),
    dQ = c dS K,   dK = c dS^T Q,   dM = dS (summed over M's broadcast axes)  (backward)

With dropout, P' = P * m / (1 - p) replaces P in O = P' V and dV, and dP is multiplied by
m / (1 - p) before the softmax backward. The forward keeps P (B, L, S) for the backward: it
costs one (L, S) matrix per head, and recomputing it from a stored log-sum-exp would cost a
third matrix product Q K^T per backward, the most expensive step of the three here.
The products are the device's ``batched_matmul`` (BLAS on the cpu); the softmax and its
backward are one fused kernel each (``kernels/<device>/attention.py``).
"""
import math

import numpy as np

from ...device import like
from ...function import Function
from ...kernels import for_device
from ...meta import MetaArray
from ...ops import unbroadcast
from ...random import default_generator
from ...tensor import Tensor


class ScaledDotProductAttention(Function):
    """O = softmax(c Q K^T + M) V; the gradients in the module docstring."""

    @staticmethod
    def infer(q, k, v, mask=None, **options):
        return MetaArray(q.shape[:-1] + v.shape[-1:], q.dtype)

    @staticmethod
    def forward(ctx, q, k, v, mask, dropout_p, causal, scale):
        batch, queries, (keys, value_width) = q.shape[:-2], q.shape[-2], v.shape[-2:]
        q3, k3, v3 = (np.ascontiguousarray(a.reshape(-1, *a.shape[-2:]), dtype=q.dtype, like=like(q))
                      for a in (q, k, v))
        kernels = for_device(ctx.device, "attention")
        scores = kernels.batched_matmul(q3 * q.dtype.type(scale), k3, transpose_b=True)
        if mask is not None:
            view = scores.reshape(batch + (queries, keys))
            view += mask.astype(q.dtype, copy=False)
        probs = kernels.softmax_rows(scores, causal)
        keep = None
        if dropout_p > 0:
            keep = (default_generator().random(probs.shape) >= dropout_p) * q.dtype.type(1 / (1 - dropout_p))
            used = probs * keep
        else:
            used = probs
        ctx.save_for_backward(q3, k3, v3, probs, keep)
        ctx.options = (scale, q.shape, k.shape, v.shape, None if mask is None else mask.shape)
        return kernels.batched_matmul(used, v3).reshape(batch + (queries, value_width))

    @staticmethod
    def backward(ctx, grad):
        q3, k3, v3, probs, keep = ctx.saved_arrays
        scale, q_shape, k_shape, v_shape, mask_shape = ctx.options
        grad = np.ascontiguousarray(grad.reshape(-1, *grad.shape[-2:]), dtype=q3.dtype, like=like(q3))
        kernels = for_device(ctx.device, "attention")
        used = probs if keep is None else probs * keep
        need_dq, need_dk, need_dv = ctx.needs_input_grad[:3]
        dv = kernels.batched_matmul(used, grad, transpose_a=True).reshape(v_shape) if need_dv else None
        dp = kernels.batched_matmul(grad, v3, transpose_b=True)
        if keep is not None:
            dp *= keep
        ds = kernels.softmax_rows_backward(probs, dp)
        dmask = None
        if mask_shape is not None and ctx.needs_input_grad[3]:
            dmask = unbroadcast(ds.reshape(q_shape[:-1] + k_shape[-2:-1]), mask_shape)
        c = q3.dtype.type(scale)
        dq = (kernels.batched_matmul(ds, k3) * c).reshape(q_shape) if need_dq else None
        dk = (kernels.batched_matmul(ds, q3, transpose_a=True) * c).reshape(k_shape) if need_dk else None
        return dq, dk, dv, dmask


def additive_mask(mask, dtype, allowed):
    """A mask as an additive float array (or Tensor, kept so it can get a gradient): a bool mask
    becomes 0 where a query may attend and -inf elsewhere; ``allowed`` says what True means
    (True = take part in scaled_dot_product_attention, True = masked out in MultiheadAttention)."""
    if mask is None:
        return None
    data = mask.array if isinstance(mask, Tensor) else mask if hasattr(mask, "dtype") else np.asarray(mask)
    if data.dtype == np.bool_:
        blocked = np.logical_not(data) if allowed else data
        return np.where(blocked, -np.inf, 0).astype(dtype)
    return mask if isinstance(mask, Tensor) else data.astype(dtype, copy=False)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 scale=None):
    """softmax(query key^T * scale + mask) value over the last two axes, leading axes batched.

    query (*, L, E), key (*, S, E), value (*, S, Ev) -> (*, L, Ev). ``attn_mask`` broadcastable
    to (*, L, S): bool (True = this query may attend this key, PyTorch's convention here) or
    float (added to the scores). ``is_causal``: query i attends keys j <= i. ``scale`` defaults to
    1 / sqrt(E). ``dropout_p`` drops attention weights (pass 0 in evaluation, as PyTorch).
    A query whose every key is masked gets zeros."""
    q_shape, k_shape, v_shape = (tuple(t.shape) for t in (query, key, value))
    if (query.ndim < 2 or key.ndim != query.ndim or value.ndim != query.ndim
            or q_shape[:-2] != k_shape[:-2] or k_shape[:-2] != v_shape[:-2]
            or q_shape[-1] != k_shape[-1] or k_shape[-2] != v_shape[-2]):
        raise ValueError(f"scaled_dot_product_attention: expected query (*, L, E), key (*, S, E) and "
                         f"value (*, S, Ev) with the same leading axes, got {q_shape}, {k_shape}, {v_shape}")
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: pass either attn_mask or is_causal, not both")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be in [0, 1), got {dropout_p}")
    mask = additive_mask(attn_mask, query.dtype, allowed=True)
    if mask is not None:
        try:
            np.broadcast_shapes(tuple(mask.shape), q_shape[:-1] + k_shape[-2:-1])
        except ValueError:
            raise ValueError(f"scaled_dot_product_attention: attn_mask of shape {tuple(mask.shape)} does "
                             f"not broadcast to (*, L, S) = {q_shape[:-1] + k_shape[-2:-1]}") from None
    scale = 1.0 / math.sqrt(q_shape[-1]) if scale is None else float(scale)
    return ScaledDotProductAttention.apply(query, key, value, mask, dropout_p=float(dropout_p),
                                           causal=bool(is_causal), scale=scale)


def attention_weights(query, key, attn_mask=None, is_causal=False, scale=None):
    """P = softmax(query key^T * scale + mask) as a constant Tensor (no graph): the weights that
    MultiheadAttention returns with need_weights=True, recomputed from the inputs (one more
    product Q K^T) so that the attention itself keeps a single-output Function."""
    if query.device == "meta":
        return Tensor._from_array(MetaArray(query.shape[:-1] + key.shape[-2:-1], query.dtype), query.device)
    q, k = query.array, key.array
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    kernels = for_device(query.device, "attention")
    q3, k3 = (np.ascontiguousarray(a.reshape(-1, *a.shape[-2:]), dtype=q.dtype, like=like(q)) for a in (q, k))
    scores = kernels.batched_matmul(q3 * q.dtype.type(scale), k3, transpose_b=True)
    mask = additive_mask(attn_mask, q.dtype, allowed=True)
    if mask is not None:
        view = scores.reshape(q.shape[:-1] + k.shape[-2:-1])
        view += mask.array if isinstance(mask, Tensor) else mask
    probs = kernels.softmax_rows(scores, bool(is_causal))
    return Tensor._from_array(probs.reshape(q.shape[:-1] + k.shape[-2:-1]), query.device)
