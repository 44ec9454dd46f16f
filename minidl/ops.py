"""Differentiable tensor operations: elementwise, reductions, shapes, indexing, joins.

Each class is a Function over numpy arrays; its backward is the derivative written out.
Broadcasting in forward means summing in backward: ``unbroadcast`` folds a gradient back to
the shape of the input it belongs to.
"""
import numpy as np

from .device import like
from .function import Function, IndexedGradient
from .kernels import for_device
from .meta import MetaArray, resolve_reshape, standin


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched to reach ``shape``."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


# ---------------------------------------------------------------- shape rules (meta device)

def same_meta(x, *rest, **options):
    """Elementwise ops: the output has the input's shape and dtype."""
    return MetaArray(x.shape, x.dtype)


def broadcast_meta(a, b):
    """Binary ops: the broadcast shape, and numpy's result dtype of the operands (which
    Function.apply has already cast to PyTorch's result dtype; Python scalars stay weak)."""
    dtypes = [x.dtype if hasattr(x, "dtype") else x for x in (a, b)]
    return MetaArray(np.broadcast_shapes(np.shape(a), np.shape(b)), np.result_type(*dtypes))


def reduced_meta(x, axis=None, keepdims=False):
    axes = _normalize_axes(axis, x.ndim)
    shape = tuple(1 if i in axes else n for i, n in enumerate(x.shape) if keepdims or i not in axes)
    return MetaArray(shape, x.dtype)


def _grad_of(ctx, i, grad, shape):
    return unbroadcast(grad, shape) if ctx.needs_input_grad[i] else None


# ---------------------------------------------------------------- arithmetic (broadcasting)

class Add(Function):
    """y = a + b;  da = dy,  db = dy (each summed back over broadcast axes)."""

    promotes = True
    infer = staticmethod(broadcast_meta)

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (np.shape(a), np.shape(b))
        return a + b

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        return _grad_of(ctx, 0, grad, sa), _grad_of(ctx, 1, grad, sb)


class Sub(Function):
    """y = a - b;  da = dy,  db = -dy."""

    promotes = True
    infer = staticmethod(broadcast_meta)

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (np.shape(a), np.shape(b))
        return a - b

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        return _grad_of(ctx, 0, grad, sa), _grad_of(ctx, 1, -grad, sb)


class Mul(Function):
    """y = a * b;  da = dy * b,  db = dy * a."""

    promotes = True
    infer = staticmethod(broadcast_meta)

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_arrays
        da = unbroadcast(grad * b, np.shape(a)) if ctx.needs_input_grad[0] else None
        db = unbroadcast(grad * a, np.shape(b)) if ctx.needs_input_grad[1] else None
        return da, db


class Div(Function):
    """y = a / b;  da = dy / b,  db = -dy a / b^2."""

    promotes = float_inputs = True
    infer = staticmethod(broadcast_meta)

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_arrays
        da = unbroadcast(grad / b, np.shape(a)) if ctx.needs_input_grad[0] else None
        db = unbroadcast(-grad * a / (b * b), np.shape(b)) if ctx.needs_input_grad[1] else None
        return da, db


class Pow(Function):
    """y = a ** b;  da = dy b a^(b-1),  db = dy y ln a (defined for a > 0)."""

    promotes = True
    infer = staticmethod(broadcast_meta)

    @staticmethod
    def forward(ctx, a, b):
        y = a ** b
        ctx.save_for_backward(a, b, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        a, b, y = ctx.saved_arrays
        da = unbroadcast(grad * b * a ** (b - 1), np.shape(a)) if ctx.needs_input_grad[0] else None
        db = None
        if ctx.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                db = unbroadcast(grad * y * np.log(a), np.shape(b))
        return da, db


class Neg(Function):
    """y = -x;  dx = -dy."""

    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, grad):
        return -grad


