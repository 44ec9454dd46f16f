"""Low-rank dense layer y = U V W x + b as one Function with the chain rule written out."""
from ...function import Function, require_float
from ...meta import MetaArray


class LowRankLinear(Function):
    """y = U V W x + b, U (out, r), V (r, r), W (r, in), through a = W x, c = V a, y = U c + b.

    Backward, the chain of the notes ("Dense: low rank"):
        dc = U^T dy,  da = V^T dc,  dx = W^T da;   dU = dy c^T,  dV = dc a^T,  dW = da x^T,  db = dy.
    With rows as samples (A = X W^T, C = A V^T, Y = C U^T + b) the same reads
        dC = dY U,  dA = dC V,  dX = dA W;   dU = dY^T C,  dV = dC^T A,  dW = dA^T X,  db = sum_rows dY.
    """

    @staticmethod
    def infer(x, u, v, w, bias=None):
        return MetaArray(x.shape[:-1] + u.shape[:1], x.dtype)

    @staticmethod
    def forward(ctx, x, u, v, w, bias=None):
        a = x @ w.T
        c = a @ v.T
        y = c @ u.T
        if bias is not None:
            y += bias
        ctx.save_for_backward(x, a, c, u, v, w)
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, grad):
        x, a, c, u, v, w = ctx.saved_arrays
        needs = ctx.needs_input_grad
        rows = grad.reshape(-1, grad.shape[-1])
        dc = grad @ u
        da = dc @ v
        dx = da @ w if needs[0] else None
        du = rows.T @ c.reshape(-1, c.shape[-1]) if needs[1] else None
        dv = dc.reshape(-1, dc.shape[-1]).T @ a.reshape(-1, a.shape[-1]) if needs[2] else None
        dw = da.reshape(-1, da.shape[-1]).T @ x.reshape(-1, x.shape[-1]) if needs[3] else None
        db = rows.sum(axis=0) if ctx.has_bias and needs[4] else None
        return dx, du, dv, dw, db


def low_rank_linear(input, u, v, w, bias=None):
    """y = U V W x + b over the last axis of ``input``; U (out, r), V (r, r), W (r, in)."""
    require_float("low_rank_linear", input)
    rank = v.shape[0]
    if u.shape[1:] != (rank,) or v.shape != (rank, rank) or w.shape[:1] != (rank,):
        raise ValueError(f"low_rank_linear: factors of shapes U {tuple(u.shape)}, V {tuple(v.shape)}, "
                         f"W {tuple(w.shape)} do not chain as (out, r), (r, r), (r, in)")
    if input.ndim < 1 or input.shape[-1] != w.shape[1]:
        raise ValueError(f"low_rank_linear: expected input of shape (*, {w.shape[1]}), got "
                         f"{tuple(input.shape)} (W of shape {tuple(w.shape)})")
    return LowRankLinear.apply(input, u, v, w, bias)
