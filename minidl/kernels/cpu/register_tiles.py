"""Correlation tiles kept in vector registers: LLVM IR through Numba intrinsics.

LLVM does not keep a loop's running sums in registers across a reduction that Numba writes
over arrays: the blocked 3x3 loops of ``direct_conv`` load and store their accumulators once
per kernel row and hold about half of this machine's GEMM peak. ``correlate_tile`` is written
in LLVM IR instead (vectors of LANES float32), as a BLAS micro-kernel is: the sums of
TILE_ROWS output channels over TILE_LANES consecutive wide positions stay in
TILE_ROWS x TILE_LANES / LANES registers for the whole sum over the input channels and taps:

    out[r, j] = sum_(c < C) sum_(u < kh, v < kw) K[c, kw u + v, r] X[c, f0 + u Wq + v + j]
                                                  (r < TILE_ROWS, j < TILE_LANES)

Each tap costs 2 vector loads of X and TILE_ROWS broadcasts of K for 2 TILE_ROWS multiply-adds
(llvm.fma), so the FMA units, not the loads, bound it. On one Zen4 core the same loop as a GEMM
(6 x 32 tiles, K = 288) measured 104-116 GFLOP/s, where OpenBLAS's sgemm holds ~100 per core.
Without AVX-512 the tiles shrink to the 16 registers of 8 floats of AVX2 (``wide_vectors``):
compiled for Haswell on the same machine, the bench's conv2d fwd+bwd took 14.6 ms against 11.2
with AVX-512 (and 16.5 through the old blocked loops).

``weight_grad_tile`` is the dK pass's tile: 2 output channels x up to 9 taps of one input channel,
summed over the wide positions in up to 18 vector registers (2 + 9 vector loads per 18
multiply-adds), one sweep per group of 9 taps. Both take the window (kh, kw) and the stride as
constants (with stride 2 the taps of the four phase planes in turn, ``tap_groups``), and each
gets IR of its own, its taps unrolled. ``register_conv`` runs convolutions on them.

``product_tile`` is the 1 x 1 window with strides of its own, a GEMM's micro-kernel: the
recurrent layers' step products and the big GEMMs of ``matmul`` run on it, their rows packed
K-major by ``pack_rows`` (``transpose_8x8``: 8 x 8 blocks transposed in vector registers), and
so do the 16 GEMMs of ``register_winograd``'s F(2x2, 3x3) between its transforms on vectors of
LANES tiles (``winograd_input_tile``, ``winograd_output_tile``), which store with masks
(llvm.masked.store) where a row of tiles ends.
"""
import functools

import numba
from llvmlite import binding, ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


def wide_vectors():
    """Whether Numba compiles for AVX-512 here: the host's features, or NUMBA_CPU_FEATURES when
    NUMBA_CPU_NAME names another CPU."""
    if numba.config.CPU_NAME not in (None, "host"):
        return "+avx512f" in (numba.config.CPU_FEATURES or "")
    return bool(binding.get_host_cpu_features().get("avx512f"))


# The tiles fill the vector registers without spilling: 32 of 16 float32 with AVX-512, 16 of 8
# otherwise (AVX2). A tile's sums take TILE_ROWS x 2 registers, a dK tile's WEIGHT_GRAD_ROWS x 9.
LANES = 16 if wide_vectors() else 8  # float32 per vector register
TILE_ROWS = 8 if LANES == 16 else 6  # output channels per tile
TILE_LANES = 2 * LANES  # wide positions per tile
_VECTORS = TILE_LANES // LANES
_VECTOR = ir.VectorType(ir.FloatType(), LANES)