class MatMul(Function):
    """Y = A @ B;  dA = dY @ B^T,  dB = A^T @ dY (batch axes summed back when broadcast).

    1-D operands follow numpy: a vector on the left is a row, on the right a column.
    """

    @staticmethod
    def infer(a, b):
        a_shape = (1,) + a.shape if a.ndim == 1 else a.shape
        b_shape = b.shape + (1,) if b.ndim == 1 else b.shape
        if a_shape[-1] != b_shape[-2]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not fit "
                             f"({a_shape[-1]} != {b_shape[-2]})")
        shape = np.broadcast_shapes(a_shape[:-2], b_shape[:-2]) + (a_shape[-2], b_shape[-1])
        if a.ndim == 1:
            shape = shape[:-2] + shape[-1:]
        if b.ndim == 1:
            shape = shape[:-1]
        return MetaArray(shape, np.result_type(a.dtype, b.dtype))

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_arrays
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = grad
        if a.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = np.expand_dims(g2, -1)
        da = db = None
        if ctx.needs_input_grad[0]:
            da = unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if ctx.needs_input_grad[1]:
            db = unbroadcast(np.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(b.shape)
        return da, db


# ---------------------------------------------------------------- elementwise functions

class Exp(Function):
    """y = e^x;  dx = dy * y."""

    float_inputs = True
    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x):
        y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_arrays
        return grad * y


class Log(Function):
    """y = ln x;  dx = dy / x."""

    float_inputs = True
    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        with np.errstate(divide="ignore", invalid="ignore"):  # log 0 = -inf, log -1 = nan, as PyTorch
            return np.log(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_arrays
        return grad / x


class Sqrt(Function):
    """y = sqrt(x);  dx = dy / (2 y)."""

    float_inputs = True
    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x):
        y = np.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_arrays
        return grad / (2 * y)


class Abs(Function):
    """y = |x|;  dx = dy * sign(x) (0 at x = 0, as PyTorch)."""

    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.abs(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_arrays
        return grad * np.sign(x)


class Clip(Function):
    """y = min(max(x, lo), hi);  dx = dy where lo <= x <= hi, else 0."""

    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x, min=None, max=None):
        ctx.save_for_backward(x)
        ctx.bounds = (min, max)
        return np.clip(x, min, max)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_arrays
        lo, hi = ctx.bounds
        inside = np.ones(x.shape, dtype=bool, like=like(x))
        if lo is not None:
            inside &= x >= lo
        if hi is not None:
            inside &= x <= hi
        return grad * inside


class ReLU(Function):
    """y = x (x > 0);  dx = dy (x > 0). One kernel pass each way."""

    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x):
        y = for_device(ctx.device, "activation").relu_forward(np.ascontiguousarray(x, like=like(x)))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_arrays
        grad = np.ascontiguousarray(grad, dtype=y.dtype, like=like(y))
        return for_device(ctx.device, "activation").relu_backward(grad, y)


class LeakyReLU(Function):
    """y = x if x > 0 else a x;  dx = dy if x > 0 else a dy."""

    float_inputs = True
    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x, negative_slope=0.01):
        ctx.save_for_backward(x)
        ctx.slope = negative_slope
        return np.where(x > 0, x, x * x.dtype.type(negative_slope))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_arrays
        return np.where(x > 0, grad, grad * grad.dtype.type(ctx.slope))


class Sigmoid(Function):
    """s = 1 / (1 + e^-x), computed as 1/2 + 1/2 tanh(x/2) (no overflow);  dx = dy s (1 - s)."""

    float_inputs = True
    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x):
        half = x.dtype.type(0.5)
        s = half + half * np.tanh(half * x)
        ctx.save_for_backward(s)
        return s

    @staticmethod
    def backward(ctx, grad):
        (s,) = ctx.saved_arrays
        return grad * s * (1 - s)


class Tanh(Function):
    """y = tanh x;  dx = dy (1 - y^2)."""

    float_inputs = True
    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x):
        y = np.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_arrays
        return grad * (1 - y * y)


def _rows_along(x, dim):
    """(rows, shape): x with axis ``dim`` last, as C-contiguous rows (R, C), and that shape."""
    moved = np.moveaxis(x, dim, -1)
    return np.ascontiguousarray(moved.reshape(-1, moved.shape[-1]), like=like(x)), moved.shape


def _rows_back(rows, shape, dim):
    """The inverse of ``_rows_along``."""
    return np.moveaxis(rows.reshape(shape), -1, dim)


