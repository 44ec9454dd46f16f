"""PyTorch's top-level functions (``torch.exp(x)``, ``torch.max(x, 1)``, ``torch.randint(...)``),
so that a PyTorch program runs after ``import minidl as torch``.

Each is the Tensor method of that name or a factory over minidl's generator
(``minidl.manual_seed``); arguments and defaults are PyTorch's.
"""
import numpy as np

from . import ops
from .device import Device, to_host
from .random import default_generator
from .tensor import Tensor, Size, _new, _operand, float32, int64, tensor, zeros

float16, uint8, int8, int16 = np.float16, np.uint8, np.int8, np.int16  # more dtypes (minidl.uint8 ...)


# ---------------------------------------------------------------- the Tensor methods, as functions

def flatten(input, start_dim=0, end_dim=-1):
    return input.flatten(start_dim, end_dim)


def exp(input):
    return input.exp()


def log(input):
    return input.log()


def sqrt(input):
    return input.sqrt()


def abs(input):
    return input.abs()


def sin(input):
    return input.sin()


def cos(input):
    return input.cos()


def tanh(input):
    return input.tanh()


def sigmoid(input):
    return input.sigmoid()


def relu(input):
    return input.relu()


def softmax(input, dim):
    return input.softmax(dim)


def tril(input, diagonal=0):
    return input.tril(diagonal)


def triu(input, diagonal=0):
    return input.triu(diagonal)


def log_softmax(input, dim):
    return input.log_softmax(dim)


def clamp(input, min=None, max=None):
    return input.clamp(min, max)


clip = clamp


def pow(input, exponent):
    return input ** exponent


def _tensor(input):
    """``input`` as a Tensor: an array (a tensor's ``.array``, a numpy array) is wrapped, not
    copied."""
    return input if isinstance(input, Tensor) else Tensor(input, device=getattr(input, "device", None))


def sum(input, dim=None, keepdim=False):
    return _tensor(input).sum(dim, keepdim)


def mean(input, dim=None, keepdim=False):
    return _tensor(input).mean(dim, keepdim)


def std(input, dim=None, unbiased=True, keepdim=False, *, correction=None):
    return input.std(dim, unbiased, keepdim, correction=correction)


def var(input, dim=None, unbiased=True, keepdim=False, *, correction=None):
    return input.var(dim, unbiased, keepdim, correction=correction)


def max(input, dim=None, keepdim=False):
    """The largest entry; ``max(x, dim)`` the named tuple (values, indices); ``max(x, y)`` the
    elementwise maximum of two tensors, as torch.max."""
    return _tensor(input).max(dim, keepdim)


def min(input, dim=None, keepdim=False):
    return _tensor(input).min(dim, keepdim)


def maximum(input, other):
    return input.maximum(other)


def minimum(input, other):
    return input.minimum(other)


def argmax(input, dim=None, keepdim=False):
    return _tensor(input).argmax(dim, keepdim)


def argmin(input, dim=None, keepdim=False):
    return _tensor(input).argmin(dim, keepdim)


def matmul(input, other):
    return input @ other


def mm(input, mat2):
    return input.mm(mat2)


def where(condition, input, other):
    """``input`` where ``condition`` (a bool tensor) is True, else ``other`` (tensors or numbers,
    broadcast together; PyTorch's type promotion); differentiable w.r.t. both."""
    if not isinstance(condition, Tensor) or condition.dtype != np.bool_:
        raise TypeError(f"where: condition must be a bool tensor, got "
                        f"{getattr(condition, 'dtype', type(condition).__name__)}")
    return ops.Where.apply(_operand(input), _operand(other), condition=condition.array)


def reshape(input, shape):
    return input.reshape(shape)


def transpose(input, dim0, dim1):
    return input.transpose(dim0, dim1)


def squeeze(input, dim=None):
    return input.squeeze(dim)


def unsqueeze(input, dim):
    return input.unsqueeze(dim)


def sort(input, dim=-1, descending=False, *, stable=False):
    return input.sort(dim, descending)


def topk(input, k, dim=-1, largest=True, sorted=True):
    return input.topk(k, dim, largest, sorted)


