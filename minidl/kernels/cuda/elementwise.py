"""Broadcasting elementwise maps and axis reductions over strided device arrays.

Every array is a flat device buffer read through (shape, strides, offset) in elements, so
broadcasting (stride 0), transposes, slices and ``x[...] = y`` into a view need no copies.
A map kernel is built once per operation from a device function (a closure), then numba
specializes it per dtype and rank. Item i of the output walks its multi-index from the last
axis: ``off = offset + sum_d index_d * stride_d``.
"""
import math

from ._runtime import grid_1d, kernel_builder

cuda = None  # numba.cuda, bound by kernel_builder on first use (a module global, as the simulator needs)


# ---------------------------------------------------------------- the scalar functions

def _unary_functions():
    return {
        "copy": lambda a: a,
        "negative": lambda a: -a,
        "positive": lambda a: a,
        "exp": lambda a: math.exp(a),
        "expm1": lambda a: math.expm1(a),
        "log": lambda a: math.log(a) if a > 0 else (-math.inf if a == 0 else math.nan),
        "log1p": lambda a: math.log1p(a) if a > -1 else (-math.inf if a == -1 else math.nan),
        "sqrt": lambda a: math.sqrt(a) if a >= 0 else math.nan,
        "absolute": lambda a: abs(a),
        "sign": lambda a: 1 if a > 0 else (-1 if a < 0 else a),
        "tanh": lambda a: math.tanh(a),
        "sin": lambda a: math.sin(a),
        "cos": lambda a: math.cos(a),
        "square": lambda a: a * a,
        "reciprocal": lambda a: 1 / a,
        "logical_not": lambda a: not a,
        "isnan": lambda a: a != a,
        "isfinite": lambda a: a == a and a != math.inf and a != -math.inf,
    }


def _binary_functions():
    return {
        "add": lambda a, b: a + b,
        "subtract": lambda a, b: a - b,
        "multiply": lambda a, b: a * b,
        "true_divide": lambda a, b: a / b,
        "floor_divide": lambda a, b: a // b,
        "remainder": lambda a, b: a % b,
        "power": lambda a, b: a ** b,
        "maximum": lambda a, b: a if (a >= b or a != a) else b,
        "minimum": lambda a, b: a if (a <= b or a != a) else b,
        "greater": lambda a, b: a > b,
        "greater_equal": lambda a, b: a >= b,
        "less": lambda a, b: a < b,
        "less_equal": lambda a, b: a <= b,
        "equal": lambda a, b: a == b,
        "not_equal": lambda a, b: a != b,
        "logical_and": lambda a, b: bool(a) and bool(b),
        "logical_or": lambda a, b: bool(a) or bool(b),
        "bitwise_and": lambda a, b: a & b,
        "bitwise_or": lambda a, b: a | b,
        "bitwise_xor": lambda a, b: a ^ b,
    }


UNARY = tuple(_unary_functions())
BINARY = tuple(_binary_functions())


def _device(fn):
    return cuda.jit(device=True)(fn)


# ---------------------------------------------------------------- map kernels

@kernel_builder
def unary_kernel(name):
    """out[i] = f(a[i]) over the broadcast shape (a and out strided)."""
    f = _device(_unary_functions()[name])

    @cuda.jit
    def kernel(n, shape, out, o_st, o_off, a, a_st, a_off):
        i = cuda.grid(1)
        step = cuda.gridsize(1)
        while i < n:
            rem, io, ia = i, o_off, a_off
            for d in range(len(shape) - 1, -1, -1):
                k = rem % shape[d]
                rem //= shape[d]
                io += k * o_st[d]
                ia += k * a_st[d]
            out[io] = f(a[ia])
            i += step
    return kernel


