"""CudaArray: the array of a tensor on the cuda device.

A CudaArray is a strided view of a flat numba device buffer: ``base`` (1-d device array),
``shape``, ``elem_strides`` (strides in elements, 0 on broadcast axes) and ``offset`` (in
elements). Views (reshape of a contiguous array, transpose, basic slicing, broadcast_to,
expand_dims, moveaxis, split) cost nothing; every computation is a numba.cuda kernel
(``elementwise``, ``matmul``), and data comes back to the host only through ``to_host()``,
``item()``, ``bool()``/``float()``, ``tolist()`` or ``repr``.

It implements numpy's dispatch protocols, ``__array_ufunc__`` (``np.exp(x)``, ``a * b``,
``np.maximum``, ``np.add.at`` ...) and ``__array_function__`` (``np.sum``, ``np.where``,
``np.transpose``, ``np.concatenate``, ``np.zeros_like``, and creation functions called with
``like=x`` ...), so ``minidl.ops`` and ``nn.functional``, written against numpy, run on the
GPU unchanged. It refuses silent conversion to numpy (``np.asarray(x)`` raises) so that no
host round trip hides in an op. Host numpy operands (a dropout mask, ``np.arange`` indices)
are uploaded; Python and numpy scalars are passed to kernels as arguments.

This module imports numpy only; ``numba.cuda`` is imported when the first array is made.
"""
import numbers

import numpy as np

from . import elementwise as ew
from . import matmul as mm
from ._runtime import cuda, many_outputs, padded, reduction_chunk


def _prod(shape):
    result = 1
    for n in shape:
        result *= int(n)
    return result


