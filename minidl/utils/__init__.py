"""Utilities: gradient checking, serialization, model summary."""
from .gradcheck import gradcheck, numerical_grads
from .serialization import load, load_checkpoint, save, save_checkpoint
from .summary import ModelSummary, summary