@kernel_builder
def binary_kernel(name, scalar_side):
    """out[i] = f(a[i], b[i]); ``scalar_side`` "a" or "b" passes that operand as a scalar."""
    f = _device(_binary_functions()[name])
    if scalar_side == "b":
        @cuda.jit
        def kernel(n, shape, out, o_st, o_off, a, a_st, a_off, b):
            i = cuda.grid(1)
            step = cuda.gridsize(1)
            while i < n:
                rem, io, ia = i, o_off, a_off
                for d in range(len(shape) - 1, -1, -1):
                    k = rem % shape[d]
                    rem //= shape[d]
                    io += k * o_st[d]
                    ia += k * a_st[d]
                out[io] = f(a[ia], b)
                i += step
    elif scalar_side == "a":
        @cuda.jit
        def kernel(n, shape, out, o_st, o_off, a, b, b_st, b_off):
            i = cuda.grid(1)
            step = cuda.gridsize(1)
            while i < n:
                rem, io, ib = i, o_off, b_off
                for d in range(len(shape) - 1, -1, -1):
                    k = rem % shape[d]
                    rem //= shape[d]
                    io += k * o_st[d]
                    ib += k * b_st[d]
                out[io] = f(a, b[ib])
                i += step
    else:
        @cuda.jit
        def kernel(n, shape, out, o_st, o_off, a, a_st, a_off, b, b_st, b_off):
            i = cuda.grid(1)
            step = cuda.gridsize(1)
            while i < n:
                rem, io, ia, ib = i, o_off, a_off, b_off
                for d in range(len(shape) - 1, -1, -1):
                    k = rem % shape[d]
                    rem //= shape[d]
                    io += k * o_st[d]
                    ia += k * a_st[d]
                    ib += k * b_st[d]
                out[io] = f(a[ia], b[ib])
                i += step
    return kernel


@kernel_builder
def fill_kernel():
    """out[i] = value over a strided view."""
    @cuda.jit
    def kernel(n, shape, out, o_st, o_off, value):
        i = cuda.grid(1)
        step = cuda.gridsize(1)
        while i < n:
            rem, io = i, o_off
            for d in range(len(shape) - 1, -1, -1):
                k = rem % shape[d]
                rem //= shape[d]
                io += k * o_st[d]
            out[io] = value
            i += step
    return kernel


@kernel_builder
def where_kernel():
    """out[i] = a[i] if c[i] else b[i]."""
    @cuda.jit
    def kernel(n, shape, out, c, c_st, c_off, a, a_st, a_off, b, b_st, b_off):
        i = cuda.grid(1)
        step = cuda.gridsize(1)
        while i < n:
            rem, ic, ia, ib = i, c_off, a_off, b_off
            for d in range(len(shape) - 1, -1, -1):
                k = rem % shape[d]
                rem //= shape[d]
                ic += k * c_st[d]
                ia += k * a_st[d]
                ib += k * b_st[d]
            out[i] = a[ia] if c[ic] else b[ib]
            i += step
    return kernel


# ---------------------------------------------------------------- gather / scatter by offsets

@kernel_builder
def gather_kernel():
    """out[j, r] = src[off[j] + rest_offset(r)]: advanced indexing, ``off`` holds the element
    offset of each indexed position, the rest axes are strided."""
    @cuda.jit
    def kernel(n, r_total, rest_shape, out, src, off, r_st):
        i = cuda.grid(1)
        step = cuda.gridsize(1)
        while i < n:
            j = i // r_total
            rem = i - j * r_total
            pos = off[j]
            for d in range(len(rest_shape) - 1, -1, -1):
                k = rem % rest_shape[d]
                rem //= rest_shape[d]
                pos += k * r_st[d]
            out[i] = src[pos]
            i += step
    return kernel


@kernel_builder
def scatter_kernel(accumulate):
    """dst[off[j] + rest_offset(r)] (+)= value[j, r]; accumulation is atomic (repeats add up)."""
    if accumulate:
        @cuda.jit(device=True)
        def put(dst, pos, value):
            cuda.atomic.add(dst, pos, value)
    else:
        @cuda.jit(device=True)
        def put(dst, pos, value):
            dst[pos] = value

    @cuda.jit
    def kernel(n, r_total, shape, rest_shape, dst, off, r_st, v, v_st, v_off):
        i = cuda.grid(1)
        step = cuda.gridsize(1)
        while i < n:
            rem, iv = i, v_off
            for d in range(len(shape) - 1, -1, -1):
                k = rem % shape[d]
                rem //= shape[d]
                iv += k * v_st[d]
            j = i // r_total
            rem = i - j * r_total
            pos = off[j]
            for d in range(len(rest_shape) - 1, -1, -1):
                k = rem % rest_shape[d]
                rem //= rest_shape[d]
                pos += k * r_st[d]
            put(dst, pos, v[iv])
            i += step
    return kernel


