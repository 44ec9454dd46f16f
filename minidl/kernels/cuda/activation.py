"""ReLU on cuda arrays, through their NumPy interface (broadcasting elementwise maps)."""
import numpy as np


def relu_forward(x):
    return np.maximum(x, 0)


def relu_backward(grad, y):
    return grad * (y > 0)
