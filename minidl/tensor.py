"""Tensor: an array, the device it lives on, its gradient, and the node that produced it."""
from collections import namedtuple

import numpy as np

from . import ops
from .device import Device, default_device, like, to_device, to_host
from .function import add_in_place, copied, is_grad_enabled
from .kernels.cuda.array import CudaArray, as_cuda
from .meta import MetaArray
from .random import default_generator

float32, float64, int64, int32, bool_ = np.float32, np.float64, np.int64, np.int32, np.bool_
_DEFAULT_FLOAT = np.dtype(np.float32)

# what x.max(dim) / x.min(dim) return, as torch.return_types.max / min
MaxResult = namedtuple("max", ["values", "indices"])
MinResult = namedtuple("min", ["values", "indices"])
SortResult = namedtuple("sort", ["values", "indices"])
TopkResult = namedtuple("topk", ["values", "indices"])

# x.type() names, as torch's 'torch.FloatTensor'
TYPE_NAMES = {np.dtype(np.float32): "FloatTensor", np.dtype(np.float64): "DoubleTensor",
              np.dtype(np.float16): "HalfTensor", np.dtype(np.int64): "LongTensor",
              np.dtype(np.int32): "IntTensor", np.dtype(np.int16): "ShortTensor",
              np.dtype(np.int8): "CharTensor", np.dtype(np.uint8): "ByteTensor",
              np.dtype(np.bool_): "BoolTensor"}


class Size(tuple):
    """What ``x.size()`` returns: a tuple of the dimensions, as ``torch.Size``."""

    def numel(self):
        return int(np.prod(self, dtype=np.int64))

    def __repr__(self):
        return f"minidl.Size({list(self)})"


def _as_dtype(dtype):
    return None if dtype is None else np.dtype(dtype)


def _to_array(data, dtype=None):
    """numpy arrays keep their dtype; Python floats become float32 and ints int64 (as PyTorch)."""
    if isinstance(data, Tensor):
        data = data.array
    dtype = _as_dtype(dtype)
    if isinstance(data, (np.ndarray, MetaArray, CudaArray)):
        return data.astype(dtype, copy=False) if dtype is not None else data
    array = np.asarray(data)
    if dtype is not None:
        return array.astype(dtype, copy=False)
    if array.dtype == np.float64:
        return array.astype(_DEFAULT_FLOAT)
    return array


