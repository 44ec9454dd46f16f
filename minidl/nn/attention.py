"""MultiheadAttention, with PyTorch's arguments, masks, outputs and parameter names.

With h heads of width d = E / h and the inputs in (N, L, E) order:
    Q = x_q W_q^T + b_q,  K = x_k W_k^T + b_k,  V = x_v W_v^T + b_v   (split into h heads)
    head_i = softmax(Q_i K_i^T / sqrt(d) + M) V_i,   y = concat(head_1 .. head_h) W_o^T + b_o
W_q, W_k, W_v are the three (E, E) blocks of ``in_proj_weight`` (3E, E), or ``q_proj_weight``,
``k_proj_weight`` (E, kdim), ``v_proj_weight`` (E, vdim) when kdim or vdim differ from E; the
output projection is ``out_proj``. The backward is that of its parts: F.linear's
(dX = dY W, dW = dY^T X, db = sum dY), the reshapes', and scaled_dot_product_attention's.
"""
import numpy as np

from . import functional as F
from . import init
from .functional.attention import additive_mask, attention_weights
from .conv import named_errors
from .linear import Linear
from .module import Module
from .parameter import Parameter


class MultiheadAttention(Module):
    """Multi-head attention as ``torch.nn.MultiheadAttention`` (no add_bias_kv / add_zero_attn).

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)`` -> (output, weights or None). Inputs are
    (L, N, E), or (N, L, E) with ``batch_first``, or unbatched (L, E). Masks follow PyTorch's
    MultiheadAttention convention: bool True = *not* allowed to attend; float masks are added.
    attn_mask is (L, S) or (N h, L, S); key_padding_mask is (N, S). ``is_causal`` without an
    attn_mask masks keys after each query. The returned weights (averaged over heads unless
    average_attn_weights=False) are constants computed before dropout; gradients flow through
    the output. A query with every key masked gets zeros (PyTorch's weights path gives NaN).
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, batch_first=False, kdim=None,
                 vdim=None, dtype=np.float32):
        super().__init__()
        self.embed_dim, self.num_heads = int(embed_dim), int(num_heads)
        self.kdim = self.embed_dim if kdim is None else int(kdim)
        self.vdim = self.embed_dim if vdim is None else int(vdim)
        self.dropout, self.batch_first = float(dropout), batch_first
        if self.embed_dim % self.num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim={embed_dim} must be divisible by "
                             f"num_heads={num_heads}")
        self.head_dim = self.embed_dim // self.num_heads
        self._qkv_same_embed_dim = self.kdim == self.embed_dim and self.vdim == self.embed_dim
        E = self.embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(np.empty((3 * E, E), dtype=dtype))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.register_parameter("in_proj_weight", None)
            self.q_proj_weight = Parameter(np.empty((E, E), dtype=dtype))
            self.k_proj_weight = Parameter(np.empty((E, self.kdim), dtype=dtype))
            self.v_proj_weight = Parameter(np.empty((E, self.vdim), dtype=dtype))
        if bias:
            self.in_proj_bias = Parameter(np.empty(3 * E, dtype=dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(E, E, bias=bias, dtype=dtype)
        self.reset_parameters()

    def reset_parameters(self):
        """As PyTorch: xavier_uniform_ projections, zero biases (out_proj.weight keeps Linear's init)."""
        for weight in (self.in_proj_weight, self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
            if weight is not None:
                init.xavier_uniform_(weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def _projections(self, query, key, value):
        """(Q, K, V) projected over the inputs' last axis, one GEMM per projection (or one for
        all three in self-attention)."""
        E, bias = self.embed_dim, self.in_proj_bias
        if self._qkv_same_embed_dim and query is key and key is value:  # self-attention: one product
            qkv = F.linear(query, self.in_proj_weight, bias)
            return qkv[..., :E], qkv[..., E:2 * E], qkv[..., 2 * E:]
        biases = (None, None, None) if bias is None else (bias[:E], bias[E:2 * E], bias[2 * E:])
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            weights = (w[:E], w[E:2 * E], w[2 * E:])
        else:
            weights = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        return tuple(F.linear(x, w, b) for x, w, b in zip((query, key, value), weights, biases))

    def _check(self, query, key, value):
        dims = (self.embed_dim, self.kdim, self.vdim)
        ranks = {query.ndim, key.ndim, value.ndim}
        if (len(ranks) != 1 or ranks - {2, 3}
                or any(t.shape[-1] != d for t, d in zip((query, key, value), dims))
                or key.shape[:-1] != value.shape[:-1]
                or (query.ndim == 3 and query.shape[1 - self.batch_first] != key.shape[1 - self.batch_first])):
            order = "(N, L, E)" if self.batch_first else "(L, N, E)"
            raise ValueError(f"expected query, key, value of shapes {order} or (L, E) with E = "
                             f"{self.embed_dim}, {self.kdim}, {self.vdim} and one batch and key length, "
                             f"got {tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")

    def _mask(self, attn_mask, key_padding_mask, batch, queries, keys, dtype, is_causal):
        """attn_mask and key_padding_mask merged into one additive (N, h | 1, L | 1, S) array."""
        if attn_mask is None and is_causal:
            attn_mask = np.triu(np.ones((queries, keys), dtype=bool), 1)
        mask = additive_mask(_constant(attn_mask), dtype, allowed=False)
        if mask is not None:
            if mask.shape == (queries, keys):
                mask = mask.reshape(1, 1, queries, keys)
            elif mask.shape == (batch * self.num_heads, queries, keys):
                mask = mask.reshape(batch, self.num_heads, queries, keys)
            else:
                raise ValueError(f"attn_mask should have shape ({queries}, {keys}) or "
                                 f"({batch * self.num_heads}, {queries}, {keys}), got {tuple(mask.shape)}")
        padding = additive_mask(_constant(key_padding_mask), dtype, allowed=False)
        if padding is not None:
            if padding.shape != (batch, keys):
                raise ValueError(f"key_padding_mask should have shape ({batch}, {keys}), got "
                                 f"{tuple(padding.shape)}")
            padding = padding.reshape(batch, 1, 1, keys)
            mask = padding if mask is None else mask + padding
        return mask

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        with named_errors(self):
            return self._attend(query, key, value, key_padding_mask, need_weights, attn_mask,
                                average_attn_weights, is_causal)

    def _attend(self, query, key, value, key_padding_mask, need_weights, attn_mask,
                average_attn_weights, is_causal):
        self._check(query, key, value)
        batched = query.ndim == 3
        if not batched:  # one sample: (L, E) is (1, L, E) in batch-first order
            same_qk, same_kv = query is key, key is value
            query = query.unsqueeze(0)
            key = query if same_qk else key.unsqueeze(0)
            value = key if same_kv else value.unsqueeze(0)
            if key_padding_mask is not None:
                key_padding_mask = _constant(key_padding_mask).reshape(1, -1)
        seq_first = batched and not self.batch_first
        batch_axis = 1 if seq_first else 0
        batch, queries, keys = query.shape[batch_axis], query.shape[1 - batch_axis], key.shape[1 - batch_axis]
        h, d = self.num_heads, self.head_dim
        # projections in the inputs' own order (one GEMM of all tokens each), then the heads as
        # (N, h, length, d)
        projected = self._projections(query, key, value)
        order = (1, 2, 0, 3) if seq_first else (0, 2, 1, 3)
        q, k, v = (t.reshape(*t.shape[:-1], h, d).permute(*order) for t in projected)
        meta = q.device == "meta"  # shapes only: masks change values, not shapes
        mask = None if meta else self._mask(attn_mask, key_padding_mask, batch, queries, keys, q.dtype, is_causal)
        heads = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                               dropout_p=self.dropout if self.training else 0.0)
        merged = heads.permute(*((2, 0, 1, 3) if seq_first else (0, 2, 1, 3)))
        output = self.out_proj(merged.reshape(query.shape))
        weights = None
        if need_weights:
            weights = attention_weights(q, k, mask)
            weights = weights.mean(1) if average_attn_weights else weights
            weights = weights if batched else weights.squeeze(0)
        return (output if batched else output.squeeze(0)), weights

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"


def _constant(mask):
    """A mask as a plain array on its device (masks take no gradient here), or None."""
    if mask is None:
        return None
    data = getattr(mask, "array", mask)
    return data if hasattr(data, "shape") else np.asarray(data)