def c_strides(shape):
    """Element strides of a C-contiguous array of ``shape``."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(int(n), 1)
    return tuple(reversed(strides))


class _Flags:
    __slots__ = ("c_contiguous", "writeable")

    def __init__(self, c_contiguous):
        self.c_contiguous = c_contiguous
        self.writeable = True

    def __getitem__(self, key):
        return {"C_CONTIGUOUS": self.c_contiguous, "WRITEABLE": True}[key.upper()]


class CudaArray:
    """A strided view of a numba device buffer; see the module docstring."""

    __slots__ = ("base", "shape", "elem_strides", "offset", "dtype")
    __array_priority__ = 100  # below Tensor's 1000: Tensor <op> CudaArray stays a Tensor op
    device = "cuda"

    def __init__(self, base, shape, elem_strides=None, offset=0):
        self.base = base
        self.shape = tuple(int(n) for n in shape)
        self.elem_strides = (c_strides(self.shape) if elem_strides is None
                             else tuple(int(s) for s in elem_strides))
        self.offset = int(offset)
        self.dtype = np.dtype(base.dtype)

    # ------------------------------------------------------------ attributes
    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return _prod(self.shape)

    @property
    def itemsize(self):
        return self.dtype.itemsize

    @property
    def nbytes(self):
        return self.size * self.itemsize

    @property
    def strides(self):
        """Strides in bytes, as numpy."""
        return tuple(s * self.itemsize for s in self.elem_strides)

    @property
    def is_contiguous(self):
        if self.size <= 1:
            return True
        return all(n == 1 or s == c for n, s, c in zip(self.shape, self.elem_strides,
                                                       c_strides(self.shape)))

    @property
    def flags(self):
        return _Flags(self.is_contiguous)

    @property
    def T(self):
        return self.transpose()

    @property
    def __cuda_array_interface__(self):
        """A zero-copy view for CuPy, PyTorch or numba (not available under the simulator)."""
        base = self.base.__cuda_array_interface__
        interface = {
            "shape": self.shape,
            "strides": None if self.is_contiguous else self.strides,
            "data": (base["data"][0] + self.offset * self.itemsize if self.size else 0, False),
            "typestr": self.dtype.str,
            "version": 3,
        }
        if "stream" in base:
            interface["stream"] = base["stream"]
        return interface

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    # ------------------------------------------------------------ host transfers
    def to_host(self):
        """A numpy copy of the data."""
        if not self.size:
            return np.zeros(self.shape, dtype=self.dtype)
        x = self.ascontiguous()
        return x.base[x.offset:x.offset + x.size].copy_to_host().reshape(self.shape)

    get = to_host  # CuPy's name

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            f"a cuda array of shape {self.shape} cannot become a numpy array implicitly (that would "
            "be a hidden device-to-host copy); call .to_host(), or Tensor.cpu() / Tensor.numpy()")

    def item(self):
        if self.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        return self.to_host().reshape(()).item()

    def tolist(self):
        return self.to_host().tolist()

    def __bool__(self):
        if self.size != 1:
            raise ValueError(f"the truth value of an array with {self.size} elements is ambiguous")
        return bool(self.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __repr__(self):
        return f"CudaArray({np.array2string(self.to_host(), separator=', ')}, dtype={self.dtype})"

    # ------------------------------------------------------------ views and copies
    def _view(self, shape, elem_strides, offset=None):
        return CudaArray(self.base, shape, elem_strides, self.offset if offset is None else offset)

    def flat(self):
        """The 1-d device array of a contiguous array's elements (a view of ``base``)."""
        x = self.ascontiguous()
        if x.offset == 0 and x.base.shape[0] == x.size:
            return x.base
        return x.base[x.offset:x.offset + x.size]

    def copy(self, order="C"):
        out = empty(self.shape, self.dtype)
        _map_unary("copy", self, out=out)
        return out

    def ascontiguous(self):
        return self if self.is_contiguous else self.copy()

    def astype(self, dtype, copy=True, **kwargs):
        dtype = np.dtype(dtype)
        if dtype == self.dtype and not copy:
            return self
        out = empty(self.shape, dtype)
        _map_unary("copy", self, out=out)
        return out

    def reshape(self, *shape, order="C"):
        from ...meta import resolve_reshape
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        if len(shape) == 1 and shape[0] is None:
            shape = ()
        shape = resolve_reshape(self.shape, shape)
        x = self.ascontiguous()
        return CudaArray(x.base, shape, None, x.offset)

    def ravel(self):
        return self.reshape(-1)

    flatten = ravel

    def transpose(self, *axes):
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list, np.ndarray))):
            axes = axes[0]
        axes = tuple(reversed(range(self.ndim))) if axes is None or len(axes) == 0 else tuple(
            int(a) % self.ndim for a in axes)
        if sorted(axes) != list(range(self.ndim)):
            raise ValueError(f"axes {axes} don't match an array of {self.ndim} dimensions")
        return self._view([self.shape[a] for a in axes], [self.elem_strides[a] for a in axes])

    def swapaxes(self, axis1, axis2):
        axes = list(range(self.ndim))
        a, b = axis1 % self.ndim, axis2 % self.ndim
        axes[a], axes[b] = axes[b], axes[a]
        return self.transpose(axes)

    def squeeze(self, axis=None):
        if axis is None:
            axes = {d for d, n in enumerate(self.shape) if n == 1}
        else:
            axes = {a % self.ndim for a in ((axis,) if np.isscalar(axis) else axis)}
            for a in axes:
                if self.shape[a] != 1:
                    raise ValueError("cannot select an axis to squeeze out which has size not equal to one")
        keep = [d for d in range(self.ndim) if d not in axes]
        return self._view([self.shape[d] for d in keep], [self.elem_strides[d] for d in keep])

    def expand_dims(self, axis):
        axes = (axis,) if np.isscalar(axis) else tuple(axis)
        ndim = self.ndim + len(axes)
        axes = {a % ndim for a in axes}
        shape, strides, source = [], [], iter(zip(self.shape, self.elem_strides))
        for d in range(ndim):
            if d in axes:
                shape.append(1)
                strides.append(0)
            else:
                n, s = next(source)
                shape.append(n)
                strides.append(s)
        return self._view(shape, strides)

    def broadcast_to(self, shape):
        shape = tuple(int(n) for n in ((shape,) if np.isscalar(shape) else shape))
        return self._view(shape, broadcast_strides(self, shape))

    def moveaxis(self, source, destination):
        source = [s % self.ndim for s in ((source,) if np.isscalar(source) else source)]
        destination = [d % self.ndim for d in
                       ((destination,) if np.isscalar(destination) else destination)]
        order = [d for d in range(self.ndim) if d not in source]
        for dest, src in sorted(zip(destination, source)):
            order.insert(dest, src)
        return self.transpose(order)

    def fill(self, value):
        dims, o_st = padded(self.shape, self.elem_strides)
        ew.launch(ew.fill_kernel(), self.size, dims, self.base, o_st, self.offset,
                  self.dtype.type(value))

    # ------------------------------------------------------------ reductions
    def sum(self, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
        return _reduce("sum", self, axis, keepdims, dtype)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
        return _reduce("mean", self, axis, keepdims, dtype)

    def max(self, axis=None, out=None, keepdims=False, **kwargs):
        return _reduce("max", self, axis, keepdims)

    def min(self, axis=None, out=None, keepdims=False, **kwargs):
        return _reduce("min", self, axis, keepdims)

    def argmax(self, axis=None, out=None, keepdims=False):
        return _reduce("argmax", self, axis, keepdims)

    def argmin(self, axis=None, out=None, keepdims=False):
        return _reduce("argmin", self, axis, keepdims)

    def any(self, axis=None, out=None, keepdims=False):
        return _reduce("any", self, axis, keepdims)

    def all(self, axis=None, out=None, keepdims=False):
        return _reduce("all", self, axis, keepdims)

    def clip(self, min=None, max=None):
        return _clip(self, min, max)

    # ------------------------------------------------------------ indexing
    def __getitem__(self, index):
        plan = _index_plan(self, index)
        if plan[0] == "view":
            return plan[1]
        _, offsets, rest_shape, rest_strides = plan
        out = empty(offsets.shape + rest_shape, self.dtype)
        rest, r_st = padded(rest_shape, rest_strides)
        ew.launch(ew.gather_kernel(), out.size, _prod(rest_shape), rest, out.base, self.base,
                  offsets.flat(), r_st)
        return out

    def __setitem__(self, index, value):
        plan = _index_plan(self, index)
        if plan[0] == "view":
            _assign(plan[1], value)
        else:
            _scatter(self, plan, value, accumulate=False)

    # ------------------------------------------------------------ operators
    def __add__(self, other):
        return _binary_op("add", self, other)

    def __radd__(self, other):
        return _binary_op("add", other, self)

    def __sub__(self, other):
        return _binary_op("subtract", self, other)

    def __rsub__(self, other):
        return _binary_op("subtract", other, self)

    def __mul__(self, other):
        return _binary_op("multiply", self, other)

    def __rmul__(self, other):
        return _binary_op("multiply", other, self)

    def __truediv__(self, other):
        return _binary_op("true_divide", self, other)

    def __rtruediv__(self, other):
        return _binary_op("true_divide", other, self)

    def __floordiv__(self, other):
        return _binary_op("floor_divide", self, other)

    def __mod__(self, other):
        return _binary_op("remainder", self, other)

    def __pow__(self, other):
        return _binary_op("power", self, other)

    def __rpow__(self, other):
        return _binary_op("power", other, self)

    def __and__(self, other):
        return _binary_op("bitwise_and", self, other)

    __rand__ = __and__

    def __or__(self, other):
        return _binary_op("bitwise_or", self, other)

    __ror__ = __or__

    def __xor__(self, other):
        return _binary_op("bitwise_xor", self, other)

    def __iadd__(self, other):
        return _binary_op("add", self, other, out=self)

    def __isub__(self, other):
        return _binary_op("subtract", self, other, out=self)

    def __imul__(self, other):
        return _binary_op("multiply", self, other, out=self)

    def __itruediv__(self, other):
        return _binary_op("true_divide", self, other, out=self)

    def __iand__(self, other):
        return _binary_op("bitwise_and", self, other, out=self)

    def __ior__(self, other):
        return _binary_op("bitwise_or", self, other, out=self)

    def __lt__(self, other):
        return _binary_op("less", self, other)

    def __le__(self, other):
        return _binary_op("less_equal", self, other)

    def __gt__(self, other):
        return _binary_op("greater", self, other)

    def __ge__(self, other):
        return _binary_op("greater_equal", self, other)

    def __eq__(self, other):
        return _binary_op("equal", self, other)

    def __ne__(self, other):
        return _binary_op("not_equal", self, other)

    __hash__ = None

    def __neg__(self):
        return _map_unary("negative", self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _map_unary("absolute", self)

    def __invert__(self):
        if self.dtype != np.bool_:
            raise TypeError("~ on a cuda array is defined for booleans only")
        return _map_unary("logical_not", self)

    def __matmul__(self, other):
        operand = _operand(other)
        return NotImplemented if operand is None else matmul(self, operand)

    def __rmatmul__(self, other):
        operand = _operand(other)
        return NotImplemented if operand is None else matmul(operand, self)

    # ------------------------------------------------------------ numpy protocols
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if not all(isinstance(x, _OPERAND_TYPES) for x in inputs):
            return NotImplemented  # e.g. a Tensor: its reflected operator takes over
        name = _UFUNC_ALIASES.get(ufunc.__name__, ufunc.__name__)
        out = kwargs.pop("out", None)
        out = out[0] if isinstance(out, tuple) else out
        dtype = kwargs.pop("dtype", None)
        if kwargs or (out is not None and not isinstance(out, CudaArray)):
            return NotImplemented
        if method == "__call__":
            if name == "matmul":
                result = matmul(*inputs)
            elif name in ew.UNARY and len(inputs) == 1:
                result = _map_unary(name, _operand(inputs[0]), out=out)
            elif name in ew.BINARY and len(inputs) == 2:
                result = _binary_op(name, inputs[0], inputs[1], out=out)
            else:
                return NotImplemented
            return result if dtype is None else result.astype(dtype, copy=False)
        if method == "at" and name == "add":
            target, index = inputs[0], inputs[1]
            values = inputs[2] if len(inputs) > 2 else 1
            _scatter(target, _index_plan(target, index, force_offsets=True), values, accumulate=True)
            return None
        if method == "reduce" and name in _REDUCE_UFUNCS:
            axis = kwargs.get("axis", 0)
            return _reduce(_REDUCE_UFUNCS[name], _operand(inputs[0]), axis, False, dtype)
        return NotImplemented

    def __array_function__(self, func, types, args, kwargs):
        handler = _FUNCTIONS.get(func)
        if handler is None or not all(issubclass(t, (CudaArray, np.ndarray)) for t in types):
            return NotImplemented
        return handler(*args, **kwargs)


_OPERAND_TYPES = (CudaArray, np.ndarray, numbers.Number, np.generic, list, tuple, slice, type(None),
                  type(Ellipsis))
_UFUNC_ALIASES = {"divide": "true_divide", "abs": "absolute", "invert": "logical_not",
                  "conjugate": "positive"}
_REDUCE_UFUNCS = {"add": "sum", "maximum": "max", "minimum": "min", "logical_or": "any",
                  "logical_and": "all"}


# ---------------------------------------------------------------- creation and transfer

def empty(shape, dtype=np.float32):
    shape = tuple(int(n) for n in ((shape,) if np.isscalar(shape) else shape))
    dtype = np.dtype(dtype)
    return CudaArray(cuda().device_array(_prod(shape), dtype=dtype), shape)


def full(shape, value, dtype=np.float32):
    out = empty(shape, dtype)
    out.fill(value)
    return out


def from_host(array, dtype=None):
    """Upload a numpy array (or anything np.asarray takes): one host-to-device copy."""
    array = np.ascontiguousarray(array, dtype=dtype)
    if array.dtype == object:
        raise TypeError("cannot put an object array on the cuda device")
    if not array.size:
        return empty(array.shape, array.dtype)
    return CudaArray(cuda().to_device(array.reshape(-1)), array.shape)


def as_cuda(array):
    """``array`` as a CudaArray: itself; a zero-copy view of a ``__cuda_array_interface__``
    array (CuPy, PyTorch, numba) when it is C-contiguous; else uploaded from the host."""
    if isinstance(array, CudaArray):
        return array
    if hasattr(array, "__cuda_array_interface__") and not isinstance(array, np.ndarray):
        device_array = cuda().as_cuda_array(array)
        if device_array.is_c_contiguous():
            return CudaArray(device_array.reshape(-1) if device_array.ndim != 1 else device_array,
                             device_array.shape)
        return from_host(device_array.copy_to_host())
    return from_host(array)


def is_cuda_array(array):
    return isinstance(array, CudaArray)


def _operand(value):
    """CudaArrays pass; numpy arrays are uploaded; scalars stay scalars; None for anything
    else (a Tensor: numpy then hands the operation to the Tensor's reflected operator)."""
    if isinstance(value, CudaArray):
        return value
    if isinstance(value, np.ndarray):
        return from_host(value)
    if isinstance(value, (numbers.Number, np.generic)):
        return value
    if isinstance(value, (list, tuple)):
        return from_host(np.asarray(value))
    return None


def broadcast_strides(x, shape):
    """Element strides that read ``x`` as broadcast to ``shape`` (0 on stretched axes)."""
    extra = len(shape) - x.ndim
    if extra < 0:
        raise ValueError(f"cannot broadcast an array of shape {x.shape} to {tuple(shape)}")
    strides = [0] * extra
    for n_x, s, n in zip(x.shape, x.elem_strides, shape[extra:]):
        if n_x == n:
            strides.append(s if n != 1 else 0)
        elif n_x == 1:
            strides.append(0)
        else:
            raise ValueError(f"operands could not be broadcast together: {x.shape} to {tuple(shape)}")
    return tuple(strides)


# ---------------------------------------------------------------- elementwise

def _probe(value):
    """A zero-size numpy stand-in with the operand's dtype (scalars stay themselves, so numpy's
    promotion rules for weak Python scalars apply)."""
    return np.empty(0, value.dtype) if isinstance(value, CudaArray) else value


def _result_dtype(name, *operands):
    with np.errstate(all="ignore"):
        probe = getattr(np, name if name != "copy" else "positive")(*[_probe(x) for x in operands])
    return np.asarray(probe).dtype


def _map_unary(name, x, out=None):
    if not isinstance(x, CudaArray):
        x = from_host(np.asarray(x))
    if out is None:
        dtype = x.dtype if name == "copy" else _result_dtype(name, x)
        out = empty(x.shape, dtype)
    shape, o_st, a_st = padded(out.shape, out.elem_strides, broadcast_strides(x, out.shape))
    ew.launch(ew.unary_kernel(name), out.size, shape, out.base, o_st, out.offset,
              x.base, a_st, x.offset)
    return out


def _shares_memory(a, b):
    return isinstance(b, CudaArray) and b.base is a.base and (
        b.offset, b.shape, b.elem_strides) != (a.offset, a.shape, a.elem_strides)


def _binary_op(name, a, b, out=None):
    a, b = _operand(a), _operand(b)
    if a is None or b is None:
        return NotImplemented
    a_arr, b_arr = isinstance(a, CudaArray), isinstance(b, CudaArray)
    if not (a_arr or b_arr):
        a = from_host(np.asarray(a))
        a_arr = True
    shape = np.broadcast_shapes(a.shape if a_arr else (), b.shape if b_arr else ())
    if out is None:
        out = empty(shape, _result_dtype(name, a, b))
    else:
        if tuple(shape) != out.shape:
            raise ValueError(f"non-broadcastable output operand with shape {out.shape} doesn't "
                             f"match the broadcast shape {tuple(shape)}")
        if _shares_memory(out, b):
            b = b.copy()
        if _shares_memory(out, a):
            a = a.copy()
    if not out.size:
        return out
    if a_arr and b_arr:
        dims, o_st, a_st, b_st = padded(out.shape, out.elem_strides, broadcast_strides(a, shape),
                                        broadcast_strides(b, shape))
        args = (out.base, o_st, out.offset, a.base, a_st, a.offset, b.base, b_st, b.offset)
        kernel = ew.binary_kernel(name, "")
    elif a_arr:
        dims, o_st, a_st = padded(out.shape, out.elem_strides, broadcast_strides(a, shape))
        scalar = np.result_type(a.dtype, b).type(b)
        args = (out.base, o_st, out.offset, a.base, a_st, a.offset, scalar)
        kernel = ew.binary_kernel(name, "b")
    else:
        dims, o_st, b_st = padded(out.shape, out.elem_strides, broadcast_strides(b, shape))
        scalar = np.result_type(b.dtype, a).type(a)
        args = (out.base, o_st, out.offset, scalar, b.base, b_st, b.offset)
        kernel = ew.binary_kernel(name, "a")
    ew.launch(kernel, out.size, dims, *args)
    return out


def _assign(view, value):
    """view[...] = value (broadcast), in place."""
    value = _operand(value)
    if not isinstance(value, CudaArray):
        view.fill(value)
        return
    if _shares_memory(view, value):
        value = value.copy()
    _map_unary("copy", value.broadcast_to(view.shape), out=view)


def where(condition, x, y):
    arrays = [_operand(v) for v in (condition, x, y)]
    dtype = np.result_type(*[_probe(v) for v in arrays[1:]])
    arrays = [v if isinstance(v, CudaArray) else from_host(np.asarray(v, dtype=dtype if i else None))
              for i, v in enumerate(arrays)]
    shape = np.broadcast_shapes(*[v.shape for v in arrays])
    out = empty(shape, dtype)
    dims, c_st, a_st, b_st = padded(shape, *[broadcast_strides(v, shape) for v in arrays])
    c, a, b = arrays
    ew.launch(ew.where_kernel(), out.size, dims, out.base, c.base, c_st, c.offset,
              a.base, a_st, a.offset, b.base, b_st, b.offset)
    return out


def _clip(x, lo=None, hi=None, out=None, **kwargs):
    lo = kwargs.get("min", lo)
    hi = kwargs.get("max", hi)
    result = x
    if lo is not None:
        result = _binary_op("maximum", result, np.asarray(lo, dtype=x.dtype).item()
                            if np.isscalar(lo) else lo)
    if hi is not None:
        result = _binary_op("minimum", result, np.asarray(hi, dtype=x.dtype).item()
                            if np.isscalar(hi) else hi)
    return result.copy() if result is x else result


# ---------------------------------------------------------------- reductions

def _normalize_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if np.isscalar(axis) else tuple(axis)
    normalized = []
    for a in axes:
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise np.exceptions.AxisError(a, ndim)
        normalized.append(int(a) % ndim if ndim else 0)
    return tuple(sorted(set(normalized)))


def _reduce(name, x, axis=None, keepdims=False, dtype=None):
    if not isinstance(x, CudaArray):
        x = from_host(np.asarray(x))
    axes = _normalize_axes(axis, x.ndim)
    if name in ("argmax", "argmin") and axis is not None and not np.isscalar(axis):
        raise TypeError("argmax/argmin take one axis or None")
    kept = [d for d in range(x.ndim) if d not in axes]
    kept_shape = tuple(x.shape[d] for d in kept)
    red_shape = tuple(x.shape[d] for d in axes)
    if name in ("sum", "mean"):
        if dtype is None:
            integral = x.dtype.kind in "biu"
            dtype = (np.int64 if name == "sum" else np.float64) if integral else x.dtype
    elif name in ("argmax", "argmin"):
        dtype = np.int64
    elif name in ("any", "all"):
        dtype = np.bool_
    else:
        dtype = x.dtype
    k_total = _prod(red_shape)
    if not k_total and name in ("max", "min", "argmax", "argmin"):
        raise ValueError(f"zero-size array to reduction operation {name} which has no identity")
    ks, k_st = padded(kept_shape, [x.elem_strides[d] for d in kept])
    rs, r_st = padded(red_shape, [x.elem_strides[d] for d in axes])
    m = _prod(kept_shape)
    chunk = reduction_chunk()
    if k_total > chunk and m < many_outputs() and name not in ("argmax", "argmin"):
        # few long reductions (a full sum): partial results per chunk, then reduce those
        parts = -(-k_total // chunk)
        first = "sum" if name in ("sum", "mean") else name
        partial = empty((m, parts), np.float64 if first == "sum" else (
            np.bool_ if name in ("any", "all") else x.dtype))
        ew.launch(ew.reduce_kernel(first), partial.size, k_total, chunk, parts, ks, k_st, rs, r_st,
                  x.base, x.offset, partial.base)
        out = _reduce(first, partial, 1, False, np.float64 if first == "sum" else None)
        if name == "mean":
            out = out / k_total
        out = out.astype(dtype, copy=False).reshape(kept_shape)
    else:
        out = empty(kept_shape, dtype)
        ew.launch(ew.reduce_kernel(name), out.size, k_total, max(k_total, 1), 1, ks, k_st, rs, r_st,
                  x.base, x.offset, out.base)
    if keepdims:
        out = out.reshape(tuple(1 if d in axes else n for d, n in enumerate(x.shape)))
    return out


# ---------------------------------------------------------------- matmul

def matmul(a, b):
    """numpy's matmul: 1-d operands are a row (left) or a column (right); batch axes broadcast."""
    a, b = (v if isinstance(v, CudaArray) else from_host(np.asarray(v)) for v in (a, b))
    if not a.ndim or not b.ndim:
        raise ValueError("matmul: input operand does not have enough dimensions")
    dtype = np.result_type(a.dtype, b.dtype)
    a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
    a2 = a.expand_dims(0) if a.ndim == 1 else a
    b2 = b.expand_dims(-1) if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ValueError(f"matmul: Input operand 1 has a mismatch in its core dimension 0, with "
                         f"gufunc signature (n?,k),(k,m?)->(n?,m?) (size {b2.shape[-2]} is "
                         f"different from {a2.shape[-1]})")
    batch = tuple(np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]))
    a_bst = broadcast_strides(a2._view(a2.shape[:-2], a2.elem_strides[:-2]), batch)
    b_bst = broadcast_strides(b2._view(b2.shape[:-2], b2.elem_strides[:-2]), batch)
    out = empty(batch + (a2.shape[-2], b2.shape[-1]), dtype)
    mm.matmul(a2, b2, out, batch, a_bst, b_bst)
    if a.ndim == 1:
        out = out.squeeze(-2)
    if b.ndim == 1:
        out = out.squeeze(-1)
    return out


# ---------------------------------------------------------------- indexing

def _is_basic(part):
    return (part is None or part is Ellipsis or isinstance(part, slice)
            or (isinstance(part, (numbers.Integral, np.integer)) and not isinstance(part, (bool, np.bool_))))


def _basic_view(x, parts):
    real = sum(1 for p in parts if p is not None and p is not Ellipsis)
    if real > x.ndim:
        raise IndexError(f"too many indices for array: array is {x.ndim}-dimensional, but {real} "
                         "were indexed")
    if any(p is Ellipsis for p in parts):
        at = next(i for i, p in enumerate(parts) if p is Ellipsis)
        parts = parts[:at] + (slice(None),) * (x.ndim - real) + parts[at + 1:]
    else:
        parts = parts + (slice(None),) * (x.ndim - real)
    shape, strides, offset, d = [], [], x.offset, 0
    for p in parts:
        if p is None:
            shape.append(1)
            strides.append(0)
            continue
        n, s = x.shape[d], x.elem_strides[d]
        if isinstance(p, slice):
            start, stop, step = p.indices(n)
            length = len(range(start, stop, step))
            if length:
                offset += start * s
            shape.append(length)
            strides.append(s * step)
        else:
            i = int(p)
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for axis {d} with size {n}")
            offset += (i % n) * s
        d += 1
    return x._view(shape, strides, offset)


def _index_array(part):
    if isinstance(part, CudaArray):
        return part
    return from_host(np.asarray(part))


def _index_plan(x, index, force_offsets=False):
    """("view", view) for basic indexing, else ("offsets", offsets, rest_shape, rest_strides):
    the element offset of every indexed position (a contiguous int64 CudaArray) and the
    trailing axes each position spans.

    Integer index arrays in the leading axes followed by slices are resolved on the device
    (offsets = offset + sum_d (index_d mod n_d) stride_d); any other advanced index (boolean
    masks, arrays after slices) maps offsets on the host, copying index arrays there.
    Index arrays are not bounds-checked on the device (as in CUDA kernels): keep them in range."""
    parts = index if isinstance(index, tuple) else (index,)
    if all(_is_basic(p) for p in parts):
        view = _basic_view(x, parts)
        if not force_offsets:
            return ("view", view)
        return ("offsets", _offsets_of(view.shape, view.elem_strides, view.offset), (), ())
    k = 0
    while k < len(parts) and not _is_basic(parts[k]):
        k += 1
    tail = parts[k:]
    leading = [_index_array(p) if not isinstance(p, list) else from_host(np.asarray(p))
               for p in parts[:k]]
    device_path = (k > 0 and all(isinstance(p, slice) for p in tail)
                   and all(i.dtype.kind in "iu" for i in leading))
    if device_path:
        view = _basic_view(x, (slice(None),) * k + tuple(tail))
        shape = tuple(np.broadcast_shapes(*[i.shape for i in leading]))
        offsets = view.offset
        for d, i in enumerate(leading):
            offsets = (i % view.shape[d]) * view.elem_strides[d] + offsets
        if not isinstance(offsets, CudaArray):
            offsets = from_host(np.asarray(offsets, dtype=np.int64))
        offsets = offsets.astype(np.int64, copy=False).broadcast_to(shape).ascontiguous()
        return ("offsets", offsets, view.shape[k:], view.elem_strides[k:])
    grid = np.full(x.shape, x.offset, dtype=np.int64)
    for d, (n, s) in enumerate(zip(x.shape, x.elem_strides)):
        grid += (np.arange(n, dtype=np.int64) * s).reshape((n,) + (1,) * (x.ndim - d - 1))
    host_index = tuple(p.to_host() if isinstance(p, CudaArray) else p for p in parts)
    selected = grid[host_index if isinstance(index, tuple) else host_index[0]]
    return ("offsets", from_host(np.ascontiguousarray(selected)), (), ())


def _offsets_of(shape, strides, offset):
    grid = np.full(shape, offset, dtype=np.int64)
    for d, (n, s) in enumerate(zip(shape, strides)):
        grid += (np.arange(n, dtype=np.int64) * s).reshape((n,) + (1,) * (len(shape) - d - 1))
    return from_host(grid)


def _scatter(target, plan, values, accumulate):
    _, offsets, rest_shape, rest_strides = plan
    shape = offsets.shape + tuple(rest_shape)
    values = _operand(values)
    if not isinstance(values, CudaArray):
        values = from_host(np.asarray(values, dtype=target.dtype))
    values = values.astype(target.dtype, copy=False)
    if _shares_memory(target, values) or values.base is target.base:
        values = values.copy()
    if not _prod(shape):
        return
    dims, v_st = padded(shape, broadcast_strides(values, shape))
    rest, r_st = padded(rest_shape, rest_strides)
    ew.launch(ew.scatter_kernel(bool(accumulate)), _prod(shape), _prod(rest_shape), dims, rest,
              target.base, offsets.flat(), r_st, values.base, v_st, values.offset)


# ---------------------------------------------------------------- numpy functions

def _cuda_operand(value, dtype=None):
    value = _operand(value)
    if not isinstance(value, CudaArray):
        value = from_host(np.asarray(value, dtype=dtype))
    return value if dtype is None else value.astype(dtype, copy=False)


def _concatenate(arrays, axis=0, out=None, dtype=None, casting=None):
    arrays = [_cuda_operand(a) for a in arrays]
    if axis is None:
        arrays, axis = [a.ravel() for a in arrays], 0
    dtype = np.dtype(dtype) if dtype is not None else np.result_type(*[a.dtype for a in arrays])
    axis = axis % arrays[0].ndim
    shape = list(arrays[0].shape)
    shape[axis] = sum(a.shape[axis] for a in arrays)
    result = empty(shape, dtype)
    start = 0
    for a in arrays:
        index = (slice(None),) * axis + (slice(start, start + a.shape[axis]),)
        _assign(result[index], a)
        start += a.shape[axis]
    return result


def _stack(arrays, axis=0, out=None, dtype=None, casting=None):
    arrays = [_cuda_operand(a) for a in arrays]
    axis = axis % (arrays[0].ndim + 1)
    return _concatenate([a.expand_dims(axis) for a in arrays], axis=axis, dtype=dtype)


def _split(array, indices_or_sections, axis=0):
    n = array.shape[axis]
    if np.isscalar(indices_or_sections):
        sections = int(indices_or_sections)
        if n % sections:
            raise ValueError("array split does not result in an equal division")
        bounds = [n // sections * i for i in range(1, sections)]
    else:
        bounds = [int(b) for b in indices_or_sections]
    edges = [0] + bounds + [n]
    axis = axis % array.ndim
    return [array[(slice(None),) * axis + (slice(lo, hi),)] for lo, hi in zip(edges[:-1], edges[1:])]


def _like_shape(a, shape):
    return a.shape if shape is None else ((shape,) if np.isscalar(shape) else tuple(shape))


def _full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, **kwargs):
    dtype = np.dtype(dtype) if dtype is not None else a.dtype
    shape = _like_shape(a, shape)
    if isinstance(fill_value, CudaArray):
        return fill_value.astype(dtype, copy=False).broadcast_to(shape).copy()
    return full(shape, fill_value, dtype)


def _asarray(a, dtype=None, order=None, copy=None, **kwargs):
    result = _cuda_operand(a, dtype)
    if copy and result is a:
        result = result.copy()
    return result


def _ascontiguousarray(a, dtype=None, **kwargs):
    return _cuda_operand(a, dtype).ascontiguous()


def _array(a, dtype=None, copy=True, **kwargs):
    result = _cuda_operand(a, dtype)
    return result.copy() if copy and result is a else result


def _arange(*args, dtype=None, **kwargs):
    return from_host(np.arange(*args, dtype=dtype))


def _sum(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    return _reduce("sum", _cuda_operand(a), axis, keepdims, dtype)


def _reducer(name):
    def reduce(a, axis=None, out=None, keepdims=False, **kwargs):
        return _reduce(name, _cuda_operand(a), axis, keepdims)
    return reduce


def _mean(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    return _reduce("mean", _cuda_operand(a), axis, keepdims, dtype)


def _dot(a, b, out=None):
    return matmul(a, b)


_FUNCTIONS = {
    np.sum: _sum,
    np.mean: _mean,
    np.max: _reducer("max"),
    np.amax: _reducer("max"),
    np.min: _reducer("min"),
    np.amin: _reducer("min"),
    np.argmax: _reducer("argmax"),
    np.argmin: _reducer("argmin"),
    np.any: _reducer("any"),
    np.all: _reducer("all"),
    np.squeeze: lambda a, axis=None: a.squeeze(axis),
    np.expand_dims: lambda a, axis: a.expand_dims(axis),
    np.broadcast_to: lambda array, shape, subok=False: _cuda_operand(array).broadcast_to(shape),
    np.transpose: lambda a, axes=None: a.transpose(axes),
    np.swapaxes: lambda a, axis1, axis2: a.swapaxes(axis1, axis2),
    np.moveaxis: lambda a, source, destination: a.moveaxis(source, destination),
    np.reshape: lambda a, shape=None, order="C", **kw: a.reshape(kw.get("newshape", shape)),
    np.ravel: lambda a, order="C": a.ravel(),
    np.concatenate: _concatenate,
    np.stack: _stack,
    np.split: _split,
    np.where: where,
    np.clip: _clip,
    np.copy: lambda a, order="K", subok=False: a.copy(),
    np.shape: lambda a: a.shape,
    np.ndim: lambda a: a.ndim,
    np.size: lambda a, axis=None: a.size if axis is None else a.shape[axis],
    np.dot: _dot,
    np.zeros_like: lambda a, dtype=None, order="K", subok=True, shape=None, **kw: _full_like(
        a, 0, dtype, shape=shape),
    np.ones_like: lambda a, dtype=None, order="K", subok=True, shape=None, **kw: _full_like(
        a, 1, dtype, shape=shape),
    np.empty_like: lambda a, dtype=None, order="K", subok=True, shape=None, **kw: empty(
        _like_shape(a, shape), a.dtype if dtype is None else dtype),
    np.full_like: _full_like,
    # creation functions reached through like=<a CudaArray>
    np.zeros: lambda shape, dtype=float, order="C", **kw: full(shape, 0, dtype),
    np.ones: lambda shape, dtype=None, order="C", **kw: full(shape, 1, dtype or float),
    np.empty: lambda shape, dtype=float, order="C", **kw: empty(shape, dtype),
    np.full: lambda shape, fill_value, dtype=None, order="C", **kw: full(
        shape, fill_value, dtype if dtype is not None else np.asarray(fill_value).dtype),
    np.asarray: _asarray,
    np.array: _array,
    np.ascontiguousarray: _ascontiguousarray,
    np.arange: _arange,
}