class Tensor:
    """An n-d array that can record the operations made on it and run them backward.

    ``array`` is the array behind this tensor: a numpy array (on cpu), a CudaArray (on cuda) or
    a MetaArray (on meta); it is what kernels and Functions receive. ``data`` is, as in PyTorch,
    a Tensor sharing that array, detached from the graph (see the property). ``grad`` is a
    Tensor of the same shape after ``backward()`` for leaves with ``requires_grad=True``.
    ``device=None`` means the default device (cpu, or the one of an enclosing
    ``with minidl.device(...)``).
    """

    __array_priority__ = 1000  # ndarray <op> Tensor hands over to the Tensor's reflected op

    def __init__(self, data, dtype=None, requires_grad=False, device=None):
        self.device = Device(device) if device is not None else default_device()
        self.array = to_device(_to_array(data, dtype), self.device)
        self.grad = None
        self._node = None
        self._retains_grad = False
        self._version_counter = [0]
        self.requires_grad = False
        self.requires_grad_(requires_grad)

    @classmethod
    def _from_array(cls, array, device, requires_grad=False):
        """Wrap an op's output array without copying or converting it."""
        t = cls.__new__(cls)
        t.array = array if isinstance(array, (np.ndarray, MetaArray, CudaArray)) else np.asarray(array)
        t.device = device
        t.grad = None
        t._node = None
        t._retains_grad = False
        t._version_counter = [0]
        t.requires_grad = requires_grad
        return t

    # ------------------------------------------------------------ properties
    @property
    def shape(self):
        return self.array.shape

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def ndim(self):
        return self.array.ndim

    @property
    def data(self):
        """A Tensor sharing this tensor's array, outside the graph (requires_grad=False), as
        PyTorch's ``.data``: ``param.data.add_(-lr * param.grad)`` changes ``param``. Unlike
        detach(), it has its own version counter, so an in-place change through it is not seen
        by the version check of a backward that saved ``self`` (PyTorch's rule too: the change
        is the caller's responsibility)."""
        return Tensor._from_array(self.array, self.device)

    @data.setter
    def data(self, value):
        """``t.data = other``: ``t`` takes ``other``'s array (a Tensor's, shared; or an array),
        device, shape and dtype, keeping its grad, graph node and version, as PyTorch."""
        if isinstance(value, Tensor):
            self.array, self.device = value.array, value.device
        else:
            self.array = to_device(_to_array(value), self.device)

    @property
    def is_leaf(self):
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    @property
    def _version(self):
        """How many in-place operations changed this tensor's data (shared with its detach())."""
        return self._version_counter[0]

    def dim(self):
        return self.array.ndim

    def size(self, dim=None):
        return Size(self.array.shape) if dim is None else self.array.shape[dim]

    def numel(self):
        return self.array.size

    def __len__(self):
        if not self.array.ndim:
            raise TypeError("len() of a 0-d tensor")
        return self.array.shape[0]

    def requires_grad_(self, requires_grad=True):
        if requires_grad and not np.issubdtype(self.array.dtype, np.floating):
            raise RuntimeError(f"only floating-point tensors can require gradients, got {self.array.dtype}")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self):
        """Keep ``.grad`` for this non-leaf tensor too."""
        self._retains_grad = True
        return self

    # ------------------------------------------------------------ conversion
    def numpy(self):
        if isinstance(self.array, MetaArray):
            raise RuntimeError(f"numpy(): a meta tensor of shape {self.shape} has no data")
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on a tensor that requires grad; use detach().numpy()")
        return to_host(self.array)  # the array itself on cpu, a copy from the GPU on cuda

    def __array__(self, dtype=None, copy=None):
        """numpy's view of a cpu tensor's array (``np.asarray(t)``, ``np.testing`` on ``t.data``),
        as PyTorch: refused for a tensor that requires grad; on cuda and meta it raises as
        their arrays do (no hidden device-to-host copy)."""
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on a tensor that requires grad; use detach().numpy()")
        return np.array(self.array, dtype=dtype, copy=copy)

    def item(self):
        if isinstance(self.array, MetaArray):
            raise RuntimeError(f"item(): a meta tensor of shape {self.shape} has no data")
        if self.array.size != 1:
            raise ValueError(f"item(): the tensor has {self.array.size} elements, not 1")
        return self.array.reshape(()).item()

    def tolist(self):
        return to_host(self.array).tolist()

    def detach(self):
        t = Tensor._from_array(self.array, self.device)
        t._version_counter = self._version_counter  # same data: an in-place change shows in both
        return t

    def to(self, target=None, dtype=None):
        """``t.to("meta")``, ``t.to(minidl.float64)``: a tensor moved and/or cast (self when nothing
        changes). A cast is recorded in the graph; a move between devices starts a new leaf."""
        if target is not None and not isinstance(target, (str, Device)):
            target, dtype = None, target
        result = self
        if target is not None and Device(target) != self.device:
            device = Device(target)
            result = Tensor._from_array(to_device(self.array, device), device, self.requires_grad)
        if dtype is not None and np.dtype(dtype) != result.dtype:
            result = ops.Cast.apply(result, dtype=np.dtype(dtype))
        return result

    def cpu(self):
        return self.to("cpu")

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def long(self):
        return self.to(np.int64)

    def int(self):
        return self.to(np.int32)

    def half(self):
        return self.to(np.float16)

    def bool(self):
        return self.to(np.bool_)

    def type(self, dtype=None):
        """``x.type()``: the type's name, 'minidl.FloatTensor' for float32 (as torch's
        'torch.FloatTensor'); ``x.type(minidl.float64)``, ``x.type('torch.DoubleTensor')`` or
        ``x.type(minidl.DoubleTensor)``: ``x`` cast to that dtype."""
        if dtype is None:
            return "minidl." + TYPE_NAMES.get(self.dtype, f"Tensor({self.dtype})")
        name = (dtype if isinstance(dtype, str) else getattr(dtype, "__name__", "")).rsplit(".", 1)[-1]
        by_name = {name: dtype for dtype, name in TYPE_NAMES.items()}
        if name in by_name:
            dtype = by_name[name]
        elif isinstance(dtype, str):
            raise ValueError(f"type(): unknown tensor type {dtype!r}; expected a dtype or one of "
                             f"{', '.join(sorted(by_name))}")
        return self.to(dtype=np.dtype(dtype))

    def __dlpack__(self, **options):
        """A DLPack capsule over this tensor's memory, so that ``torch.from_dlpack(t)``,
        ``np.from_dlpack(t)``, JAX or CuPy share it without a copy (cpu tensors; the options
        are the DLPack protocol's and go to numpy's exporter)."""
        if self.requires_grad:
            raise RuntimeError("__dlpack__: cannot export a tensor that requires grad (the consumer "
                               "would not see the graph); export t.detach()")
        return self._dlpack_array().__dlpack__(**options)

    def __dlpack_device__(self):
        return self._dlpack_array().__dlpack_device__()

    def _dlpack_array(self):
        if self.device == "cpu":
            return self.array
        if self.device == "cuda":
            raise NotImplementedError(
                "DLPack export of cuda tensors is not implemented (numba's device arrays make no "
                "DLPack capsule); t.array has __cuda_array_interface__ and passes without a copy: "
                "torch.as_tensor(t.array, device='cuda'), cupy.asarray(t.array)")
        raise RuntimeError(f"__dlpack__: a meta tensor of shape {self.shape} has no data to share")

    def __repr__(self):
        if isinstance(self.array, MetaArray):
            return f"tensor(..., device='meta', size={self.shape}, dtype={self.dtype})"
        body = np.array2string(to_host(self.array), separator=", ", prefix="tensor(")
        extras = []
        if self.dtype != _DEFAULT_FLOAT and self.dtype != np.int64:
            extras.append(f"dtype={self.dtype}")
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self._node is not None:
            extras.append(f"grad_fn={self._node}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body] + extras) + ")"

    # ------------------------------------------------------------ autograd
    def backward(self, gradient=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) * gradient into every leaf's ``.grad``."""
        from .function import run_backward
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad and has no grad_fn")
        if gradient is None:
            if self.array.size != 1:
                raise RuntimeError(
                    f"backward(): grad can be implicitly created only for scalar outputs; this "
                    f"tensor has shape {self.shape}, pass gradient=")
            seed = np.ones(self.shape, dtype=self.dtype, like=like(self.array))
        else:
            seed = _to_array(gradient, self.dtype)
            if self.device == "cuda":
                seed = to_device(seed, self.device)
            if seed.shape != self.shape:
                raise RuntimeError(f"backward(): gradient has shape {seed.shape}, tensor {self.shape}")
        run_backward(self, seed, retain_graph=retain_graph)

    def _accumulate_grad(self, grad, keep=False):
        """.grad += grad (a copy of grad when .grad is None, or grad itself with ``keep``: the
        caller holds its only reference)."""
        converted = np.asarray(grad, dtype=self.dtype, like=like(grad))
        if self.grad is None:
            if not (keep and converted is grad):
                converted = copied(converted)
            self.grad = Tensor._from_array(converted, self.device)
        else:
            add_in_place(self.grad.array, converted)
        for hook in tuple(self.__dict__.get("_grad_hooks", {}).values()):
            hook(self)

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(self)`` each time a backward pass has added this leaf's gradient into
        ``.grad`` (once per backward: a leaf's gradients are summed before they are accumulated),
        as PyTorch's method of that name; DistributedDataParallel starts its allreduces from it.
        Returns a handle whose ``remove()`` unregisters the hook."""
        if not self.is_leaf:
            raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors accumulate "
                               f"into .grad; this one was made by {self._node}")
        return RemovableHandle(self.__dict__.setdefault("_grad_hooks", {}), hook)

    # ------------------------------------------------------------ arithmetic
    def __add__(self, other):
        return ops.Add.apply(self, _operand(other))

    def __radd__(self, other):
        return ops.Add.apply(_operand(other), self)

    def __sub__(self, other):
        return ops.Sub.apply(self, _operand(other))

    def __rsub__(self, other):
        return ops.Sub.apply(_operand(other), self)

    def __mul__(self, other):
        return ops.Mul.apply(self, _operand(other))

    def __rmul__(self, other):
        return ops.Mul.apply(_operand(other), self)

    def __truediv__(self, other):
        return ops.Div.apply(self, _operand(other))

    def __rtruediv__(self, other):
        return ops.Div.apply(_operand(other), self)

    def __pow__(self, other):
        return ops.Pow.apply(self, _operand(other))

    def __rpow__(self, other):
        return ops.Pow.apply(_operand(other), self)

    def __matmul__(self, other):
        return ops.MatMul.apply(self, _operand(other))

    def __rmatmul__(self, other):
        return ops.MatMul.apply(_operand(other), self)

    def __neg__(self):
        return ops.Neg.apply(self)

    # in place: ``a += b`` changes ``a`` itself, as PyTorch
    def __iadd__(self, other):
        return self._in_place(ops.Add, other)

    def __isub__(self, other):
        return self._in_place(ops.Sub, other)

    def __imul__(self, other):
        return self._in_place(ops.Mul, other)

    def __itruediv__(self, other):
        return self._in_place(ops.Div, other)

    def _in_place(self, function, *others, **options):
        """``self = function(self, *others, **options)`` in this same Tensor object, with PyTorch's rules: a
        leaf that requires grad is refused while grad is enabled; the result must cast to
        self's dtype within its kind (an int64 tensor cannot take a float result).

        Without a graph the result is written into self's array, so views and detach()ed
        tensors see it. When the op is recorded, self takes the new node and a new array (the
        arrays that earlier nodes saved stay intact). Either way self's version goes up, and
        a backward through a node recorded before the change raises instead of computing a
        wrong gradient (see function.run_backward)."""
        if self.requires_grad and self.is_leaf and is_grad_enabled():
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                               "operation.")
        before = Tensor._from_array(self.array, self.device, self.requires_grad)
        before._node = self._node
        result = function.apply(before, *[_operand(x) for x in others], **options)
        if result.shape != self.shape:
            raise RuntimeError(f"output with shape {self.shape} doesn't match the broadcast shape "
                               f"{result.shape}")
        if not np.can_cast(result.dtype, self.dtype, "same_kind"):
            raise RuntimeError(f"result type {result.dtype} can't be cast to the desired output "
                               f"type {self.dtype}")
        if result._node is None and not isinstance(self.array, MetaArray):
            self.array[...] = result.array
        else:
            self.array = result.array.astype(self.dtype, copy=False)
            self._node, self.requires_grad = result._node, result.requires_grad
        self._version_counter[0] += 1
        return self

    def _overwrite(self, index, value):
        """``self[index] = value`` in place (value a scalar, array or Tensor, broadcast to the
        indexed part and cast to self's dtype). Written straight into self's array when no graph
        is recorded (views and detach()ed tensors see it); when self or value requires grad under
        grad mode it is recorded as ops.SetItem: differentiable w.r.t. self's earlier value (its
        gradient zeroed at index) and w.r.t. value. Self's version goes up either way."""
        if isinstance(value, Tensor) and value.device != self.device:
            value = value.to(self.device)
        value_grad = isinstance(value, Tensor) and value.requires_grad
        if isinstance(self.array, MetaArray) or (is_grad_enabled() and (self.requires_grad or value_grad)):
            if not isinstance(value, (Tensor, int, float, bool)):
                value = Tensor(value, device=self.device)
            return self._in_place(ops.SetItem, value, index=index)
        self.array[index] = value.array if isinstance(value, Tensor) else value
        self._version_counter[0] += 1
        return self

    def __setitem__(self, index, value):
        self._overwrite(_plain_index(index), value)

    # PyTorch's in-place methods: the rules of _in_place (leaf check, version counter)
    def add_(self, other, alpha=1):
        return self._in_place(ops.Add, other if alpha == 1 else other * alpha)

    def sub_(self, other, alpha=1):
        return self._in_place(ops.Sub, other if alpha == 1 else other * alpha)

    def mul_(self, other):
        return self._in_place(ops.Mul, other)

    def div_(self, other):
        return self._in_place(ops.Div, other)

    def clamp_(self, min=None, max=None):
        return self._in_place(ops.Clip, min=min, max=max)

    clip_ = clamp_

    def zero_(self):
        return self._overwrite(Ellipsis, 0)

    def fill_(self, value):
        return self._overwrite(Ellipsis, value)

    def copy_(self, src):
        """Self's values from ``src`` (broadcast, cast to self's dtype, moved from its device);
        the gradient flows back to ``src`` when it requires grad on the same device."""
        return self._overwrite(Ellipsis, src)

    def uniform_(self, a=0.0, b=1.0):
        """Fill with draws from U(a, b) by minidl's generator (minidl.manual_seed)."""
        return self._overwrite(Ellipsis, self._draw(lambda g: g.uniform(a, b, self.shape)))

    def normal_(self, mean=0.0, std=1.0):
        """Fill with draws from N(mean, std^2) by minidl's generator (minidl.manual_seed)."""
        return self._overwrite(Ellipsis, self._draw(lambda g: g.normal(mean, std, self.shape)))

    def _draw(self, sample):
        return 0 if isinstance(self.array, MetaArray) else sample(default_generator())

    def masked_fill_(self, mask, value):
        return self._overwrite(self._mask(mask), value)

    def scatter_(self, dim, index, src=None, value=None, reduce=None):
        src, options = self._scatter_parts(dim, index, src, value, reduce, "scatter_")
        return self._in_place(ops.Scatter, src, **options)

    def scatter_add_(self, dim, index, src):
        return self.scatter_(dim, index, src, reduce="add")

    def __pos__(self):
        return self

    # comparisons give boolean tensors outside the graph
    def _compare(self, other, op):
        other = other.array if isinstance(other, Tensor) else other
        if isinstance(self.array, MetaArray) or isinstance(other, MetaArray):
            shape = np.broadcast_shapes(self.shape, np.shape(other))
            return Tensor._from_array(MetaArray(shape, np.bool_), self.device)
        return Tensor._from_array(op(self.array, other), self.device)

    def __eq__(self, other):
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__
    __hash__ = object.__hash__

    def __bool__(self):
        if self.array.size != 1:
            raise RuntimeError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.item())

    def __index__(self):
        """A one-element integer tensor used where Python wants an int: ``xs[t]``, ``range(t)``."""
        if not np.issubdtype(self.dtype, np.integer) or self.array.size != 1:
            raise TypeError(f"only integer tensors of a single element can be converted to an "
                            f"index; this one has shape {self.shape} and dtype {self.dtype}")
        return int(self.item())

    def __format__(self, spec):
        """``f"{loss:.4f}"``: a 0-d tensor (or, given a format spec, any one-element tensor)
        formats as its Python number, as PyTorch; others as ``str(t)``."""
        if not isinstance(self.array, MetaArray) and (self.ndim == 0 or (spec and self.array.size == 1)):
            return format(self.item(), spec)
        return super().__format__(spec)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    # ------------------------------------------------------------ elementwise
    def exp(self):
        return ops.Exp.apply(self)

    def log(self):
        return ops.Log.apply(self)

    def sqrt(self):
        return ops.Sqrt.apply(self)

    def abs(self):
        return ops.Abs.apply(self)

    def __abs__(self):
        return self.abs()

    def sin(self):
        return ops.Sin.apply(self)

    def cos(self):
        return ops.Cos.apply(self)

    def pow(self, exponent):
        return self ** exponent

    def maximum(self, other):
        return ops.Maximum.apply(self, _operand(other))

    def minimum(self, other):
        return ops.Minimum.apply(self, _operand(other))

    def clip(self, min=None, max=None):
        return ops.Clip.apply(self, min=min, max=max)

    clamp = clip

    def relu(self):
        return ops.ReLU.apply(self)

    def sigmoid(self):
        return ops.Sigmoid.apply(self)

    def tanh(self):
        return ops.Tanh.apply(self)

    def softmax(self, dim=-1):
        return ops.Softmax.apply(self, dim=dim)

    def log_softmax(self, dim=-1):
        return ops.LogSoftmax.apply(self, dim=dim)

    # ------------------------------------------------------------ reductions
    def sum(self, dim=None, keepdim=False):
        return ops.Sum.apply(self, axis=dim, keepdims=keepdim)

    def mean(self, dim=None, keepdim=False):
        return ops.Mean.apply(self, axis=dim, keepdims=keepdim)

    def max(self, dim=None, keepdim=False):
        """The largest entry (a tensor); with ``dim``, the named tuple (values, indices) along
        it, as torch.max; with a tensor, the elementwise maximum. Ties share the gradient
        equally (as torch.amax)."""
        if isinstance(dim, Tensor):
            return self.maximum(dim)
        values = ops.Max.apply(self, axis=dim, keepdims=keepdim)
        return values if dim is None else MaxResult(values, self.argmax(dim, keepdim))

    def min(self, dim=None, keepdim=False):
        """The smallest entry; with ``dim``, the named tuple (values, indices), as torch.min;
        with a tensor, the elementwise minimum."""
        if isinstance(dim, Tensor):
            return self.minimum(dim)
        values = ops.Min.apply(self, axis=dim, keepdims=keepdim)
        return values if dim is None else MinResult(values, self.argmin(dim, keepdim))

    def argmax(self, dim=None, keepdim=False):
        return self._arg_reduce(np.argmax, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return self._arg_reduce(np.argmin, dim, keepdim)

    def _arg_reduce(self, reduce, dim, keepdim):
        """int64 indices of the first extreme entry along ``dim`` (of the flattened tensor for None)."""
        if isinstance(self.array, MetaArray):
            shape = () if dim is None else ops.reduced_meta(self.array, dim, keepdim).shape
            return Tensor._from_array(MetaArray(shape, np.int64), self.device)
        return Tensor._from_array(reduce(self.array, axis=dim, keepdims=keepdim), self.device)

    # ------------------------------------------------------------ shapes
    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return ops.Reshape.apply(self, shape=tuple(shape))

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        nd = max(self.ndim, 1)
        start, end = start_dim % nd, end_dim % nd
        shape = self.shape[:start] + (-1,) + self.shape[end + 1:]
        return self.reshape(shape)

    def permute(self, *dims):
        dims = dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        return ops.Permute.apply(self, axes=tuple(d % self.ndim for d in dims))

    def transpose(self, dim0=0, dim1=1):
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return ops.Permute.apply(self, axes=tuple(axes))

    @property
    def T(self):
        return ops.Permute.apply(self, axes=tuple(reversed(range(self.ndim))))

    def unsqueeze(self, dim):
        dim = dim % (self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None):
        """Drop the size-1 axes (all, or those among ``dim``, an int or a tuple); an axis of
        another size named in ``dim`` stays, as PyTorch."""
        dims = range(self.ndim) if dim is None else (dim,) if np.isscalar(dim) else dim
        dims = {d % self.ndim for d in dims} if self.ndim else set()
        return self.reshape(tuple(n for d, n in enumerate(self.shape) if n != 1 or d not in dims))

    def __getitem__(self, index):
        return ops.GetItem.apply(self, index=_plain_index(index))

    # ------------------------------------------------------------ PyTorch's tensor methods
    def _dim(self, dim):
        """``dim`` as a non-negative axis of this tensor; an IndexError naming the range otherwise."""
        ndim = max(self.ndim, 1)
        if not -ndim <= dim < ndim:
            raise IndexError(f"Dimension out of range (expected to be in range of [{-ndim}, "
                             f"{ndim - 1}], but got {dim})")
        return dim % ndim

    def view_as(self, other):
        return self.reshape(other.shape)

    def mm(self, other):
        if self.ndim != 2 or other.ndim != 2:
            raise RuntimeError(f"mm: expected 2-D tensors, got shapes {self.shape} and {other.shape}")
        return self @ other

    def t(self):
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}-D")
        return self.transpose(0, 1) if self.ndim == 2 else self

    def contiguous(self):
        """Self: minidl's arrays are values to every op (kernels copy what they need contiguous)."""
        return self

    def clone(self):
        return ops.Clone.apply(self)

    def narrow(self, dim, start, length):
        dim = self._dim(dim)
        start = start + self.shape[dim] if start < 0 else start
        if start < 0 or length < 0 or start + length > self.shape[dim]:
            raise IndexError(f"narrow: start {start} + length {length} exceeds dimension {dim} "
                             f"of size {self.shape[dim]}")
        return self[(slice(None),) * dim + (slice(start, start + length),)]

    def split(self, split_size_or_sections, dim=0):
        """Pieces along ``dim``: of ``split_size`` each (the last one smaller), or of the listed sizes."""
        dim = self._dim(dim)
        n = self.shape[dim]
        if isinstance(split_size_or_sections, (int, np.integer)):
            step = max(int(split_size_or_sections), 1)
            sizes = [min(step, n - start) for start in range(0, n, step)] or [0]
        else:
            sizes = [int(size) for size in split_size_or_sections]
            if sum(sizes) != n:
                raise RuntimeError(f"split: sizes {sizes} sum to {sum(sizes)}, but dimension {dim} "
                                   f"has size {n}")
        starts = np.cumsum([0] + sizes[:-1])
        return tuple(self.narrow(dim, int(start), size) for start, size in zip(starts, sizes))

    def chunk(self, chunks, dim=0):
        return self.split(-(-self.shape[self._dim(dim)] // chunks), dim)

    def expand(self, *sizes):
        """A broadcast view of ``sizes`` (-1 keeps a size; new axes go in front); no copy."""
        sizes = _shape_args(sizes)
        new = len(sizes) - self.ndim
        if new < 0:
            raise RuntimeError(f"expand: the number of sizes given ({len(sizes)}) must be at "
                               f"least the number of dimensions of the tensor {self.shape}")
        shape = tuple(self.shape[i - new] if size == -1 and i >= new else int(size)
                      for i, size in enumerate(sizes))
        for old, size in zip(self.shape, shape[new:]):
            if old not in (1, size):
                raise RuntimeError(f"expand: the tensor of shape {self.shape} cannot expand to "
                                   f"{shape}: only size-1 axes can grow")
        return ops.Expand.apply(self, shape=shape)

    def expand_as(self, other):
        return self.expand(other.shape)

    def repeat(self, *sizes):
        sizes = tuple(int(n) for n in _shape_args(sizes))
        if len(sizes) < self.ndim:
            raise RuntimeError(f"repeat: {len(sizes)} repeat counts for a tensor of "
                               f"{self.ndim} dimensions {self.shape}; give at least {self.ndim}")
        return ops.Repeat.apply(self, reps=sizes)

    def var(self, dim=None, unbiased=True, keepdim=False, *, correction=None):
        """Variance over ``dim``: sum (x - mean)^2 / (N - correction); ``correction`` defaults to
        1 (``unbiased=True``) or 0 (``unbiased=False``), as torch.var."""
        correction = (1 if unbiased else 0) if correction is None else correction
        return ops.Var.apply(self, axis=dim, keepdims=keepdim, correction=correction)

    def std(self, dim=None, unbiased=True, keepdim=False, *, correction=None):
        return self.var(dim, unbiased, keepdim, correction=correction).sqrt()

    def cumsum(self, dim):
        if self.device == "cuda":
            raise NotImplementedError("cumsum: the cuda device has no scan kernel yet; compute it "
                                      "on the cpu (x.cpu().cumsum(dim)) and move the result back")
        return ops.Cumsum.apply(self, dim=self._dim(dim))

    def any(self, dim=None, keepdim=False):
        return self._logical_reduce(np.any, dim, keepdim)

    def all(self, dim=None, keepdim=False):
        return self._logical_reduce(np.all, dim, keepdim)

    def _logical_reduce(self, reduce, dim, keepdim):
        if isinstance(self.array, MetaArray):
            return Tensor._from_array(MetaArray(ops.reduced_meta(self.array, dim, keepdim).shape,
                                                np.bool_), self.device)
        return Tensor._from_array(reduce(self.array, axis=dim, keepdims=keepdim), self.device)

    def masked_fill(self, mask, value):
        """``value`` where ``mask`` (a bool tensor broadcastable to self) is True, self elsewhere;
        differentiable w.r.t. self and a tensor ``value``; the result keeps self's dtype."""
        result = ops.Where.apply(_operand(value), self, condition=self._mask(mask))
        return result if result.dtype == self.dtype else result.to(dtype=self.dtype)

    def tril(self, diagonal=0):
        """The lower triangle of the last two dimensions: y[..., i, j] = x[..., i, j] where
        j - i <= diagonal, else 0;  dx = dy on the kept entries, 0 elsewhere."""
        return self.masked_fill(self._outside_triangle("tril", diagonal, lower=True), 0)

    def triu(self, diagonal=0):
        """The upper triangle of the last two dimensions: y[..., i, j] = x[..., i, j] where
        j - i >= diagonal, else 0;  dx = dy on the kept entries, 0 elsewhere."""
        return self.masked_fill(self._outside_triangle("triu", diagonal - 1, lower=False), 0)

    def _outside_triangle(self, name, diagonal, lower):
        """A bool Tensor (rows, cols) on self's device: where j - i <= diagonal is False (lower)
        or True (not lower), the entries that tril / triu set to zero."""
        if self.ndim < 2:
            raise RuntimeError(f"{name}: expected a tensor with 2 or more dimensions, got shape "
                               f"{self.shape}")
        below = np.tri(*self.shape[-2:], diagonal, dtype=np.bool_)
        return Tensor(~below if lower else below, device=self.device)

    def _mask(self, mask):
        """A bool mask's array broadcast to self's shape (for masked_fill and masked_fill_)."""
        mask = mask.array if isinstance(mask, Tensor) else mask
        if mask.dtype != np.bool_:
            raise RuntimeError(f"masked_fill: expected a bool mask, got dtype {mask.dtype}")
        if mask.shape == self.shape:
            return mask
        if isinstance(mask, MetaArray):
            return MetaArray(np.broadcast_shapes(mask.shape, self.shape), np.bool_)
        return np.broadcast_to(mask, self.shape)

    def gather(self, dim, index):
        """out[i][j][k] = self[index[i][j][k]][j][k] for dim 0 (likewise on any axis), as torch.gather."""
        dim = self._dim(dim)
        self._check_index("gather", dim, index)
        return ops.Gather.apply(self, index=index.array, dim=dim)

    def scatter(self, dim, index, src=None, value=None, reduce=None):
        """A copy of self with self[index[i][j][k]][j][k] = src[i][j][k] for dim 0 (likewise on
        any axis), ``src`` a tensor or a number (or ``value=``); reduce='add' adds instead."""
        src, options = self._scatter_parts(dim, index, src, value, reduce, "scatter")
        return ops.Scatter.apply(self, src, **options)

    def scatter_add(self, dim, index, src):
        return self.scatter(dim, index, src, reduce="add")

    def _scatter_parts(self, dim, index, src, value, reduce, name):
        dim = self._dim(dim)
        self._check_index(name, dim, index)
        src = value if src is None else src
        if reduce not in (None, "add"):
            raise NotImplementedError(f"{name}: reduce={reduce!r} is not implemented; minidl has "
                                      "reduce=None and 'add' (scatter_add)")
        if isinstance(src, Tensor):
            if src.ndim != index.ndim or any(i > s for i, s in zip(index.shape, src.shape)):
                raise RuntimeError(f"{name}: index of shape {index.shape} must not be larger than "
                                   f"src of shape {src.shape} in any dimension")
        elif not isinstance(src, (int, float, bool, np.number)):
            raise TypeError(f"{name}: src must be a Tensor or a number, got {type(src).__name__}")
        return _operand(src), {"index": index.array, "dim": dim, "reduce": reduce}

    def _check_index(self, name, dim, index):
        """gather/scatter's rule: an integer index of self's rank, no larger than self on the
        axes other than ``dim``."""
        if not isinstance(index, Tensor) or not np.issubdtype(index.dtype, np.integer):
            raise TypeError(f"{name}: index must be an integer tensor, got "
                            f"{getattr(index, 'dtype', type(index).__name__)}")
        if index.ndim != self.ndim or any(i > s for d, (i, s) in enumerate(zip(index.shape, self.shape))
                                         if d != dim):
            raise RuntimeError(f"{name}: index of shape {index.shape} does not fit self of shape "
                               f"{self.shape} (same rank, no larger except in dimension {dim})")

    def sort(self, dim=-1, descending=False, *, stable=False):
        """(values, indices) sorted along ``dim``; equal values keep their order (stable); the
        values are differentiable (the gradient goes back to where each came from)."""
        indices = self._order(dim, descending)
        return SortResult(self.gather(dim, indices), indices)

    def argsort(self, dim=-1, descending=False, *, stable=False):
        return self._order(dim, descending)

    def topk(self, k, dim=-1, largest=True, sorted=True):
        """The ``k`` largest (smallest with largest=False) entries along ``dim`` and their
        indices, in sorted order, as the named tuple (values, indices)."""
        dim = self._dim(dim)
        size = self.shape[dim] if self.ndim else 1
        if not 0 <= k <= size:
            raise RuntimeError(f"topk: k={k} is out of range for dimension {dim} of size {size}")
        indices = self._order(dim, largest, k)
        return TopkResult(self.gather(dim, indices), indices)

    def _order(self, dim, descending, k=None):
        """int64 indices that sort self along ``dim`` (stably; first ``k`` of them). On cuda the
        sort runs on the host: the array is copied there and the indices back."""
        dim = self._dim(dim)
        if isinstance(self.array, MetaArray):
            shape = list(self.shape)
            if k is not None:
                shape[dim] = k
            return Tensor._from_array(MetaArray(shape, np.int64), self.device)
        x = to_host(self.array)
        if descending:  # stable and descending: sort the reversed axis, reverse back
            order = x.shape[dim] - 1 - np.flip(np.argsort(np.flip(x, dim), axis=dim, kind="stable"), dim)
        else:
            order = np.argsort(x, axis=dim, kind="stable")
        if k is not None:
            order = np.take(order, np.arange(k), axis=dim)
        return Tensor._from_array(to_device(np.ascontiguousarray(order), self.device), self.device)

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
        return tensor(data, dtype=dtype or self.dtype, device=device or self.device,
                      requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        return zeros(*size, dtype=dtype or self.dtype, device=device or self.device,
                     requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        return ones(*size, dtype=dtype or self.dtype, device=device or self.device,
                    requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
        return full(size, fill_value, dtype=dtype or self.dtype, device=device or self.device,
                    requires_grad=requires_grad)


class RemovableHandle:
    """What registering a hook returns (a tensor's post-accumulate-grad hook, a module's forward
    and forward pre-hooks), as torch.utils.hooks.RemovableHandle: ``remove()`` unregisters it."""

    def __init__(self, hooks, hook):
        self.hooks, self.key = hooks, id(hook)
        hooks[self.key] = hook

    def remove(self):
        self.hooks.pop(self.key, None)


def _operand(value):
    """Tensors pass through; Python scalars stay weak scalars (keep the tensor's dtype);
    arrays become constant tensors (on cuda for a cuda array)."""
    if isinstance(value, (Tensor, int, float, bool)):
        return value
    if isinstance(value, CudaArray):
        return Tensor(value, device="cuda")
    return Tensor(value)


def _plain_index(index):
    if isinstance(index, Tensor):
        return index.array
    if isinstance(index, tuple):
        return tuple(i.array if isinstance(i, Tensor) else i for i in index)
    return index


# ---------------------------------------------------------------- factories

def tensor(data, dtype=None, requires_grad=False, device=None):
    """A new tensor from data (copied, like ``torch.tensor``)."""
    if isinstance(data, (Tensor, np.ndarray, CudaArray)):
        data = data.array if isinstance(data, Tensor) else data
        data = copied(data)
    return Tensor(data, dtype=dtype, requires_grad=requires_grad, device=device)


def from_dlpack(obj):
    """A tensor sharing ``obj``'s memory without a copy: anything with ``__dlpack__`` whose data
    is on the cpu (PyTorch, JAX, CuPy host arrays, numpy), or a GPU array with
    ``__cuda_array_interface__`` (PyTorch, CuPy; copied only when it is not C-contiguous)."""
    kind, _ = obj.__dlpack_device__()
    if kind == 1:  # kDLCPU
        return Tensor._from_array(np.from_dlpack(obj), Device("cpu"))
    if kind == 2 and hasattr(obj, "__cuda_array_interface__"):  # kDLCUDA
        return Tensor._from_array(as_cuda(obj), Device("cuda"))
    raise NotImplementedError(f"from_dlpack: {type(obj).__name__} lives on DLPack device type {kind}; "
                              "minidl takes cpu arrays and cuda arrays with __cuda_array_interface__")


def _shape_args(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def _new(shape, dtype, requires_grad, device, fill):
    """A tensor of ``shape`` filled by ``fill(shape)``; on meta nothing is allocated or drawn."""
    device = Device(device) if device is not None else default_device()
    data = MetaArray(shape, dtype) if device == "meta" else fill(shape).astype(dtype, copy=False)
    return Tensor(data, requires_grad=requires_grad, device=device)


def full(size, fill_value, dtype=None, requires_grad=False, device=None):
    """A tensor of ``size`` filled with ``fill_value``; its dtype by default from the value
    (bool, int64 for ints, float32 for floats), as torch.full."""
    if dtype is None:
        dtype = _to_array(fill_value.array if isinstance(fill_value, Tensor) else fill_value).dtype
    value = fill_value.item() if isinstance(fill_value, Tensor) else fill_value
    shape = (size,) if np.isscalar(size) else tuple(size)
    return _new(shape, dtype, requires_grad, device, lambda s: np.full(s, value))


def zeros(*shape, dtype=float32, requires_grad=False, device=None):
    return _new(_shape_args(shape), dtype, requires_grad, device, np.zeros)


def ones(*shape, dtype=float32, requires_grad=False, device=None):
    return _new(_shape_args(shape), dtype, requires_grad, device, np.ones)


def randn(*shape, dtype=float32, requires_grad=False, device=None):
    return _new(_shape_args(shape), dtype, requires_grad, device,
                lambda s: default_generator().standard_normal(s))


def rand(*shape, dtype=float32, requires_grad=False, device=None):
    return _new(_shape_args(shape), dtype, requires_grad, device, lambda s: default_generator().random(s))


def arange(start, end=None, step=1, dtype=None, requires_grad=False, device=None):
    data = np.arange(start, end, step) if end is not None else np.arange(start)
    if dtype is None and np.issubdtype(data.dtype, np.floating):
        dtype = float32
    return Tensor(data, dtype=dtype, requires_grad=requires_grad, device=device)


def zeros_like(t, dtype=None, requires_grad=False):
    return zeros(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad, device=t.device)


def ones_like(t, dtype=None, requires_grad=False):
    return ones(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad, device=t.device)


def concatenate(tensors, dim=0):
    return ops.Concatenate.apply(*[_operand(t) for t in tensors], axis=dim)


cat = concatenate


def stack(tensors, dim=0):
    return ops.Stack.apply(*[_operand(t) for t in tensors], axis=dim)
