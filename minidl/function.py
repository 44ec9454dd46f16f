"""Function: one differentiable operation, and the reverse-mode engine that runs them backward.

A Function subclass writes two static methods over plain arrays::

    forward(ctx, *inputs, **options) -> array
    backward(ctx, grad_output) -> one gradient (or None) per positional input

``Function.apply`` unwraps Tensors, runs ``forward``, and when any input needs a gradient
records a node (the Function, its context, its input Tensors) on the output. ``backward``
walks those nodes in reverse topological order with an explicit stack (no recursion, so a
10,000-op chain is fine), sums the gradients of a tensor used twice, accumulates into the
leaves' ``.grad`` and then frees the saved arrays.
"""
import contextlib
import threading

import numpy as np

from .device import default_device

_grad_state = threading.local()


def is_grad_enabled():
    return getattr(_grad_state, "enabled", True)


class set_grad_enabled(contextlib.ContextDecorator):
    """Context manager / decorator that turns graph recording on or off."""

    def __init__(self, mode):
        self.mode = bool(mode)

    def __enter__(self):
        self.previous = is_grad_enabled()
        _grad_state.enabled = self.mode

    def __exit__(self, *exc):
        _grad_state.enabled = self.previous
        return False


class no_grad(set_grad_enabled):
    """``with minidl.no_grad():`` records no graph (evaluation, parameter updates)."""

    def __init__(self):
        super().__init__(False)


class Context:
    """What forward leaves for backward: saved arrays, options, and which inputs need grads."""

    def __init__(self, device):
        self.device = device
        self.saved_arrays = ()
        self.needs_input_grad = ()

    def save_for_backward(self, *arrays):
        self.saved_arrays = arrays

    @property
    def saved_tensors(self):  # PyTorch's name, for readers coming from there
        return self.saved_arrays


class Node:
    """The record of one Function application: its class, context and input Tensors."""

    __slots__ = ("function", "ctx", "inputs")

    def __init__(self, function, ctx, inputs):
        self.function = function
        self.ctx = ctx
        self.inputs = inputs

    def name(self):
        return f"{self.function.__name__}Backward"

    def __repr__(self):
        return f"<{self.name()}>"


class Function:
    """Base class of every differentiable operation; see the module docstring."""

    @staticmethod
    def forward(ctx, *inputs, **options):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError

    @classmethod
    def infer(cls, *inputs, **options):
        """The output's MetaArray (shape, dtype) for MetaArray inputs: the meta device's forward."""
        raise NotImplementedError(f"{cls.__name__} has no shape rule for the meta device yet")

    @classmethod
    def apply(cls, *inputs, **options):
        Tensor = _tensor.Tensor
        tensors = [x for x in inputs if isinstance(x, Tensor)]
        device = common_device(tensors, cls.__name__)
        ctx = Context(device)
        arrays = [x.data if isinstance(x, Tensor) else x for x in inputs]
        if device == "meta":
            return Tensor._from_array(cls.infer(*arrays, **options), device)
        output = cls.forward(ctx, *arrays, **options)
        needs_grad = is_grad_enabled() and any(t.requires_grad for t in tensors)
        result = Tensor._from_array(output, device, requires_grad=needs_grad)
        if needs_grad:
            ctx.needs_input_grad = tuple(isinstance(x, Tensor) and x.requires_grad for x in inputs)
            result._node = Node(cls, ctx, tuple(x if isinstance(x, Tensor) else None for x in inputs))
        return result


def common_device(tensors, op_name):
    """The one device all input tensors share; a clear error naming both when they differ."""
    if not tensors:
        return default_device()
    device = tensors[0].device
    for t in tensors[1:]:
        if t.device != device:
            raise RuntimeError(
                f"{op_name}: expected all tensors on one device, found {device} and {t.device}; "
                f"move them with .to('{device}')")
    return device


def run_backward(root, gradient, retain_graph=False):
    """Reverse-mode sweep from ``root`` seeded with ``gradient`` (an array of root's shape)."""
    order = _topological_order(root)
    grads = {id(root): gradient}
    for tensor in reversed(order):
        grad = grads.pop(id(tensor), None)
        if grad is None:
            continue
        node = tensor._node
        if tensor._retains_grad or node is None:
            tensor._accumulate_grad(grad)
        if node is None:
            continue
        if node.ctx is None:
            raise RuntimeError(
                f"Trying to backward through the graph a second time ({node.name()}): its saved "
                "arrays were freed by the first backward. Pass retain_graph=True to the first "
                "backward() to keep them.")
        input_grads = node.function.backward(node.ctx, grad)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for parent, parent_grad in zip(node.inputs, input_grads):
            if parent is None or parent_grad is None or not parent.requires_grad:
                continue
            if np.shape(parent_grad) != parent.shape:
                raise RuntimeError(
                    f"{node.name()} returned a gradient of shape {np.shape(parent_grad)} for an "
                    f"input of shape {parent.shape}")
            key = id(parent)
            grads[key] = parent_grad if key not in grads else grads[key] + parent_grad
        if not retain_graph:
            node.ctx = None


def _topological_order(root):
    """Tensors that need a gradient, each after all its inputs (iterative post-order DFS)."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        tensor, inputs_done = stack.pop()
        if inputs_done:
            order.append(tensor)
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        if tensor._node is not None:
            for parent in tensor._node.inputs:
                if parent is not None and parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    return order


from . import tensor as _tensor  # noqa: E402  (last: tensor's ops subclass Function)
