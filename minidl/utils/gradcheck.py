"""Finite-difference gradient check, as torch.autograd.gradcheck (run it in float64)."""
import numpy as np

from ..function import no_grad
from ..random import default_generator
from ..tensor import Tensor


def numerical_grads(fn, inputs, upstream, eps=1e-6):
    """d(sum(upstream * fn(*inputs)))/d(input) by central differences, for each input needing grad."""
    grads = []
    for x in inputs:
        if not (isinstance(x, Tensor) and x.requires_grad):
            grads.append(None)
            continue
        grad = np.zeros_like(x.array)
        flat = x.array.reshape(-1)  # a view: perturbs x in place
        for i in range(flat.size):
            saved = flat[i]
            with no_grad():
                flat[i] = saved + eps
                up = float(np.sum(upstream * fn(*inputs).array))
                flat[i] = saved - eps
                down = float(np.sum(upstream * fn(*inputs).array))
            flat[i] = saved
            grad.reshape(-1)[i] = (up - down) / (2 * eps)
        grads.append(grad)
    return grads


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, raise_exception=True):
    """Compare backward() of ``fn(*inputs)`` with central differences, under a random upstream
    gradient. Inputs needing grad must be float64 Tensors. Returns True, or raises with the
    input index and the largest difference."""
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {x.dtype}; finite differences need float64")
    output = fn(*inputs)
    upstream = default_generator().standard_normal(output.shape)
    for x in inputs:
        if isinstance(x, Tensor):
            x.grad = None
    output.backward(upstream)
    numeric = numerical_grads(fn, inputs, upstream, eps)
    for i, (x, expected) in enumerate(zip(inputs, numeric)):
        if expected is None:
            continue
        analytic = np.zeros_like(x.array) if x.grad is None else x.grad.array
        if not np.allclose(analytic, expected, atol=atol, rtol=rtol):
            worst = float(np.max(np.abs(analytic - expected)))
            if raise_exception:
                raise AssertionError(f"gradcheck: input {i} of shape {x.shape}: analytic and "
                                     f"numerical gradients differ by up to {worst:.3g}")
            return False
    return True
