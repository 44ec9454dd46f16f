"""numba-cuda kernels: the same module names and signatures as ``kernels.cpu``.

Nothing here imports ``numba.cuda`` at import time (see ``_runtime.cuda``), so ``import minidl``
works with no GPU and no CUDA toolkit. Device arrays are ``array.CudaArray`` (a strided view of
a numba device buffer that speaks numpy's dispatch protocols, so ``minidl.ops`` and
``nn.functional`` run unchanged on them). Every operation on them is a numba.cuda kernel; under
``NUMBA_ENABLE_CUDASIM=1`` the same kernels run in numba's CUDA simulator.
"""