def _rowwise_forward(ctx, x, dim, kernel):
    """softmax_ce's ``kernel``_forward over the rows along ``dim``; saves its output."""
    rows, ctx.shape = _rows_along(x, dim)
    y = getattr(for_device(ctx.device, "softmax_ce"), kernel + "_forward")(rows) if rows.size else rows
    ctx.save_for_backward(y)
    ctx.dim = dim
    return _rows_back(y, ctx.shape, dim)


def _rowwise_backward(ctx, grad, kernel):
    """softmax_ce's ``kernel``_backward from the saved output and the rows of ``grad``."""
    (y,) = ctx.saved_arrays
    grad_rows = _rows_along(grad.astype(y.dtype, copy=False), ctx.dim)[0]
    dx = getattr(for_device(ctx.device, "softmax_ce"), kernel + "_backward")(y, grad_rows) if y.size else grad_rows
    return _rows_back(dx, ctx.shape, ctx.dim)


class Softmax(Function):
    """y_i = e^(x_i - max) / sum_k e^(x_k - max);  dx = y * (dy - sum_i dy_i y_i)  (J = diag(y) - y y^T).
    One kernel pass over the rows along ``dim`` each way (kernels/<device>/softmax_ce.py)."""

    float_inputs = True
    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x, dim=-1):
        return _rowwise_forward(ctx, x, dim, "softmax")

    @staticmethod
    def backward(ctx, grad):
        return _rowwise_backward(ctx, grad, "softmax")


class LogSoftmax(Function):
    """y = x - max - log sum e^(x - max);  dx = dy - softmax(x) * sum dy.
    One kernel pass over the rows along ``dim`` each way (kernels/<device>/softmax_ce.py)."""

    float_inputs = True
    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x, dim=-1):
        return _rowwise_forward(ctx, x, dim, "log_softmax")

    @staticmethod
    def backward(ctx, grad):
        return _rowwise_backward(ctx, grad, "log_softmax")


# ---------------------------------------------------------------- reductions

def _normalize_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if np.isscalar(axis) else tuple(axis)
    return tuple(a % ndim if ndim else 0 for a in axes)


def _restore_reduced(grad, shape, axes, keepdims):
    """Give a reduced gradient back its reduced axes (size 1) so it broadcasts over ``shape``."""
    if not keepdims:
        grad = np.expand_dims(grad, axes) if axes else grad
    return grad


class Sum(Function):
    """y = sum over axes;  dx = dy broadcast back over the summed axes."""

    infer = staticmethod(reduced_meta)

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.shape = x.shape
        ctx.axes = _normalize_axes(axis, x.ndim)
        ctx.keepdims = keepdims
        return np.sum(x, axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        grad = _restore_reduced(grad, ctx.shape, ctx.axes, ctx.keepdims)
        return np.broadcast_to(grad, ctx.shape).copy()


class Mean(Function):
    """y = sum / n over axes;  dx = dy / n broadcast back."""

    float_inputs = True
    infer = staticmethod(reduced_meta)

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.shape = x.shape
        ctx.axes = _normalize_axes(axis, x.ndim)
        ctx.keepdims = keepdims
        ctx.count = int(np.prod([x.shape[a] for a in ctx.axes])) if x.ndim else 1
        return np.mean(x, axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        grad = _restore_reduced(grad, ctx.shape, ctx.axes, ctx.keepdims)
        return np.broadcast_to(grad / grad.dtype.type(ctx.count), ctx.shape).copy()


class Max(Function):
    """y = max over axes;  dx = dy shared equally among the entries equal to the max (as torch.amax)."""

    infer = staticmethod(reduced_meta)
    extreme = staticmethod(np.max)

    @classmethod
    def forward(cls, ctx, x, axis=None, keepdims=False):
        ctx.axes = _normalize_axes(axis, x.ndim)
        ctx.keepdims = keepdims
        y = cls.extreme(x, axis=ctx.axes, keepdims=True)
        ctx.save_for_backward(x, y)
        return y if keepdims else np.squeeze(y, axis=ctx.axes)

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_arrays
        grad = _restore_reduced(grad, x.shape, ctx.axes, ctx.keepdims)
        winners = x == y
        return winners * (grad / winners.sum(axis=ctx.axes, keepdims=True).astype(grad.dtype))


class Min(Max):
    """y = min over axes;  dx = dy shared equally among the entries equal to the min (as torch.amin)."""

    extreme = staticmethod(np.min)


# ---------------------------------------------------------------- shapes and dtypes

class Cast(Function):
    """y = x converted to another dtype;  dx = dy converted back."""

    @staticmethod
    def infer(x, dtype):
        return MetaArray(x.shape, dtype)

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad.astype(ctx.dtype)


class Reshape(Function):
    """y = x viewed with a new shape;  dx = dy reshaped back."""

    @staticmethod
    def infer(x, shape):
        return MetaArray(resolve_reshape(x.shape, shape), x.dtype)

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.shape)


class Permute(Function):
    """y = x with axes reordered;  dx = dy with the inverse order."""

    @staticmethod
    def infer(x, axes):
        return MetaArray(tuple(x.shape[a] for a in axes), x.dtype)

    @staticmethod
    def forward(ctx, x, axes):
        ctx.axes = axes
        return np.transpose(x, axes)

    @staticmethod
    def backward(ctx, grad):
        return np.transpose(grad, np.argsort(ctx.axes))


class GetItem(Function):
    """y = x[index];  dx = zeros with dy added at the indexed places (repeats accumulate), as an
    IndexedGradient that the engine adds into one buffer with x's other gradients."""

    @staticmethod
    def infer(x, index):
        return MetaArray(standin(x)[index].shape, x.dtype)

    @staticmethod
    def forward(ctx, x, index):
        ctx.shape, ctx.dtype, ctx.index = x.shape, x.dtype, index
        return x[index]

    @staticmethod
    def backward(ctx, grad):
        return IndexedGradient(ctx.shape, ctx.index, grad, _is_basic_index(ctx.index))


def _is_basic_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, np.integer, slice)) for p in parts)


