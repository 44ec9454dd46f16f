"""Gradient utilities."""
import numpy as np


def clip_grad_norm_(parameters, max_norm, norm_type=2.0):
    """Scale all gradients by min(1, max_norm / (||g|| + 1e-6)), ||g|| the norm of all of them
    together; returns ||g|| (a float), as torch.nn.utils.clip_grad_norm_."""
    grads = [p.grad.array for p in _as_list(parameters) if p.grad is not None]
    if not grads:
        return 0.0
    norm_type = float(norm_type)
    if norm_type == np.inf:
        total = max(float(np.abs(g).max()) for g in grads)
    else:
        total = float(sum(float(np.sum(np.abs(g, dtype=np.float64) ** norm_type)) for g in grads)
                      ** (1.0 / norm_type))
    if not np.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total gradient norm is {total}")
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g *= g.dtype.type(coef)
    return total


def _as_list(parameters):
    from ..tensor import Tensor
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)