def gather(input, dim, index):
    return input.gather(dim, index)


def cumsum(input, dim):
    return input.cumsum(dim)


# ---------------------------------------------------------------- factories

def from_numpy(array):
    """A cpu tensor sharing ``array``'s memory (a change to one shows in the other), as
    torch.from_numpy; the dtype stays the array's."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor._from_array(array, Device("cpu"))


def randint(*args, size=None, dtype=int64, device=None, requires_grad=False):
    """Integers drawn uniformly from [low, high): ``randint(high, size)`` or
    ``randint(low, high, size)``, as torch.randint."""
    args = list(args)
    if size is None and args and not np.isscalar(args[-1]):
        size = args.pop()
    if size is None or len(args) not in (1, 2):
        raise TypeError("randint: expected randint(high, size) or randint(low, high, size)")
    low, high = (0, args[0]) if len(args) == 1 else args
    return _new(tuple(size), dtype, requires_grad, device,
                lambda shape: default_generator().integers(low, high, shape))


def randperm(n, dtype=int64, device=None, requires_grad=False):
    """A random permutation of 0 .. n-1."""
    return _new((n,), dtype, requires_grad, device, lambda shape: default_generator().permutation(n))


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    return _new((steps,), dtype or float32, requires_grad, device,
                lambda shape: np.linspace(start, end, steps))


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    return _new((n, n if m is None else m), dtype or float32, requires_grad, device,
                lambda shape: np.eye(*shape))


def full_like(input, fill_value, dtype=None, device=None, requires_grad=False):
    return _new(input.shape, dtype or input.dtype, requires_grad, device or input.device,
                lambda shape: np.full(shape, fill_value))


def randn_like(input, dtype=None, device=None, requires_grad=False):
    return _new(input.shape, dtype or input.dtype, requires_grad, device or input.device,
                lambda shape: default_generator().standard_normal(shape))


def rand_like(input, dtype=None, device=None, requires_grad=False):
    return _new(input.shape, dtype or input.dtype, requires_grad, device or input.device,
                lambda shape: default_generator().random(shape))


def _typed_constructor(dtype, name):
    def construct(*args, device=None):
        if len(args) == 1 and not isinstance(args[0], Size) and not isinstance(args[0], (int, np.integer)):
            return tensor(args[0], dtype=dtype, device=device)
        shape = tuple(args[0]) if len(args) == 1 and isinstance(args[0], Size) else args or (0,)
        return zeros(shape, dtype=dtype, device=device)
    construct.__name__ = construct.__qualname__ = name
    construct.__doc__ = (f"``minidl.{name}(data)``: a {np.dtype(dtype)} tensor of that data; "
                         f"``minidl.{name}(2, 3)``: one of that shape, zero-filled (PyTorch's "
                         f"is uninitialised).")
    return construct


FloatTensor = _typed_constructor(np.float32, "FloatTensor")
DoubleTensor = _typed_constructor(np.float64, "DoubleTensor")
LongTensor = _typed_constructor(np.int64, "LongTensor")
IntTensor = _typed_constructor(np.int32, "IntTensor")
BoolTensor = _typed_constructor(np.bool_, "BoolTensor")
ByteTensor = _typed_constructor(np.uint8, "ByteTensor")


# ---------------------------------------------------------------- predicates and dtypes

def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    return bool(np.allclose(to_host(input.array), to_host(other.array), rtol=rtol, atol=atol,
                            equal_nan=equal_nan))


def equal(input, other):
    """True when both have the same shape and the same values."""
    return input.shape == other.shape and bool(np.array_equal(to_host(input.array), to_host(other.array)))


def is_tensor(obj):
    return isinstance(obj, Tensor)


def get_default_dtype():
    return float32


def set_default_dtype(dtype):
    """Only float32 is accepted: minidl's default float dtype is fixed (its factories and
    Python-float promotion are float32 throughout)."""
    if np.dtype(dtype) != np.float32:
        raise NotImplementedError(
            f"set_default_dtype({np.dtype(dtype)}): minidl's default float dtype is fixed at "
            f"float32; pass dtype= to the factories or convert with x.double()")