class Concatenate(Function):
    """y = [x_1, ..., x_k] along an axis;  dx_i = the slice of dy that x_i filled."""

    promotes = True

    @staticmethod
    def infer(*xs, axis=0):
        shape = list(xs[0].shape)
        shape[axis] = sum(x.shape[axis] for x in xs)
        return MetaArray(shape, np.result_type(*[x.dtype for x in xs]))

    @staticmethod
    def forward(ctx, *xs, axis=0):
        ctx.axis = axis
        ctx.bounds = np.cumsum([x.shape[axis] for x in xs])[:-1]
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        return tuple(np.split(grad, ctx.bounds, axis=ctx.axis))


class Stack(Function):
    """y = the x_i stacked along a new axis;  dx_i = dy taken at index i of that axis."""

    promotes = True

    @staticmethod
    def infer(*xs, axis=0):
        shape = list(xs[0].shape)
        shape.insert(axis % (len(shape) + 1), len(xs))
        return MetaArray(shape, np.result_type(*[x.dtype for x in xs]))

    @staticmethod
    def forward(ctx, *xs, axis=0):
        ctx.axis = axis
        return np.stack(xs, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        return tuple(np.moveaxis(grad, ctx.axis, 0))


# ---------------------------------------------------------------- PyTorch's tensor methods

class Sin(Function):
    """y = sin x;  dx = dy cos x."""

    float_inputs = True
    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.sin(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_arrays
        return grad * np.cos(x)


class Cos(Function):
    """y = cos x;  dx = -dy sin x."""

    float_inputs = True
    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.cos(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_arrays
        return -grad * np.sin(x)


class Maximum(Function):
    """y = max(a, b) elementwise;  da = dy where a > b, dy / 2 where a == b (as PyTorch), else 0;
    db = dy - da (each summed back over broadcast axes)."""

    promotes = True
    infer = staticmethod(broadcast_meta)
    pick, beats = staticmethod(np.maximum), staticmethod(np.greater)

    @classmethod
    def forward(cls, ctx, a, b):
        ctx.save_for_backward(a, b)
        return cls.pick(a, b)

    @classmethod
    def backward(cls, ctx, grad):
        a, b = ctx.saved_arrays
        share_a = np.where(a == b, grad * grad.dtype.type(0.5), np.where(cls.beats(a, b), grad, 0))
        return (_grad_of(ctx, 0, share_a, np.shape(a)),
                _grad_of(ctx, 1, grad - share_a, np.shape(b)))


class Minimum(Maximum):
    """y = min(a, b) elementwise;  da = dy where a < b, dy / 2 where a == b, else 0;  db = dy - da."""

    pick, beats = staticmethod(np.minimum), staticmethod(np.less)


class Where(Function):
    """y = a where condition else b;  da = dy where condition (0 elsewhere), db = dy elsewhere,
    each summed back over broadcast axes. ``condition`` is an option: it is never promoted."""

    promotes = True

    @staticmethod
    def infer(a, b, condition):
        dtypes = [x.dtype if hasattr(x, "dtype") else x for x in (a, b)]
        shape = np.broadcast_shapes(np.shape(condition), np.shape(a), np.shape(b))
        return MetaArray(shape, np.result_type(*dtypes))

    @staticmethod
    def forward(ctx, a, b, condition):
        ctx.shapes, ctx.condition = (np.shape(a), np.shape(b)), condition
        return np.where(condition, a, b)

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        picked = np.where(ctx.condition, grad, 0) if ctx.needs_input_grad[0] else None
        rest = np.where(ctx.condition, 0, grad) if ctx.needs_input_grad[1] else None
        return (None if picked is None else unbroadcast(picked, sa),
                None if rest is None else unbroadcast(rest, sb))


class Var(Function):
    """y = sum_i (x_i - m)^2 / (N - c) over the axes, m their mean, c the correction (1: unbiased);
    dx = dy 2 (x - m) / (N - c)  (the mean's own derivative sums to zero against x - m)."""

    float_inputs = True

    @staticmethod
    def infer(x, axis=None, keepdims=False, correction=1):
        return reduced_meta(x, axis, keepdims)

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False, correction=1):
        ctx.shape = x.shape
        ctx.axes = _normalize_axes(axis, x.ndim)
        ctx.keepdims = keepdims
        count = int(np.prod([x.shape[a] for a in ctx.axes])) if x.ndim else 1
        ctx.divisor = x.dtype.type(max(count - correction, 0))
        centered = x - x.mean(axis=ctx.axes, keepdims=True)
        ctx.save_for_backward(centered)
        with np.errstate(divide="ignore", invalid="ignore"):  # N <= c gives inf/nan, as PyTorch
            return (centered * centered).sum(axis=ctx.axes, keepdims=keepdims) / ctx.divisor

    @staticmethod
    def backward(ctx, grad):
        (centered,) = ctx.saved_arrays
        grad = _restore_reduced(grad, ctx.shape, ctx.axes, ctx.keepdims)
        with np.errstate(divide="ignore", invalid="ignore"):
            return grad * (2 * centered) / ctx.divisor


class Cumsum(Function):
    """y_i = sum_{j <= i} x_j along an axis;  dx_j = sum_{i >= j} dy_i (a cumulative sum from the
    end). Integer and bool inputs sum into int64, as PyTorch."""

    @staticmethod
    def infer(x, dim):
        return MetaArray(x.shape, x.dtype if np.issubdtype(x.dtype, np.inexact) else np.int64)

    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim = dim
        return np.cumsum(x, axis=dim, dtype=x.dtype if np.issubdtype(x.dtype, np.inexact) else np.int64)

    @staticmethod
    def backward(ctx, grad):
        return np.flip(np.cumsum(np.flip(grad, ctx.dim), axis=ctx.dim), ctx.dim)


class Clone(Function):
    """y = a copy of x (its own memory);  dx = dy."""

    infer = staticmethod(same_meta)

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, grad):
        return grad


class Expand(Function):
    """y = x broadcast to ``shape`` (a read-only view, no copy);  dx = dy summed over the axes
    that were added or stretched."""

    @staticmethod
    def infer(x, shape):
        return MetaArray(shape, x.dtype)

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return np.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, grad):
        return unbroadcast(grad, ctx.shape)


