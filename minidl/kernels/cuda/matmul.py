"""Matrix products: a shared-memory tiled kernel; cuBLAS through CuPy when it is installed.

C[z] = A[z] @ B[z] for every batch index z (batch axes broadcast with stride 0). A and B are
read through their strides, so ``x @ w.T`` needs no transposed copy. Each block computes one
T x T tile of C: per step it loads a T x T tile of A and of B into shared memory (one element
per thread), waits, and accumulates their product: each element of A and B is read from global
memory K / T times fewer than a naive loop.
"""
import math
import os
import warnings

import numpy as np

from ._runtime import kernel_builder, simulating, tile

cuda = None  # numba.cuda, bound by kernel_builder on first use


@kernel_builder
def tiled_matmul_kernel(dtype_name, t):
    import numba
    dtype = getattr(numba, dtype_name)

    @cuda.jit
    def kernel(m, n, k, batch_shape, a, a_bst, a_off, a_rs, a_cs, b, b_bst, b_off, b_rs, b_cs, out):
        # One declaration per line: the simulator tells shared arrays apart by source line.
        tile_a = cuda.shared.array((t, t), dtype)
        tile_b = cuda.shared.array((t, t), dtype)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        row = cuda.blockIdx.y * t + ty
        col = cuda.blockIdx.x * t + tx
        z = cuda.blockIdx.z
        rem, ao, bo = z, a_off, b_off
        for d in range(len(batch_shape) - 1, -1, -1):
            q = rem % batch_shape[d]
            rem //= batch_shape[d]
            ao += q * a_bst[d]
            bo += q * b_bst[d]
        acc = dtype(0)
        for step in range((k + t - 1) // t):
            ka = step * t + tx
            if row < m and ka < k:
                tile_a[ty, tx] = a[ao + row * a_rs + ka * a_cs]
            else:
                tile_a[ty, tx] = 0
            kb = step * t + ty
            if kb < k and col < n:
                tile_b[ty, tx] = b[bo + kb * b_rs + col * b_cs]
            else:
                tile_b[ty, tx] = 0
            cuda.syncthreads()
            for q in range(t):
                acc += tile_a[ty, q] * tile_b[q, tx]
            cuda.syncthreads()
        if row < m and col < n:
            out[z * m * n + row * n + col] = acc
    return kernel


_cupy_state = {}


def _cupy():
    """CuPy when installed on a real GPU (cuBLAS GEMM), else None. Set MINIDL_CUBLAS=0 to use the
    tiled kernel anyway."""
    if "module" not in _cupy_state:
        module = None
        if not simulating() and os.environ.get("MINIDL_CUBLAS", "1") != "0":
            try:
                import cupy as module
            except Exception:  # not installed, or installed without a usable CUDA runtime
                module = None
        _cupy_state["module"] = module
    return _cupy_state["module"]


def matmul(a, b, out, batch_shape, a_bst, b_bst):
    """``out`` (contiguous, batch + (m, n)) = a @ b; a, b CudaArrays of ndim >= 2 with
    a.shape[-2:] = (m, k), b.shape[-2:] = (k, n); a_bst, b_bst their batch strides."""
    m, k = a.shape[-2:]
    n = b.shape[-1]
    nbatch = int(np.prod(batch_shape, dtype=np.int64)) if batch_shape else 1
    if out.size == 0:
        return out
    if k == 0:
        out.fill(0)
        return out
    cp = _cupy()
    if cp is not None and not batch_shape and a.dtype in (np.float32, np.float64):
        try:
            cp.matmul(cp.asarray(a), cp.asarray(b), out=cp.asarray(out))  # views, no copies
            return out
        except Exception as error:  # a broken CuPy must not break training: fall back, say so once
            warnings.warn(f"minidl: CuPy matmul failed ({error}); using the tiled kernel instead")
            _cupy_state["module"] = None
    t = tile()
    kernel = tiled_matmul_kernel(np.dtype(a.dtype).name, t)
    shape = tuple(batch_shape) or (1,)
    a_bst, b_bst = tuple(a_bst) or (0,), tuple(b_bst) or (0,)
    grid = (math.ceil(n / t), math.ceil(m / t), nbatch)
    kernel[grid, (t, t)](m, n, k, shape, a.base, a_bst, a.offset, a.elem_strides[-2], a.elem_strides[-1],
                         b.base, b_bst, b.offset, b.elem_strides[-2], b.elem_strides[-1], out.base)
    return out


def product(a, b, bias=None):
    """a b (+ bias on every row; the cpu's register tiles' counterpart, kernels/cpu/matmul.py)."""
    out = a @ b
    if bias is not None:
        out += bias
    return out


def transposed_product(a, b):
    """a^T b."""
    return a.T @ b
