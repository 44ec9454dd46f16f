"""Utilities: gradient checking, serialization, model summary."""
from .gradcheck import gradcheck, numerical_grads
