"""Utilities: gradient checking, serialization (.npz and safetensors), model summary, plots
(matplotlib, imported on first use)."""
from . import data  # minidl.utils.data: PyTorch's torch.utils.data path of minidl.data
from .gradcheck import gradcheck, numerical_grads
from .plot import confusion_matrix, plot_confusion_matrix, plot_history, plot_image_grid
from .safetensors import load_safetensors, save_safetensors
from .serialization import load, load_checkpoint, save, save_checkpoint
from .summary import ModelSummary, summary
