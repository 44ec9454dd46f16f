"""Function: one differentiable operation, and the reverse-mode engine that runs them backward.

A Function subclass writes two static methods over plain arrays::

    forward(ctx, *inputs, **options) -> array
    backward(ctx, grad_output) -> one gradient (or None) per positional input

``Function.apply`` unwraps Tensors, runs ``forward``, and when any input needs a gradient
records a node (the Function, its context, its input Tensors) on the output. ``backward``
walks those nodes in reverse topological order with an explicit stack (no recursion, so a
10,000-op chain is fine), sums the gradients of a tensor used twice (into an array the sweep
made itself when it can, and slices' gradients as ``IndexedGradient`` into one buffer),
accumulates into the leaves' ``.grad`` and then frees the saved arrays.

Dtypes follow PyTorch's rules, applied here once for every Function:
- ``promotes = True`` (arithmetic, joins): the inputs are cast to ``result_dtype`` first, so a
  float32 tensor with an int64 tensor gives float32 and a Python scalar never widens a tensor.
- ``float_inputs = True`` (exp, log, sigmoid, mean, true division ...): bool and integer inputs
  are computed in float32, never as integers.
- Layers with float parameters and losses of float predictions call ``require_float``, which
  refuses integer, bool and float16 inputs with a TypeError naming the layer and the fix.
"""
import contextlib
import sys
import threading

import numpy as np

from .device import default_device, like
from .kernels import for_device

_grad_state = threading.local()

DEFAULT_FLOAT = np.dtype(np.float32)
KERNEL_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))  # the dtypes the kernels compile for


def _category(dtype):
    """PyTorch's dtype categories, in promotion order: bool < integer < float < complex."""
    return (dtype.kind == "c") + (dtype.kind in "fc") + (dtype != np.bool_)


_SCALAR_DTYPES = {bool: np.dtype(np.bool_), int: np.dtype(np.int64), float: DEFAULT_FLOAT,
                  complex: np.dtype(np.complex64)}


def result_dtype(*operands):
    """PyTorch's result dtype of a binary op or join over arrays and Python scalars.

    The highest category present (bool < integer < float < complex) decides. Within it, arrays
    with dimensions outrank 0-d arrays, which outrank Python scalars; the dtype is numpy's
    result_type of the top-ranked operands of that category, or for Python scalars alone the
    default (float32, int64, bool). So float32 (N,) + int64 -> float32, int64 * 2.5 -> float32,
    float32 (N,) * float64 0-d -> float32, int32 + int64 -> int64."""
    first = operands[0]
    if type(first) is np.ndarray and first.ndim and all(  # the common case, ranked in one look
            type(x) is np.ndarray and x.dtype == first.dtype or type(x) is float and first.dtype.kind in "fc"
            or type(x) is int and first.dtype.kind in "fciu" for x in operands[1:]):
        return first.dtype
    return ranked_result_dtype(operands)


def ranked_result_dtype(operands):
    """``result_dtype`` by ranking every operand (its rule in full)."""
    ranked = []
    for x in operands:
        if type(x) in _SCALAR_DTYPES:
            dtype, rank = _SCALAR_DTYPES[type(x)], 0
        else:
            dtype, rank = np.dtype(x.dtype), 1 + (x.ndim > 0)
        ranked.append((_category(dtype), rank, dtype))
    top = max(category for category, _, _ in ranked)
    best = max(rank for category, rank, _ in ranked if category == top)
    return np.result_type(*[dtype for category, rank, dtype in ranked if category == top and rank == best])


def _cast(array, dtype):
    """``array`` as ``dtype`` (no copy when it already is); Python scalars stay weak."""
    if type(array) in _SCALAR_DTYPES or array.dtype == dtype:
        return array
    return array.astype(dtype)


def float_dtype(dtype):
    """``dtype`` if it is a float type, else the default float32 (bool and integers promote)."""
    return dtype if dtype.kind in "fc" else DEFAULT_FLOAT


def require_float(name, input, argument="input"):
    """Refuse what a layer with float parameters (or a loss of float predictions) cannot take:
    a non-Tensor (as PyTorch's "argument 'input' must be Tensor"), or a dtype other than float32
    and float64 -- integers would compute in integers (a uint8 image convolved into zeros)."""
    if not isinstance(input, _tensor.Tensor):
        raise TypeError(f"{name}: argument '{argument}' must be Tensor, not {type(input).__name__}; "
                        f"wrap it with minidl.tensor(...)")
    dtype = np.dtype(input.dtype)
    if dtype in KERNEL_FLOATS:
        return
    if np.issubdtype(dtype, np.floating):
        raise TypeError(f"{name}: {argument} dtype {dtype} is not supported; the kernels run in "
                        f"float32 or float64: convert with x.float() or x.double()")
    raise TypeError(f"{name}: {argument} dtype {dtype} is not a float type; convert with x.float() "
                    f"(or scale images to [0, 1] with x.float() / 255, as transforms.ToTensor does)")


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


