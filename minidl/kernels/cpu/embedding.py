"""Embedding's weight gradient: dW[k] = sum of the rows of dY looked up at index k.

One serial pass over the looked-up rows in order, each added to its row of dW (the sums are
the same in every run). NumPy's ``np.add.at`` did it element by element: an Embedding(10000,
256) on (64, 128) indices took 24 ms forward + backward that way, 8x PyTorch's time.
"""
import numpy as np
from numba import njit


@njit(cache=True)
def embedding_backward(index, grad_rows, num_embeddings):
    """dW (num_embeddings, D) from the flat indices (M,) and dY's rows (M, D)."""
    dw = np.zeros((num_embeddings, grad_rows.shape[1]), dtype=grad_rows.dtype)
    for i in range(index.size):
        target, source = dw[index[i]], grad_rows[i]
        for k in range(source.size):
            target[k] += source[k]
    return dw
