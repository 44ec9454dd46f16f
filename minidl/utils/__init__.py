"""Utilities: gradient checking and serialization."""
from .gradcheck import gradcheck, numerical_grads
from .serialization import load, load_checkpoint, save, save_checkpoint
