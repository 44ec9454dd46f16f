"""Locally connected layer: every output position has its own kernel, no sharing at all.

    Y[o, i, j] = b[o, i, j] + sum_{c,u,v} K[o, i, j, c, u, v] Xp[c, i s + u, j s + v]
    dK[o, i, j, c, u, v] = sum_n dY[n, o, i, j] Xp[n, c, i s + u, j s + v],   db[o, i, j] = sum_n dY
    dXp[c, i s + u, j s + v] += sum_o K[o, i, j, c, u, v] dY[o, i, j]
It is the tiled convolution whose tile is the whole output: one GEMM (O x C kh kw times
C kh kw x N) per output position, batched.
"""
from .tiled_conv import tiled_conv2d_backward, tiled_conv2d_forward


def locally_connected2d_forward(x, weight, bias, stride, padding):
    """Y for weight (O, oh, ow, C, kh, kw) and bias (O, oh, ow) or None."""
    return tiled_conv2d_forward(x, weight, bias, stride, padding, weight.shape[1:3])


def locally_connected2d_backward(x, weight, dy, stride, padding, need_dx=True, need_dw=True):
    """(dx, dweight, dbias), dbias of shape (O, oh, ow)."""
    return tiled_conv2d_backward(x, weight, dy, stride, padding, need_dx, need_dw)