class enable_grad(set_grad_enabled):
    """``with minidl.enable_grad():`` records the graph again inside a ``no_grad`` block."""

    def __init__(self):
        super().__init__(True)


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

    @property
    def next_functions(self):
        """PyTorch's walk of the graph, one ``(node, 0)`` per Tensor input: the Node that made it,
        an ``AccumulateGrad`` for a leaf that requires grad, or None for a constant."""
        return tuple((t._node if t._node is not None
                      else AccumulateGrad(t) if t.requires_grad else None, 0)
                     for t in self.inputs if t is not None)

    def __repr__(self):
        return f"<{self.name()}>"


class IndexedGradient:
    """The gradient of ``x[index]`` with respect to x: ``values`` at ``index``, zero elsewhere
    (``basic``: slices and integers, which pick each element once; else advanced indexing, whose
    repeats accumulate). The sweep keeps it in this form until it needs the whole array: a tensor
    sliced k times (the q, k, v thirds of one projection; x[t] in a time loop) then gets one
    zero-filled buffer with the k slices added into it, instead of k full-size arrays summed."""

    __slots__ = ("shape", "index", "values", "basic")

    def __init__(self, shape, index, values, basic):
        self.shape, self.index, self.values, self.basic = tuple(shape), index, values, basic

    @property
    def dtype(self):
        return self.values.dtype

    def add_into(self, total):
        """total[index] += values (np.add.at for advanced indices); returns total."""
        if self.basic:
            total[self.index] += self.values
        else:
            np.add.at(total, self.index, self.values)
        return total

    def dense(self, dtype=None):
        """The whole gradient as a new array (of ``dtype``, default the values' dtype)."""
        zeros = np.zeros(self.shape, dtype=dtype or self.values.dtype, like=like(self.values))
        return self.add_into(zeros)


def _dense(grad):
    return grad.dense() if isinstance(grad, IndexedGradient) else grad


def _summed(total, grad, total_is_ours):
    """total + grad. Into ``total`` itself when the sweep made that array (``total_is_ours``:
    nothing else holds it) and the sum keeps its dtype; else into a new array."""
    dtype = np.result_type(total.dtype, grad.dtype)
    if isinstance(total, IndexedGradient):
        total, total_is_ours = total.dense(dtype), True
    if isinstance(grad, IndexedGradient):
        if not total_is_ours or total.dtype != dtype:
            total = total.astype(dtype)  # a copy
        return grad.add_into(total)
    if total_is_ours and total.dtype == dtype:
        return add_in_place(total, grad)
    return total + grad


def add_in_place(total, grad):
    """total += grad; returns total. Host arrays through kernels/cpu/arrays (a big sum in
    shares on its thread pool)."""
    if type(total) is np.ndarray:
        return for_device("cpu", "arrays").add_into(total, grad)
    total += grad
    return total


def copied(array):
    """np.array(array, copy=True); host arrays through kernels/cpu/arrays (a big copy in shares)."""
    if type(array) is np.ndarray:
        return for_device("cpu", "arrays").copy_of(array)
    return np.array(array, copy=True, like=like(array))


class AccumulateGrad:
    """Where the graph ends at a leaf Tensor that requires grad (``variable``): backward adds
    the gradient into ``variable.grad``. Shown in ``Node.next_functions``, as in PyTorch."""

    __slots__ = ("variable",)
    next_functions = ()

    def __init__(self, variable):
        self.variable = variable

    def name(self):
        return "AccumulateGrad"

    def __repr__(self):
        return "<AccumulateGrad>"


class Function:
    """Base class of every differentiable operation; see the module docstring."""

    promotes = False  # cast all inputs to result_dtype (PyTorch's type promotion) first
    float_inputs = False  # compute bool and integer tensor inputs in float32

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
        arrays = [x.array if isinstance(x, Tensor) else x for x in inputs]
        if cls.promotes:
            dtype = result_dtype(*arrays)
            arrays = [_cast(a, dtype) for a in arrays]
        if cls.float_inputs:
            arrays = [_cast(a, float_dtype(a.dtype)) if isinstance(x, Tensor) else a
                      for x, a in zip(inputs, arrays)]
        if device == "meta":
            return Tensor._from_array(cls.infer(*arrays, **options), device)
        output = cls.forward(ctx, *arrays, **options)
        # only float outputs join the graph (argsort-like integer and bool results never do)
        needs_grad = (is_grad_enabled() and any(t.requires_grad for t in tensors)
                      and output.dtype.kind in "fc")
        result = Tensor._from_array(output, device, requires_grad=needs_grad)
        if needs_grad:
            ctx.needs_input_grad = tuple(isinstance(x, Tensor) and x.requires_grad for x in inputs)
            ctx.versions = tuple(x._version if isinstance(x, Tensor) else None for x in inputs)
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


