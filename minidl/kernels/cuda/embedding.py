"""Embedding's weight gradient on the GPU: dW[k] = sum of the rows of dY looked up at index k,
by the cuda array's ``np.add.at`` (an atomic add per element)."""
import numpy as np

from .array import as_cuda


def embedding_backward(index, grad_rows, num_embeddings):
    """dW (num_embeddings, D) from the flat indices (M,) and dY's rows (M, D)."""
    grad_rows = as_cuda(grad_rows)
    dw = np.zeros((num_embeddings, grad_rows.shape[1]), dtype=grad_rows.dtype, like=grad_rows)
    np.add.at(dw, index, grad_rows)
    return dw
