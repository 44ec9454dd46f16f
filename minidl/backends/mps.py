"""``torch.backends.mps``: Apple's Metal backend. minidl's only accelerator is cuda (through
numba-cuda), so MPS is never built nor available, and a program falls through to cuda or cpu."""


def is_available():
    return False


def is_built():
    return False
