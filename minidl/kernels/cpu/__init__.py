"""Numba CPU kernels: ``@njit(cache=True)``, C-contiguous arrays in, parallel over outputs."""
