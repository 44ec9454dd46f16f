"""``minidl.backends``, as much of ``torch.backends`` as device probes in PyTorch programs read:
``minidl.backends.mps.is_available()`` (the quickstart tutorial's cuda / mps / cpu choice)."""
from . import mps

__all__ = ["mps"]