def tap_groups(kh, kw, stride, phase):
    """The taps of a tile for a kh x kw window at ``stride`` (1 or 2 in each direction alike):
    [(plane group, [(u, v, row offset, column offset), ...]), ...], kernel tap (u, v) read at
    that offset of the group's planes.

    phase -1, the correlation Y[o, a, b] = sum_(c,u,v) K[o, c, u, v] Xp[c, s a + u, s b + v]: one
    group per phase plane P_pq[c, m, n] = Xp[c, s m + p, s n + q] (p, q < s, group s p + q), whose
    taps u = s du + p, v = s dv + q sit at offset (du, dv); with stride 1 one group of every tap.
    phase k = s p + q >= 0, the transposed correlation into output phase (p, q), dXp[c, s m + p,
    s n + q] = sum_(o,du,dv) K[o, c, s du + p, s dv + q] dY[o, m - du, n - dv]: one group of
    dYq = dY after ceil(kh / s) - 1 zero rows and ceil(kw / s) - 1 zero columns, tap (s du + p,
    s dv + q) at offset (ceil(kh / s) - 1 - du, ceil(kw / s) - 1 - dv)."""
    rows, cols = -(-kh // stride), -(-kw // stride)

    def steps(p, q):  # (du, dv) of the taps (s du + p, s dv + q) inside the window
        return [(du, dv) for du in range(-(-(kh - p) // stride)) for dv in range(-(-(kw - q) // stride))]

    if phase < 0:
        groups = [(stride * p + q, [(stride * du + p, stride * dv + q, du, dv) for du, dv in steps(p, q)])
                  for p in range(stride) for q in range(stride)]
    else:
        p, q = divmod(phase, stride)
        groups = [(0, [(stride * du + p, stride * dv + q, rows - 1 - du, cols - 1 - dv) for du, dv in steps(p, q)])]
    return [(group, taps) for group, taps in groups if taps]


@intrinsic(prefer_literal=True)
def correlate_tile(typingctx, kh, kw, stride, phase, kernels, kernel_start, planes, plane_start, plane_size, wq,
                   channels, out, out_start, out_stride):
    """correlate_tile(kh, kw, stride, phase, kernels, kernel_start, planes, plane_start, plane_size,
    wq, channels, out, out_start, out_stride) for a kh x kw window at ``stride`` (constants; phase
    and groups as ``tap_groups`` says): stores the tile's sums (module docstring, summed over the
    groups too) at out[out_start + r out_stride + j]; X[c, p] of group g at planes[plane_start +
    (g channels + c) plane_size + p] and the K of group g's channel c and tap t at
    kernels[kernel_start + (channels T_<g + T_g c + t) TILE_ROWS + r], T_g the group's taps and T_<g
    those of the groups before it. 1-d C-contiguous float32 arrays, channels >= 1; reads run
    TILE_LANES + (kh - 1) Wq + kw - 2 floats past the tile's first position in every plane."""
    arrays = (kernels, planes, out)
    if not (_constants(kh, kw, stride, phase)
            and all(isinstance(a, types.Array) and a.dtype == types.float32 and a.ndim == 1 for a in arrays)):
        return None
    sig = types.void(kh, kw, stride, phase, kernels, kernel_start, planes, plane_start, plane_size, wq, channels,
                     out, out_start, out_stride)
    return sig, _after_window(_correlate_codegen(kh.literal_value, kw.literal_value, stride.literal_value,
                                                 phase.literal_value))


@functools.lru_cache(maxsize=None)
def _correlate_codegen(kh, kw, stride, phase):
    """The LLVM IR of ``correlate_tile`` for a kh x kw window, its taps unrolled."""

    def codegen(context, builder, signature, args):
        kernel_ptr, plane_ptr, out_ptr = (_element(context, builder, signature, args, index) for index in (0, 2, 7))
        plane_size, wq, channels, out_stride = (_int64(context, builder, signature, args, index)
                                                for index in (4, 5, 6, 9))
        updated, taps_before = [ir.Constant(_VECTOR, [0.0] * LANES)] * (TILE_ROWS * _VECTORS), 0
        for group, taps in tap_groups(kh, kw, stride, phase):
            loop, channel, sums = _open_loop(builder, "tile.channel", updated)
            plane = builder.gep(plane_ptr, [builder.mul(builder.add(builder.mul(_constant(group), channels), channel),
                                                        plane_size)])
            weights = builder.gep(kernel_ptr, [builder.mul(builder.add(builder.mul(channels, _constant(taps_before)),
                                                                       builder.mul(channel, _constant(len(taps)))),
                                                           _constant(TILE_ROWS))])
            updated = _add_taps(builder, list(sums), weights, plane,
                                [builder.add(builder.mul(_constant(du), wq), _constant(dv)) for _, _, du, dv in taps])
            _close_loop(builder, loop, channel, builder.add(channel, _constant(1)), channels, sums, updated)
            taps_before += len(taps)
        _store_tile(builder, updated, out_ptr, out_stride)
        return context.get_dummy_value()
    return codegen


@intrinsic
def product_tile(typingctx, a, a_start, a_stride, b, b_start, b_stride, depth, out, out_start, out_stride, accumulate):
    """product_tile(a, a_start, a_stride, b, b_start, b_stride, depth, out, out_start, out_stride,
    accumulate): a GEMM's tile, out[out_start + r out_stride + j] = sum_(k < depth) A[k, r] B[k, j]
    (added to what out holds there when ``accumulate``) for r < TILE_ROWS, j < TILE_LANES, with
    A[k, r] = a[a_start + k a_stride + r] (A^T's rows: TILE_ROWS consecutive floats) and B[k, j] =
    b[b_start + k b_stride + j]: the 1 x 1 window of ``correlate_tile`` with strides of its own.
    1-d C-contiguous float32 arrays, depth >= 1."""
    if not all(isinstance(array, types.Array) and array.dtype == types.float32 and array.ndim == 1
               for array in (a, b, out)):
        return None
    sig = types.void(a, a_start, a_stride, b, b_start, b_stride, depth, out, out_start, out_stride, types.boolean)

    def codegen(context, builder, signature, args):
        a_ptr, b_ptr, out_ptr = (_element(context, builder, signature, args, index) for index in (0, 3, 7))
        a_stride, b_stride, depth, out_stride = (_int64(context, builder, signature, args, index)
                                                 for index in (2, 5, 6, 9))
        accumulate = context.cast(builder, args[10], signature.args[10], types.boolean)
        zero = ir.Constant(_VECTOR, [0.0] * LANES)
        initial = []
        for r in range(TILE_ROWS):
            row = builder.gep(out_ptr, [builder.mul(_constant(r), out_stride)])
            initial += [builder.select(accumulate, builder.load(_vector_pointer(builder, row, _constant(v * LANES)),
                                                                align=4), zero) for v in range(_VECTORS)]
        loop, k, sums = _open_loop(builder, "product.k", initial)
        updated = _add_taps(builder, list(sums), builder.gep(a_ptr, [builder.mul(k, a_stride)]),
                            builder.gep(b_ptr, [builder.mul(k, b_stride)]), [_constant(0)])
        _close_loop(builder, loop, k, builder.add(k, _constant(1)), depth, sums, updated)
        _store_tile(builder, updated, out_ptr, out_stride)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def transpose_8x8(typingctx, src, src_start, src_stride, dst, dst_start):
    """transpose_8x8(src, src_start, src_stride, dst, dst_start): dst[dst_start + 8 i + r] =
    src[src_start + r src_stride + i] for r, i < 8, through 8 vector loads, 24 shuffles and 8
    vector stores (a scalar loop takes 64 loads and stores): the K-major packing of 8 rows for
    ``product_tile``. 1-d C-contiguous float32 arrays."""
    if not all(isinstance(array, types.Array) and array.dtype == types.float32 and array.ndim == 1
               for array in (src, dst)):
        return None
    eight = ir.VectorType(ir.FloatType(), 8)

    def codegen(context, builder, signature, args):
        src_ptr, dst_ptr = (_element(context, builder, signature, args, index) for index in (0, 3))
        src_stride = _int64(context, builder, signature, args, 2)

        def shuffle(a, b, lanes):
            return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), 8), lanes))

        rows = [builder.load(builder.bitcast(builder.gep(src_ptr, [builder.mul(_constant(r), src_stride)]),
                                             eight.as_pointer()), align=4) for r in range(8)]
        pairs = [[0, 8, 1, 9, 4, 12, 5, 13], [2, 10, 3, 11, 6, 14, 7, 15]]  # rows 2p, 2p + 1 interleaved
        firsts = [shuffle(rows[p], rows[p + 1], lanes) for p in range(0, 8, 2) for lanes in pairs]
        quads = [[0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]]
        seconds = [shuffle(firsts[base + half], firsts[base + 2 + half], lanes)
                   for base in (0, 4) for half in (0, 1) for lanes in quads]
        for i in range(4):  # columns i and i + 4: the low and high halves of seconds i and i + 4
            for column, lanes in ((i, [0, 1, 2, 3, 8, 9, 10, 11]), (i + 4, [4, 5, 6, 7, 12, 13, 14, 15])):
                builder.store(shuffle(seconds[i], seconds[i + 4], lanes),
                              builder.bitcast(builder.gep(dst_ptr, [_constant(8 * column)]), eight.as_pointer()),
                              align=4)
        return context.get_dummy_value()
    return types.void(src, src_start, src_stride, dst, dst_start), codegen


