"""``minidl.autograd``: PyTorch's ``torch.autograd.grad`` and ``Function`` paths.

``Function`` is minidl.Function: as in PyTorch, subclasses write static ``forward(ctx, ...)``
and ``backward(ctx, grad_output)`` and are called through ``apply``; unlike PyTorch, forward
and backward receive and return arrays (numpy on cpu), not Tensors.
"""
import numpy as np

from .device import like
from .function import Function, run_backward, set_grad_enabled
from .tensor import Tensor, _to_array

__all__ = ["Function", "grad"]


def _tensors(value, name):
    values = (value,) if isinstance(value, Tensor) else tuple(value)
    for i, t in enumerate(values):
        if not isinstance(t, Tensor):
            raise TypeError(f"grad: {name}[{i}] must be a Tensor, got {type(t).__name__}")
    return values


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=None, materialize_grads=False):
    """The gradients of ``outputs`` (weighted by ``grad_outputs``, ones for scalar outputs) with
    respect to each of ``inputs``, as a tuple of Tensors; no ``.grad`` changes.

    The graph is freed unless ``retain_graph``. An input the outputs do not depend on is an
    error unless ``allow_unused`` (its gradient is then None, or zeros with
    ``materialize_grads``). ``create_graph=True`` (differentiable gradients, for second
    derivatives) is not implemented: backward passes run on arrays and record no graph.
    """
    if create_graph:
        raise NotImplementedError(
            "minidl.autograd.grad: create_graph=True is not implemented; minidl's backward passes "
            "compute on arrays and record no graph, so gradients cannot be differentiated again "
            "(second derivatives need finite differences, see minidl.utils.gradcheck)")
    outputs, inputs = _tensors(outputs, "outputs"), _tensors(inputs, "inputs")
    if grad_outputs is None:
        grad_outputs = (None,) * len(outputs)
    else:
        grad_outputs = (grad_outputs,) if isinstance(grad_outputs, Tensor) else tuple(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"grad: inputs[{i}] (shape {t.shape}) does not require grad")
    seeds = []
    for i, (out, g) in enumerate(zip(outputs, grad_outputs)):
        if not out.requires_grad:
            raise RuntimeError(f"grad: outputs[{i}] does not require grad and has no grad_fn")
        if g is None:
            if out.array.size != 1:
                raise RuntimeError(f"grad: outputs[{i}] has shape {out.shape}; grad can be "
                                   "implicitly created only for scalar outputs, pass grad_outputs")
            g = np.ones(out.shape, dtype=out.dtype, like=like(out.array))
        else:
            g = _to_array(g, out.dtype)
            if np.shape(g) != out.shape:
                raise RuntimeError(f"grad: grad_outputs[{i}] has shape {np.shape(g)}, "
                                   f"outputs[{i}] {out.shape}")
        seeds.append(g)
    if len(outputs) == 1:
        root, seed = outputs[0], seeds[0]
    else:  # one sweep for all: d/dx sum_i <outputs_i, seeds_i> = sum_i J_i^T seeds_i, exactly
        with set_grad_enabled(True):
            root = sum((out * Tensor._from_array(g, out.device)).sum()
                       for out, g in zip(outputs, seeds))
        seed = np.ones((), dtype=root.dtype, like=like(root.array))
    captured = {id(t): None for t in inputs}
    run_backward(root, seed, retain_graph=bool(retain_graph), capture=captured)
    results = []
    for i, t in enumerate(inputs):
        g = captured[id(t)]
        if g is None:
            if not (allow_unused or materialize_grads):
                raise RuntimeError(f"grad: inputs[{i}] (shape {t.shape}) was not used to compute "
                                   "the outputs; pass allow_unused=True if that is intended")
            results.append(Tensor._from_array(np.zeros(t.shape, t.dtype, like=like(t.array)),
                                              t.device) if materialize_grads else None)
        else:
            results.append(Tensor._from_array(np.array(g, dtype=t.dtype, copy=True, like=like(g)),
                                              t.device))
    return tuple(results)