# ---------------------------------------------------------------- reductions

REDUCTIONS = ("sum", "mean", "max", "min", "argmax", "argmin", "any", "all")


@kernel_builder
def _reduced_offset():
    @cuda.jit(device=True)
    def offset(j, base, red_shape, red_st):
        rem, pos = j, base
        for d in range(len(red_shape) - 1, -1, -1):
            k = rem % red_shape[d]
            rem //= red_shape[d]
            pos += k * red_st[d]
        return pos
    return offset


@kernel_builder
def reduce_kernel(name):
    """out[i, p] = the reduction of chunk p (``chunk`` consecutive items in the C order of the
    reduced axes) of output i; one thread per (i, p). With one chunk per output this is the
    whole reduction; many chunks give a long reduction (a full sum) many threads, and a
    second pass reduces the partial results. sum/mean accumulate in float64; max/min let NaN
    win (as numpy); argmax/argmin give the first occurrence; any/all."""
    offset = _reduced_offset()
    if name in ("sum", "mean"):
        divide = name == "mean"

        @cuda.jit
        def kernel(total, k_total, chunk, parts, kept_shape, kept_st, red_shape, red_st, a, a_off, out):
            t = cuda.grid(1)
            step = cuda.gridsize(1)
            while t < total:
                i = t // parts
                p = t - i * parts
                rem, base = i, a_off
                for d in range(len(kept_shape) - 1, -1, -1):
                    k = rem % kept_shape[d]
                    rem //= kept_shape[d]
                    base += k * kept_st[d]
                acc = 0.0
                for j in range(p * chunk, min(k_total, (p + 1) * chunk)):
                    acc += a[offset(j, base, red_shape, red_st)]
                if divide:
                    acc = acc / k_total
                out[t] = acc
                t += step
        return kernel

    if name in ("any", "all"):
        want = name == "any"  # any stops at the first True, all at the first False

        @cuda.jit
        def kernel(total, k_total, chunk, parts, kept_shape, kept_st, red_shape, red_st, a, a_off, out):
            t = cuda.grid(1)
            step = cuda.gridsize(1)
            while t < total:
                i = t // parts
                p = t - i * parts
                rem, base = i, a_off
                for d in range(len(kept_shape) - 1, -1, -1):
                    k = rem % kept_shape[d]
                    rem //= kept_shape[d]
                    base += k * kept_st[d]
                acc = not want
                for j in range(p * chunk, min(k_total, (p + 1) * chunk)):
                    if (a[offset(j, base, red_shape, red_st)] != 0) == want:
                        acc = want
                        break
                out[t] = acc
                t += step
        return kernel

    largest = name in ("max", "argmax")
    index = name in ("argmax", "argmin")

    @cuda.jit
    def kernel(total, k_total, chunk, parts, kept_shape, kept_st, red_shape, red_st, a, a_off, out):
        t = cuda.grid(1)
        step = cuda.gridsize(1)
        while t < total:
            i = t // parts
            p = t - i * parts
            rem, base = i, a_off
            for d in range(len(kept_shape) - 1, -1, -1):
                k = rem % kept_shape[d]
                rem //= kept_shape[d]
                base += k * kept_st[d]
            first = p * chunk
            acc = a[offset(first, base, red_shape, red_st)]
            best = first
            for j in range(first + 1, min(k_total, first + chunk)):
                x = a[offset(j, base, red_shape, red_st)]
                if acc == acc and (x != x or (x > acc if largest else x < acc)):
                    acc = x
                    best = j
            if index:
                out[t] = best
            else:
                out[t] = acc
            t += step
    return kernel


def launch(kernel, n, *args):
    """Run a grid-stride kernel over n items (nothing to do when n == 0)."""
    if n:
        blocks, threads = grid_1d(n)
        kernel[blocks, threads](n, *args)