@intrinsic
def interleave_lanes(typingctx, even, even_start, odd, odd_start, out, out_start):
    """interleave_lanes(even, even_start, odd, odd_start, out, out_start): out[out_start + 2 k] =
    even[even_start + k] and out[out_start + 2 k + 1] = odd[odd_start + k] for k < LANES, through
    two vector loads, two shuffles and two vector stores (LLVM left that loop scalar): the rows of
    a stride-2 dX from its phases. 1-d C-contiguous float32 arrays."""
    if not all(isinstance(array, types.Array) and array.dtype == types.float32 and array.ndim == 1
               for array in (even, odd, out)):
        return None

    def codegen(context, builder, signature, args):
        even_ptr, odd_ptr, out_ptr = (_element(context, builder, signature, args, index) for index in (0, 2, 4))
        first, second = (builder.load(_vector_pointer(builder, pointer, _constant(0)), align=4)
                         for pointer in (even_ptr, odd_ptr))
        for half in range(2):
            lanes = [lane for k in range(half * LANES // 2, (half + 1) * LANES // 2) for lane in (k, LANES + k)]
            builder.store(builder.shuffle_vector(first, second, ir.Constant(ir.VectorType(ir.IntType(32), LANES),
                                                                           lanes)),
                          _vector_pointer(builder, out_ptr, _constant(half * LANES)), align=4)
        return context.get_dummy_value()
    return types.void(even, even_start, odd, odd_start, out, out_start), codegen


@njit(cache=True, nogil=True)
def pack_rows(src, start, stride, depth, packed):
    """packed[TILE_ROWS k + r] = src[start + r stride + k] for r < TILE_ROWS, k < depth: TILE_ROWS
    rows of a matrix, K-major, as ``product_tile`` reads A (8 x 8 blocks by ``transpose_8x8``)."""
    done = 0
    if TILE_ROWS == 8:
        for k in range(0, depth - 7, 8):
            transpose_8x8(src, start + k, stride, packed, 8 * k)
        done = depth - depth % 8
    for k in range(done, depth):
        for r in range(TILE_ROWS):
            packed[TILE_ROWS * k + r] = src[start + r * stride + k]


@njit(inline="always")
def row_block_product(a, a_start, a_stride, b, b_start, width, depth, out, out_start, accumulate):
    """One block of TILE_ROWS rows of out (rows ``width`` apart, from out_start) = A B over
    ``depth`` steps of K: ``product_tile`` for each TILE_LANES columns of B (rows ``width`` apart,
    from b_start); width a multiple of TILE_LANES."""
    for column in range(0, width, TILE_LANES):
        product_tile(a, a_start, a_stride, b, b_start + column, width, depth, out, out_start + column, width,
                     accumulate)


def _window_tile(name, doc, window_rows, shifts, transform):
    """An intrinsic name(planes, start, wq, out, out_start, out_step, count) that stores T W T^T
    (``_store_both_sides``, T = transform(builder, *values)) of the windows W_l[i, j] =
    planes[start + i wq + 2l + j] (i < window_rows; j's even and odd columns from shifts 0, 2,
    ...: ``_split_columns``) of LANES consecutive tiles at out[out_start + (4a + b) out_step + l],
    the lanes below ``count``. 1-d C-contiguous float32 arrays."""
    def typer(typingctx, planes, start, wq, out, out_start, out_step, count):
        if not all(isinstance(array, types.Array) and array.dtype == types.float32 and array.ndim == 1
                   for array in (planes, out)):
            return None
        sig = types.void(planes, start, wq, out, out_start, out_step, count)

        def codegen(context, builder, signature, args):
            plane_ptr, out_ptr = (_element(context, builder, signature, args, index) for index in (0, 3))
            wq, out_step, count = (_int64(context, builder, signature, args, index) for index in (2, 5, 6))
            window = [_split_columns(builder, plane_ptr, builder.mul(_constant(i), wq), shifts)
                      for i in range(window_rows)]
            _store_both_sides(builder, window, functools.partial(transform, builder), out_ptr, out_step, count)
            return context.get_dummy_value()
        return sig, codegen
    typer.__name__, typer.__doc__ = name, doc
    return intrinsic(typer)


def _b_transposed(builder, d0, d1, d2, d3):
    """B^T d = (d0 - d2, d1 + d2, d2 - d1, d1 - d3): F(2x2, 3x3)'s input transform on one side."""
    return [builder.fsub(d0, d2), builder.fadd(d1, d2), builder.fsub(d2, d1), builder.fsub(d1, d3)]


def _a_times(builder, y0, y1):
    """A (y0, y1) = (y0, y0 + y1, y0 - y1, -y1): the adjoint of F(2x2, 3x3)'s output transform on one side."""
    return [y0, builder.fadd(y0, y1), builder.fsub(y0, y1), builder.fneg(y1)]


winograd_input_tile = _window_tile("winograd_input_tile", """winograd_input_tile(planes, start, wq, v, v_start,
    v_step, count): the input transform V = B^T D B of F(2x2, 3x3) for LANES consecutive tiles of one
    plane (those below ``count`` stored), v[v_start + (4a + b) v_step + l] = V_l[a, b], D_l[i, j] =
    planes[start + i wq + 2l + j]; the lanes past ``count`` are neither stored nor used.""", 4, (0, 2), _b_transposed)

winograd_grad_tile = _window_tile("winograd_grad_tile", """winograd_grad_tile(planes, start, wq, dm, dm_start,
    dm_step, count): the adjoint of F(2x2, 3x3)'s output transform, dM = A dY A^T (A = [[1, 0], [1,
    1], [1, -1], [0, -1]]), for LANES consecutive tiles of one plane of dY, dm[dm_start + (4a + b)
    dm_step + l] = dM_l[a, b], dY_l[i, j] = planes[start + i wq + 2l + j].""", 2, (0,), _a_times)


@intrinsic
def winograd_output_tile(typingctx, m, m_start, m_step, shift, y, top, bottom, top_count, bottom_count):
    """winograd_output_tile(m, m_start, m_step, shift, y, top, bottom, top_count, bottom_count): the
    output transform Y = A^T M A + shift of F(2x2, 3x3) for LANES consecutive tiles, M_l[a, b] =
    m[m_start + (4a + b) m_step + l]: row 0 of each tile's 2 x 2 outputs at y[top + 2l], y[top + 2l
    + 1], row 1 at y[bottom + ...], the first top_count (bottom_count) of those 2 LANES floats
    stored. A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]. 1-d C-contiguous float32 arrays."""
    if not all(isinstance(array, types.Array) and array.dtype == types.float32 and array.ndim == 1
               for array in (m, y)):
        return None
    sig = types.void(m, m_start, m_step, types.float32, y, top, bottom, top_count, bottom_count)

    def codegen(context, builder, signature, args):
        m_ptr = _element(context, builder, signature, args, 0)
        y_ptr = cgutils.create_struct_proxy(signature.args[4])(context, builder, value=args[4]).data
        m_step, top, bottom, top_count, bottom_count = (_int64(context, builder, signature, args, index)
                                                        for index in (2, 5, 6, 7, 8))
        undefined = ir.Constant(_VECTOR, ir.Undefined)
        shift = builder.shuffle_vector(builder.insert_element(undefined, args[3], ir.Constant(ir.IntType(32), 0)),
                                       undefined, ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))
        mk = [builder.load(_vector_pointer(builder, m_ptr, builder.mul(_constant(k), m_step)), align=4)
              for k in range(16)]

        def a_transposed(m0, m1, m2, m3):
            return builder.fadd(builder.fadd(m0, m1), m2), builder.fsub(builder.fsub(m1, m2), m3)

        by_row = list(zip(*[a_transposed(*[mk[4 * a + b] for a in range(4)]) for b in range(4)]))  # [i][b]
        for (first, second), row, count in zip([a_transposed(*values) for values in by_row], (top, bottom),
                                               (top_count, bottom_count)):
            first, second = builder.fadd(first, shift), builder.fadd(second, shift)
            for half in range(2):  # outputs 2l and 2l + 1 side by side
                order = [half * LANES // 2 + k // 2 + (LANES if k % 2 else 0) for k in range(LANES)]
                pair = builder.shuffle_vector(first, second, ir.Constant(ir.VectorType(ir.IntType(32), LANES), order))
                _masked_store(builder, pair, _vector_pointer(builder, y_ptr, builder.add(row, _constant(half * LANES))),
                              _lanes_below(builder, count, half * LANES))
        return context.get_dummy_value()
    return sig, codegen


WINOGRAD_GRAD_CHANNELS = 8  # input channels of a Winograd dK tile, beside LANES / 8 output channels


@intrinsic
def winograd_weight_grad_tile(typingctx, grad, grad_start, grad_stride, v, v_start, v_stride, length, out, out_start,
                              out_stride):
    """winograd_weight_grad_tile(grad, grad_start, grad_stride, v, v_start, v_stride, length, out,
    out_start, out_stride): out[out_start + r out_stride + u] += sum_(f < length) grad[grad_start +
    r grad_stride + f] v[v_start + u v_stride + f] for r < LANES / 8, u < 8 (the dK GEMM of
    F(2x2, 3x3) over tiles f, dU = dM V^T): LANES running sums of LANES lanes, then added lane
    by lane in a fixed tree of shuffles into one vector of the LANES totals, added to ``out``
    (float64). grad and v 1-d C-contiguous float32, out float64; length a positive multiple of
    LANES."""
    if not (all(isinstance(a, types.Array) and a.ndim == 1 for a in (grad, v, out))
            and grad.dtype == v.dtype == types.float32 and out.dtype == types.float64):
        return None
    sig = types.void(grad, grad_start, grad_stride, v, v_start, v_stride, length, out, out_start, out_stride)
    rows = LANES // WINOGRAD_GRAD_CHANNELS

    def codegen(context, builder, signature, args):
        grad_ptr, v_ptr, out_ptr = (_element(context, builder, signature, args, index) for index in (0, 3, 7))
        grad_stride, v_stride, length, out_stride = (_int64(context, builder, signature, args, index)
                                                     for index in (2, 5, 6, 9))
        fma = _fma(builder)

        def vector_at(pointer, offset):
            return builder.load(_vector_pointer(builder, pointer, offset), align=4)

        loop, position, sums = _open_loop(builder, "winograd.dk", [ir.Constant(_VECTOR, [0.0] * LANES)] * LANES)
        grads = [vector_at(grad_ptr, builder.add(builder.mul(_constant(r), grad_stride), position))
                 for r in range(rows)]
        updated = list(sums)
        for u in range(WINOGRAD_GRAD_CHANNELS):
            inputs = vector_at(v_ptr, builder.add(builder.mul(_constant(u), v_stride), position))
            for r in range(rows):
                index = r * WINOGRAD_GRAD_CHANNELS + u
                updated[index] = builder.call(fma, [grads[r], inputs, updated[index]])
        _close_loop(builder, loop, position, builder.add(position, _constant(LANES)), length, sums, updated)
        vectors, width = updated, LANES  # each vector: LANES / width sums, ``width`` lanes of each
        while len(vectors) > 1:  # pairs of vectors -> one: the first and second half of each sum's lanes added
            half = width // 2
            first = [m * width + h for m in range(LANES // width) for h in range(half)]
            first += [LANES + index for index in first]
            orders = [ir.Constant(ir.VectorType(ir.IntType(32), LANES), [index + shift for index in first])
                      for shift in (0, half)]
            vectors = [builder.fadd(*[builder.shuffle_vector(p, q, order) for order in orders])
                       for p, q in zip(vectors[::2], vectors[1::2])]
            width = half
        doubles = ir.VectorType(ir.DoubleType(), WINOGRAD_GRAD_CHANNELS)
        undefined = ir.Constant(_VECTOR, ir.Undefined)
        for r in range(rows):
            part = builder.shuffle_vector(vectors[0], undefined, ir.Constant(
                ir.VectorType(ir.IntType(32), WINOGRAD_GRAD_CHANNELS),
                [r * WINOGRAD_GRAD_CHANNELS + u for u in range(WINOGRAD_GRAD_CHANNELS)]))
            row = builder.gep(out_ptr, [builder.mul(_constant(r), out_stride)])
            target = builder.bitcast(row, doubles.as_pointer())
            builder.store(builder.fadd(builder.load(target, align=8), builder.fpext(part, doubles)), target, align=8)
        return context.get_dummy_value()
    return sig, codegen


def _store_both_sides(builder, window, transform, out_ptr, step, count):
    """T W T^T of a window W[i][j] (vectors of LANES tiles) for a 1-d transform T (4 values from
    W's rows, then from its columns) stored at out_ptr + (4a + b) step, the lanes below ``count``."""
    rows_done = list(zip(*[transform(*[row[j] for row in window]) for j in range(len(window[0]))]))  # [a][j]
    mask = _lanes_below(builder, count, 0)
    for a, values in enumerate(rows_done):
        for b, value in enumerate(transform(*values)):
            _masked_store(builder, value, _vector_pointer(builder, out_ptr, builder.mul(_constant(4 * a + b), step)),
                          mask)


def _split_columns(builder, plane_ptr, row, shifts):
    """For each shift s: the even and odd columns 2l + s, 2l + s + 1 (l < LANES) of the row at
    ``row``, by shuffles of two vector loads."""
    evens, odds = (ir.Constant(ir.VectorType(ir.IntType(32), LANES), [2 * lane + parity for lane in range(LANES)])
                   for parity in (0, 1))
    split = []
    for shift in shifts:
        low, high = (builder.load(_vector_pointer(builder, plane_ptr, builder.add(row, _constant(offset))), align=4)
                     for offset in (shift, shift + LANES))
        split += [builder.shuffle_vector(low, high, evens), builder.shuffle_vector(low, high, odds)]
    return split


def _lanes_below(builder, count, first):
    """The mask of the lanes l with first + l < count."""
    indices = ir.VectorType(ir.IntType(64), LANES)
    bound = builder.shuffle_vector(
        builder.insert_element(ir.Constant(indices, ir.Undefined), count, ir.Constant(ir.IntType(32), 0)),
        ir.Constant(indices, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))
    return builder.icmp_signed("<", ir.Constant(indices, [first + lane for lane in range(LANES)]), bound)


def _masked_store(builder, value, pointer, mask):
    """llvm.masked.store: the lanes of ``value`` that ``mask`` sets, to ``pointer``; no other
    memory is touched (another thread may be writing the floats past a row's end)."""
    store = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [_VECTOR, _VECTOR.as_pointer(), ir.IntType(32),
                                                        ir.VectorType(ir.IntType(1), LANES)]),
        f"llvm.masked.store.v{LANES}f32.p0")
    builder.call(store, [value, pointer, ir.Constant(ir.IntType(32), 4), mask])


def _add_taps(builder, sums, weights, plane, offsets):
    """sums[r, v] + sum over taps t of weights[t TILE_ROWS + r] x the LANES floats at plane +
    offsets[t] + v LANES (llvm.fma), for a tile's TILE_ROWS x _VECTORS running sums."""
    fma = _fma(builder)
    undefined = ir.Constant(_VECTOR, ir.Undefined)
    splat = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
    for tap, offset in enumerate(offsets):
        inputs = [builder.load(_vector_pointer(builder, plane, builder.add(offset, _constant(v * LANES))), align=4)
                  for v in range(_VECTORS)]
        for r in range(TILE_ROWS):
            weight = builder.load(builder.gep(weights, [_constant(tap * TILE_ROWS + r)]))
            broadcast = builder.shuffle_vector(
                builder.insert_element(undefined, weight, ir.Constant(ir.IntType(32), 0)), undefined, splat)
            for v in range(_VECTORS):
                sums[r * _VECTORS + v] = builder.call(fma, [broadcast, inputs[v], sums[r * _VECTORS + v]])
    return sums


def _store_tile(builder, sums, out, out_stride):
    """Stores a tile's TILE_ROWS x TILE_LANES sums at out + r out_stride + j."""
    for r in range(TILE_ROWS):
        row = builder.gep(out, [builder.mul(_constant(r), out_stride)])
        for v in range(_VECTORS):
            builder.store(sums[r * _VECTORS + v], _vector_pointer(builder, row, _constant(v * LANES)), align=4)


WEIGHT_GRAD_ROWS = 2 if LANES == 16 else 1  # output channels per dK tile: 2 (1) x 9 running sums, 2 (1) + 9 loads
WEIGHT_GRAD_TAPS = 9  # most taps per dK tile


@intrinsic(prefer_literal=True)
def weight_grad_tile(typingctx, kh, kw, stride, grad, grad_start, grad_stride, planes, plane_start, group_stride, wq,
                     length, out, out_start, out_stride):
    """weight_grad_tile(kh, kw, stride, grad, grad_start, grad_stride, planes, plane_start, group_stride,
    wq, length, out, out_start, out_stride) for a kh x kw window at ``stride`` (constants): out[out_start
    + r out_stride + kw u + v] += sum_(f < length) dY[r, f] X_g[f + du Wq + dv] for r <
    WEIGHT_GRAD_ROWS and every tap (u, v) of the correlation's ``tap_groups`` (group g, offset
    (du, dv)), with dY[r, f] = grad[grad_start + r grad_stride + f] and X_g[p] = planes[plane_start
    + g group_stride + p]. The taps go in groups of WEIGHT_GRAD_TAPS, one sweep over f each; the
    sums over f run in LANES float32 lanes (each lane's terms in order), are added up lane by lane
    in a fixed tree and then added to ``out`` (float64). grad and planes 1-d C-contiguous float32,
    out float64; length a positive multiple of LANES."""
    if not (_constants(kh, kw, stride) and all(isinstance(a, types.Array) and a.ndim == 1 for a in (grad, planes, out))
            and grad.dtype == planes.dtype == types.float32 and out.dtype == types.float64):
        return None
    sig = types.void(kh, kw, stride, grad, grad_start, grad_stride, planes, plane_start, group_stride, wq, length, out,
                     out_start, out_stride)
    return sig, _after_window(_weight_grad_codegen(kh.literal_value, kw.literal_value, stride.literal_value), 3)


@functools.lru_cache(maxsize=None)
def _weight_grad_codegen(kh, kw, stride):
    """The LLVM IR of ``weight_grad_tile`` for a kh x kw window at ``stride``, its taps unrolled."""
    taps = [(kw * u + v, group, du, dv) for group, taps in tap_groups(kh, kw, stride, -1) for u, v, du, dv in taps]
    groups = [taps[k:k + WEIGHT_GRAD_TAPS] for k in range(0, len(taps), WEIGHT_GRAD_TAPS)]

    def codegen(context, builder, signature, args):
        grad_ptr, plane_ptr, out_ptr = (_element(context, builder, signature, args, index) for index in (0, 3, 8))
        grad_stride, group_stride, wq, length, out_stride = (_int64(context, builder, signature, args, index)
                                                             for index in (2, 5, 6, 7, 10))
        fma = _fma(builder)

        def vector_at(pointer, offset):
            return builder.load(_vector_pointer(builder, pointer, offset), align=4)

        for group in groups:
            count = len(group)
            loop, position, sums = _open_loop(builder, "dk.position",
                                              [ir.Constant(_VECTOR, [0.0] * LANES)] * (WEIGHT_GRAD_ROWS * count))
            grads = [vector_at(grad_ptr, builder.add(builder.mul(_constant(r), grad_stride), position))
                     for r in range(WEIGHT_GRAD_ROWS)]
            updated = list(sums)
            for tap, (_, plane_group, du, dv) in enumerate(group):
                offset = builder.add(builder.mul(_constant(plane_group), group_stride),
                                     builder.add(builder.mul(_constant(du), wq), _constant(dv)))
                inputs = vector_at(plane_ptr, builder.add(position, offset))
                for r in range(WEIGHT_GRAD_ROWS):
                    updated[count * r + tap] = builder.call(fma, [grads[r], inputs, updated[count * r + tap]])
            _close_loop(builder, loop, position, builder.add(position, _constant(LANES)), length, sums, updated)
            undefined = ir.Constant(_VECTOR, ir.Undefined)
            for r in range(WEIGHT_GRAD_ROWS):
                for tap, (index, _, _, _) in enumerate(group):
                    total, width = updated[count * r + tap], LANES
                    while width > 1:  # lanes [0, width / 2) += lanes [width / 2, width)
                        width //= 2
                        upper = ir.Constant(ir.VectorType(ir.IntType(32), LANES),
                                            [width + k if k < width else k for k in range(LANES)])
                        total = builder.fadd(total, builder.shuffle_vector(total, undefined, upper))
                    lane = builder.extract_element(total, ir.Constant(ir.IntType(32), 0))
                    target = builder.gep(out_ptr, [builder.add(builder.mul(_constant(r), out_stride),
                                                               _constant(index))])
                    builder.store(builder.fadd(builder.load(target), builder.fpext(lane, ir.DoubleType())),
                                  target)
        return context.get_dummy_value()
    return codegen


def _constant(value):
    """An int64 constant of the IR."""
    return ir.Constant(ir.IntType(64), value)


def _vector_pointer(builder, pointer, offset):
    """A pointer to the LANES floats at pointer + offset (a float pointer)."""
    return builder.bitcast(builder.gep(pointer, [offset]), _VECTOR.as_pointer())


def _int64(context, builder, signature, args, index):
    """Argument ``index`` of an intrinsic, as an int64."""
    return context.cast(builder, args[index], signature.args[index], types.int64)


def _element(context, builder, signature, args, index):
    """A pointer to element args[index + 1] of the 1-d array args[index]."""
    data = cgutils.create_struct_proxy(signature.args[index])(context, builder, value=args[index]).data
    return builder.gep(data, [_int64(context, builder, signature, args, index + 1)])


def _fma(builder):
    """llvm.fma on vectors of LANES float32: a x b + c, one rounding."""
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VECTOR, [_VECTOR] * 3),
                                          f"llvm.fma.v{LANES}f32")


