"""Tiled convolution on the GPU: weights shared only between output units a tile apart.

The formulas of ``kernels.cpu.tiled_conv``; computed by the direct kernels of ``conv.py`` with
the tile's classes (class k = (i mod th) tw + (j mod tw) uses weight[:, i mod th, j mod tw]).
"""
from .array import as_cuda
from .conv import full_bias, shared_conv_backward, shared_conv_forward

_NO_DILATION = (1, 1)


def class_weights(weight):
    """(O, th, tw, C, kh, kw) -> one (O, C kh kw) matrix per tile class: (th tw, O, C kh kw)."""
    weight = as_cuda(weight)
    n_out, th, tw = weight.shape[:3]
    return weight.transpose(1, 2, 0, 3, 4, 5).ascontiguous().reshape(th * tw, n_out, -1)


def layer_weights(weight_k, shape):
    """The inverse of ``class_weights``: (th tw, O, C kh kw) -> (O, th, tw, C, kh, kw)."""
    n_out, th, tw = shape[:3]
    per_class = weight_k.reshape((th, tw, n_out) + tuple(shape[3:]))
    return per_class.transpose(2, 0, 1, 3, 4, 5).ascontiguous()


def tiled_conv2d_forward(x, weight, bias, stride, padding, out_size):
    """Y for weight (O, th, tw, C, kh, kw) and bias (O,), (O, oh, ow) or None."""
    bias_full = full_bias(bias, weight.shape[0], out_size, x.dtype)
    return shared_conv_forward(x, class_weights(weight), bias_full, weight.shape[4:], stride, padding,
                               _NO_DILATION, out_size, weight.shape[1:3])


def tiled_conv2d_backward(x, weight, dy, stride, padding, need_dx=True, need_dw=True):
    """(dx, dweight, dbias_full) with dbias_full[o, i, j] = sum_n dY[n, o, i, j]."""
    dx, dweight_k, dbias = shared_conv_backward(
        x, class_weights(weight), dy, weight.shape[4:], stride, padding, _NO_DILATION,
        weight.shape[1:3], 1, need_dx, need_dw)
    dweight = None if dweight_k is None else layer_weights(dweight_k, weight.shape)
    return dx, dweight, dbias