def run_backward(root, gradient, retain_graph=False, capture=None):
    """Reverse-mode sweep from ``root`` seeded with ``gradient`` (an array of root's shape).

    ``capture`` (for autograd.grad): a dict whose keys are ids of tensors; each gets the
    summed gradient of its tensor as value, and no ``.grad`` is changed."""
    order = _topological_order(root)
    grads = {id(root): gradient}
    summed = set()  # keys of grads whose array the sweep made by summing: added to in place
    while order:
        tensor = order.pop()  # dropped here, so that what only the graph held goes as the sweep passes
        grad = _dense(grads.pop(id(tensor), None))
        summed.discard(id(tensor))
        if grad is None:
            continue
        node = tensor._node
        if capture is not None:
            if id(tensor) in capture:
                capture[id(tensor)] = grad
        elif tensor._retains_grad or node is None:
            tensor._accumulate_grad(grad, keep=node is None and _held_only_by_caller(grad))
        if node is None:
            continue
        if node.ctx is None:
            raise RuntimeError(
                f"Trying to backward through the graph a second time ({node.name()}): its saved "
                "arrays were freed by the first backward. Pass retain_graph=True to the first "
                "backward() to keep them.")
        _check_versions(node)
        _add_input_grads(node, node.function.backward(node.ctx, grad), grads, summed)
        if not retain_graph:
            node.ctx = None
            node.inputs = ()  # frees the activations nothing else holds


def _add_input_grads(node, input_grads, grads, summed):
    """Add what ``node``'s backward returned into ``grads`` (see run_backward), one gradient per
    input that requires one. (A function of its own: its references to the gradients end when
    it returns, which ``_held_only_by_caller`` counts on.)"""
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
        if key in grads:
            grads[key] = _summed(grads[key], parent_grad, key in summed)
            summed.add(key)
        else:
            grads[key] = parent_grad


# References to an array held only by run_backward's local variable, as counted inside
# _held_only_by_caller on CPython 3.9-3.13 (measured on 3.11; tests/test_tensor.py fails when the
# count changes): that variable, the call's argument and the parameter, getrefcount's. CPython
# 3.14 may leave references on its evaluation stack uncounted, so there a leaf always copies.
_SOLE_REFERENCES = 4
REFERENCE_COUNTS_KNOWN = sys.implementation.name == "cpython" and (3, 9) <= sys.version_info[:2] < (3, 14)


def _held_only_by_caller(array):
    """Whether nothing but the caller's one variable refers to ``array`` or to the memory under
    it (a view's base), so that a leaf's ``.grad`` may take it without a copy, as PyTorch's
    AccumulateGrad steals a gradient no one else holds. Writeable C-contiguous numpy arrays only,
    and only where REFERENCE_COUNTS_KNOWN."""
    if (not REFERENCE_COUNTS_KNOWN or type(array) is not np.ndarray
            or not (array.flags.c_contiguous and array.flags.writeable)):
        return False
    base = array.base
    if base is not None and (type(base) is not np.ndarray or base.base is not None or base.size != array.size
                             or sys.getrefcount(base) > 3):  # the view's, ``base``'s, getrefcount's
        return False
    return sys.getrefcount(array) <= _SOLE_REFERENCES


def _check_versions(node):
    """Refuse to run a node whose input tensors changed in place after it was recorded: what it
    saved (or the tensor its gradient flows to) no longer matches, as PyTorch's version check.
    Stricter than PyTorch, which checks only the tensors a node saved."""
    for position, (tensor, version) in enumerate(zip(node.inputs, node.ctx.versions)):
        if tensor is not None and tensor._version != version:
            raise RuntimeError(
                f"one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: input {position} of {node.name()}, of shape {tensor.shape}, "
                f"is at version {tensor._version}; expected version {version}. Change a copy "
                f"(x = x + y instead of x += y) or run backward before the change")


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
            parents = [p for p in tensor._node.inputs
                       if p is not None and p.requires_grad and id(p) not in visited]
            # leaves pushed first are visited last: each lands in the order just before its
            # consumer, so the reverse sweep accumulates a parameter's gradient (and runs its
            # post-accumulate-grad hooks) as soon as the layer that uses it is done
            stack.extend((p, False) for p in sorted(parents, key=lambda p: not p.is_leaf))
    return order


from . import tensor as _tensor  # noqa: E402  (last: tensor's ops subclass Function)