class Repeat(Function):
    """y = x tiled reps[d] times along each axis d (x first given leading size-1 axes up to
    len(reps)), as torch's repeat; dx = dy viewed as (r_0, s_0, r_1, s_1, ...) summed over the
    r axes. Written as reshape + broadcast + reshape, so it runs on every device."""

    @staticmethod
    def infer(x, reps):
        sizes = (1,) * (len(reps) - x.ndim) + tuple(x.shape)
        return MetaArray([r * s for r, s in zip(reps, sizes)], x.dtype)

    @staticmethod
    def forward(ctx, x, reps):
        sizes = (1,) * (len(reps) - x.ndim) + tuple(x.shape)
        ctx.shape, ctx.pairs = x.shape, [n for r, s in zip(reps, sizes) for n in (r, s)]
        spread = np.broadcast_to(x.reshape([n for s in sizes for n in (1, s)]), ctx.pairs)
        return np.ascontiguousarray(spread, like=like(x)).reshape([r * s for r, s in zip(reps, sizes)])

    @staticmethod
    def backward(ctx, grad):
        tiles = tuple(range(0, len(ctx.pairs), 2))
        return grad.reshape(ctx.pairs).sum(axis=tiles).reshape(ctx.shape)


def along_axis(index, dim):
    """The fancy index that picks position ``index[i, j, k]`` on axis ``dim`` and i, j, k on the
    others: numpy's take_along_axis as one tuple of index arrays (which cuda arrays take too)."""
    parts = []
    for d, n in enumerate(index.shape):
        if d == dim:
            parts.append(index)
        else:
            shape = [1] * index.ndim
            shape[d] = n
            parts.append(np.arange(n, like=like(index)).reshape(shape))
    return tuple(parts)