def _constants(*values):
    """Whether every value is typed as an integer constant (a literal)."""
    return all(isinstance(value, types.IntegerLiteral) for value in values)


def _after_window(codegen, constants=4):
    """``codegen`` of the arguments after the first ``constants`` (the window's kh, kw, ...)."""
    def lowered(context, builder, signature, args):
        return codegen(context, builder, types.void(*signature.args[constants:]), args[constants:])
    return lowered


def _open_loop(builder, name, initial):
    """A loop's first block, entered from here: (the block, its counter from 0, running vector sums
    from the values ``initial``); ``_close_loop`` ends it."""
    entry = builder.block
    loop = builder.append_basic_block(name)
    builder.branch(loop)
    builder.position_at_end(loop)
    counter = builder.phi(ir.IntType(64))
    counter.add_incoming(ir.Constant(ir.IntType(64), 0), entry)
    sums = []
    for value in initial:
        running = builder.phi(_VECTOR)
        running.add_incoming(value, entry)
        sums.append(running)
    return loop, counter, sums


def _close_loop(builder, loop, counter, following, end, sums, updated):
    """Back to ``loop`` with the counter at ``following`` and the sums ``updated`` while following
    < end; the code after it goes on in a new block."""
    counter.add_incoming(following, builder.block)
    for running, value in zip(sums, updated):
        running.add_incoming(value, builder.block)
    done = builder.append_basic_block(loop.name + ".done")
    builder.cbranch(builder.icmp_signed("<", following, end), loop, done)
    builder.position_at_end(done)
