"""ReLU forward and backward in one pass each (NumPy's ``grad * (y > 0)`` takes two and a
temporary mask): y = x if x > 0 else 0 (NaN stays NaN, as PyTorch);  dx = dy if y > 0 else 0.
Arrays are C-contiguous and walked flat."""
import numpy as np

from . import size_dispatched

_CHUNK = 1 << 14  # elements per parallel task


@size_dispatched
def relu_forward(loop):
    def kernel(x):
        flat = x.reshape(-1)
        y = np.empty_like(flat)
        for chunk in loop((flat.size + _CHUNK - 1) // _CHUNK):
            source, target = flat[chunk * _CHUNK:chunk * _CHUNK + _CHUNK], y[chunk * _CHUNK:]
            for k in range(source.size):
                value = source[k]
                target[k] = 0 if value <= 0 else value
        return y.reshape(x.shape)
    return kernel


@size_dispatched
def relu_backward(loop):
    def kernel(grad, y):
        flat_grad, flat_y = grad.reshape(-1), y.reshape(-1)
        dx = np.empty_like(flat_grad)
        for chunk in loop((flat_grad.size + _CHUNK - 1) // _CHUNK):
            start = chunk * _CHUNK
            g, out, target = flat_grad[start:start + _CHUNK], flat_y[start:], dx[start:]
            for k in range(g.size):
                target[k] = g[k] if out[k] > 0 else 0
        return dx.reshape(grad.shape)
    return kernel