class Gather(Function):
    """y[i, j, k] = x[index[i, j, k], j, k] (for dim 0; likewise on any axis);  dx = zeros with dy
    added at the gathered places (an index used twice accumulates)."""

    @staticmethod
    def infer(x, index, dim):
        return MetaArray(index.shape, x.dtype)

    @staticmethod
    def forward(ctx, x, index, dim):
        ctx.shape, ctx.where = x.shape, along_axis(index, dim)
        return x[ctx.where]

    @staticmethod
    def backward(ctx, grad):
        dx = np.zeros(ctx.shape, dtype=grad.dtype, like=like(grad))
        np.add.at(dx, ctx.where, grad)
        return dx


class Scatter(Function):
    """y = x with y[index[i, j, k], j, k] = src[i, j, k] (for dim 0), or += with reduce='add';
    dx = dy with the written places zeroed (all of dy for 'add');  dsrc[i, j, k] = dy at the
    place it went to (zero beyond index's shape). ``src`` may be a Python scalar."""

    @staticmethod
    def infer(x, src, index, dim, reduce=None):
        return MetaArray(x.shape, x.dtype)

    @staticmethod
    def forward(ctx, x, src, index, dim, reduce=None):
        ctx.where, ctx.reduce, ctx.src_shape = along_axis(index, dim), reduce, np.shape(src)
        ctx.used = tuple(slice(0, n) for n in index.shape)  # the part of src that is scattered
        values = src[ctx.used] if np.ndim(src) else src
        y = x.copy()
        if reduce == "add":
            np.add.at(y, ctx.where, values)
        else:
            y[ctx.where] = values
        return y

    @staticmethod
    def backward(ctx, grad):
        dx = dsrc = None
        if ctx.needs_input_grad[0]:
            dx = grad
            if ctx.reduce is None:
                dx = grad.copy()
                dx[ctx.where] = 0
        if ctx.needs_input_grad[1]:
            dsrc = np.zeros(ctx.src_shape, dtype=grad.dtype, like=like(grad))
            dsrc[ctx.used] = grad[ctx.where]
        return dx, dsrc


class SetItem(Function):
    """y = x with y[index] = value (``x[index] = value`` recorded as an op);  dx = dy with zeros at
    index, dvalue = dy[index] summed back over the axes value was broadcast along."""

    @staticmethod
    def infer(x, value, index):
        return MetaArray(x.shape, x.dtype)

    @staticmethod
    def forward(ctx, x, value, index):
        ctx.index, ctx.value_shape = index, np.shape(value)
        y = x.copy()
        y[index] = value
        return y

    @staticmethod
    def backward(ctx, grad):
        dx = dvalue = None
        if ctx.needs_input_grad[0]:
            dx = grad.copy()
            dx[ctx.index] = 0
        if ctx.needs_input_grad[1]:
            picked = grad[ctx.index]
            missing = len(ctx.value_shape) - picked.ndim  # numpy lets value carry extra leading 1s
            picked = picked.reshape((1,) * missing + picked.shape) if missing > 0 else picked
            dvalue = unbroadcast(picked, ctx.value_shape)
        return dx, dvalue
