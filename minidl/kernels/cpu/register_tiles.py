"""A 3x3 correlation tile kept in vector registers: LLVM IR through a Numba intrinsic.

LLVM does not keep a loop's running sums in registers across a reduction that Numba writes
over arrays: the blocked 3x3 loops of ``direct_conv`` load and store their accumulators once
per kernel row and hold about half of this machine's GEMM peak. ``correlate_tile`` is written
in LLVM IR instead (vectors of LANES float32), as a BLAS micro-kernel is: the sums of
TILE_ROWS output channels over TILE_LANES consecutive wide positions stay in
TILE_ROWS x TILE_LANES / LANES registers for the whole sum over the input channels and taps:

    out[r, j] = sum_(c < C) sum_(u, v < 3) K[c, 3 u + v, r] X[c, f0 + u Wq + v + j]
                                                  (r < TILE_ROWS, j < TILE_LANES)

Each tap costs 2 vector loads of X and TILE_ROWS broadcasts of K for 2 TILE_ROWS multiply-adds
(llvm.fma), so the FMA units, not the loads, bound it. On one Zen4 core the same loop as a GEMM
(6 x 32 tiles, K = 288) measured 104-116 GFLOP/s, where OpenBLAS's sgemm holds ~100 per core.
On a CPU without 512-bit vectors LLVM splits each vector into two or four.

``weight_grad_tile`` is the dK pass's tile: 2 output channels x 9 taps of one input channel,
summed over the wide positions in 18 vector registers (2 + 9 vector loads per 18 multiply-adds).
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 16  # float32 per vector register (AVX-512)
TILE_ROWS = 8  # output channels per tile
TILE_LANES = 2 * LANES  # wide positions per tile
_VECTORS = TILE_LANES // LANES


@intrinsic
def correlate_tile(typingctx, kernels, kernel_start, planes, plane_start, plane_size, wq, channels, out,
                   out_start, out_stride):
    """Stores the tile's sums (module docstring) at out[out_start + r out_stride + j]; the K of
    channel c and tap t at kernels[kernel_start + (9 c + t) TILE_ROWS + r] and X[c, p] at
    planes[plane_start + c plane_size + p]. 1-d C-contiguous float32 arrays, channels >= 1; reads
    run TILE_LANES + 2 Wq + 1 floats past the tile's first position in every plane."""
    arrays = (kernels, planes, out)
    if not all(isinstance(a, types.Array) and a.dtype == types.float32 and a.ndim == 1 for a in arrays):
        return None
    sig = types.void(kernels, kernel_start, planes, plane_start, plane_size, wq, channels, out, out_start,
                     out_stride)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        vec = ir.VectorType(ir.FloatType(), LANES)
        kernel_ptr, plane_ptr, out_ptr = (
            builder.gep(cgutils.create_struct_proxy(signature.args[index])(context, builder, value=args[index]).data,
                        [context.cast(builder, args[index + 1], signature.args[index + 1], types.int64)])
            for index in (0, 2, 7))
        plane_size, wq, channels, out_stride = (context.cast(builder, args[index], signature.args[index], types.int64)
                                                for index in (4, 5, 6, 9))
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]),
                                             "llvm.fma.v16f32")
        undefined = ir.Constant(vec, ir.Undefined)
        splat = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)

        def constant(value):
            return ir.Constant(i64, value)

        def vector_at(pointer, offset):
            return builder.bitcast(builder.gep(pointer, [offset]), vec.as_pointer())

        entry = builder.block
        loop = builder.append_basic_block("tile.channel")
        done = builder.append_basic_block("tile.done")
        builder.branch(loop)
        builder.position_at_end(loop)
        channel = builder.phi(i64)
        channel.add_incoming(constant(0), entry)
        sums = []
        for _ in range(TILE_ROWS * _VECTORS):
            running = builder.phi(vec)
            running.add_incoming(ir.Constant(vec, [0.0] * LANES), entry)
            sums.append(running)
        plane = builder.gep(plane_ptr, [builder.mul(channel, plane_size)])
        weights = builder.gep(kernel_ptr, [builder.mul(channel, constant(9 * TILE_ROWS))])
        updated = list(sums)
        for tap in range(9):
            shift = builder.add(builder.mul(constant(tap // 3), wq), constant(tap % 3))
            inputs = [builder.load(vector_at(plane, builder.add(shift, constant(v * LANES))), align=4)
                      for v in range(_VECTORS)]
            for r in range(TILE_ROWS):
                weight = builder.load(builder.gep(weights, [constant(tap * TILE_ROWS + r)]))
                broadcast = builder.shuffle_vector(
                    builder.insert_element(undefined, weight, ir.Constant(ir.IntType(32), 0)), undefined, splat)
                for v in range(_VECTORS):
                    updated[r * _VECTORS + v] = builder.call(fma, [broadcast, inputs[v], updated[r * _VECTORS + v]])
        following = builder.add(channel, constant(1))
        channel.add_incoming(following, builder.block)
        for running, value in zip(sums, updated):
            running.add_incoming(value, builder.block)
        builder.cbranch(builder.icmp_signed("<", following, channels), loop, done)
        builder.position_at_end(done)
        for r in range(TILE_ROWS):
            row = builder.gep(out_ptr, [builder.mul(constant(r), out_stride)])
            for v in range(_VECTORS):
                builder.store(updated[r * _VECTORS + v], vector_at(row, constant(v * LANES)), align=4)
        return context.get_dummy_value()
    return sig, codegen


WEIGHT_GRAD_ROWS = 2  # output channels per dK tile: 2 x 9 running sums, 2 + 9 loads, in 29 registers


@intrinsic
def weight_grad_tile(typingctx, grad, grad_start, grad_stride, planes, plane_start, wq, length, out, out_start,
                     out_stride):
    """out[out_start + r out_stride + 3 u + v] += sum_(f < length) dY[r, f] X[f + u Wq + v] for
    r < WEIGHT_GRAD_ROWS and u, v < 3, with dY[r, f] = grad[grad_start + r grad_stride + f] and
    X[p] = planes[plane_start + p]: the sums over f run in LANES float32 lanes (each lane's terms
    in order), are added up lane by lane in a fixed tree and then added to ``out`` (float64).
    grad and planes 1-d C-contiguous float32, out float64; length a positive multiple of LANES."""
    if not (all(isinstance(a, types.Array) and a.ndim == 1 for a in (grad, planes, out))
            and grad.dtype == planes.dtype == types.float32 and out.dtype == types.float64):
        return None
    sig = types.void(grad, grad_start, grad_stride, planes, plane_start, wq, length, out, out_start, out_stride)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        vec = ir.VectorType(ir.FloatType(), LANES)
        grad_ptr, plane_ptr, out_ptr = (
            builder.gep(cgutils.create_struct_proxy(signature.args[index])(context, builder, value=args[index]).data,
                        [context.cast(builder, args[index + 1], signature.args[index + 1], types.int64)])
            for index in (0, 3, 7))
        grad_stride, wq, length, out_stride = (context.cast(builder, args[index], signature.args[index], types.int64)
                                               for index in (2, 5, 6, 9))
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]),
                                             "llvm.fma.v16f32")

        def constant(value):
            return ir.Constant(i64, value)

        def vector_at(pointer, offset):
            return builder.load(builder.bitcast(builder.gep(pointer, [offset]), vec.as_pointer()), align=4)

        entry = builder.block
        loop = builder.append_basic_block("dk.position")
        done = builder.append_basic_block("dk.done")
        builder.branch(loop)
        builder.position_at_end(loop)
        position = builder.phi(i64)
        position.add_incoming(constant(0), entry)
        sums = []
        for _ in range(WEIGHT_GRAD_ROWS * 9):
            running = builder.phi(vec)
            running.add_incoming(ir.Constant(vec, [0.0] * LANES), entry)
            sums.append(running)
        grads = [vector_at(grad_ptr, builder.add(builder.mul(constant(r), grad_stride), position))
                 for r in range(WEIGHT_GRAD_ROWS)]
        updated = list(sums)
        for tap in range(9):
            shift = builder.add(builder.mul(constant(tap // 3), wq), constant(tap % 3))
            inputs = vector_at(plane_ptr, builder.add(position, shift))
            for r in range(WEIGHT_GRAD_ROWS):
                updated[9 * r + tap] = builder.call(fma, [grads[r], inputs, updated[9 * r + tap]])
        following = builder.add(position, constant(LANES))
        position.add_incoming(following, builder.block)
        for running, value in zip(sums, updated):
            running.add_incoming(value, builder.block)
        builder.cbranch(builder.icmp_signed("<", following, length), loop, done)
        builder.position_at_end(done)
        undefined = ir.Constant(vec, ir.Undefined)
        for r in range(WEIGHT_GRAD_ROWS):
            for tap in range(9):
                total, width = updated[9 * r + tap], LANES
                while width > 1:  # lanes [0, width / 2) += lanes [width / 2, width)
                    width //= 2
                    upper = ir.Constant(ir.VectorType(ir.IntType(32), LANES),
                                        [width + k if k < width else k for k in range(LANES)])
                    total = builder.fadd(total, builder.shuffle_vector(total, undefined, upper))
                lane = builder.extract_element(total, ir.Constant(ir.IntType(32), 0))
                target = builder.gep(out_ptr, [builder.add(builder.mul(constant(r), out_stride), constant(tap))])
                builder.store(builder.fadd(builder.load(target), builder.fpext(lane, ir.DoubleType())), target)
        return context.get_dummy_value()
    return sig, codegen
