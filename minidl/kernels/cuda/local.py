"""Locally connected layer on the GPU: the tiled convolution whose tile is the whole output
(formulas in ``kernels.cpu.local``)."""
from .tiled_conv import tiled_conv2d_backward, tiled_conv2d_forward


def locally_connected2d_forward(x, weight, bias, stride, padding):
    """Y for weight (O, oh, ow, C, kh, kw) and bias (O, oh, ow) or None."""
    return tiled_conv2d_forward(x, weight, bias, stride, padding, weight.shape[1:3])


def locally_connected2d_backward(x, weight, dy, stride, padding, need_dx=True, need_dw=True):
    """(dx, dweight, dbias), dbias of shape (O, oh, ow)."""
    return tiled_conv2d_backward(x, weight, dy, stride, padding, need_dx, need_dw)
