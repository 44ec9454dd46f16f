"""Convolution on the GPU as direct kernels, for every weight-sharing pattern at once.

Notation and formulas as ``kernels.cpu.conv`` (one image, kernel kh x kw, stride s, padding p,
dilation d, groups of C / groups input and O / groups output channels):
    Y[o, i, j] = b[o, i, j] + sum_{c,u,v} K_k[o, (c, u, v)] Xp[c, i s + u d, j s + v d]
with k = (i mod th) tw + (j mod tw) the tile class of output (i, j): a convolution has one
class (tile 1 x 1), a tiled convolution th tw classes, a locally connected layer one per output.
Weights arrive per class as ``weight_k`` (K, O, C / groups * kh * kw) and the bias in full
(O, oh, ow), as in the CPU engine. Each kernel gives one thread one element of its result, so
no two threads write the same place (no atomics):
    forward  one thread per Y[n, o, i, j]
    dX       one thread per X[n, c, h, w]: the (o, u, v) whose window covers (h, w),
             i = (h + p - u d) / s when that divides
    dK_k     one thread per K_k[o, (c, u, v)]: the sum over n and the outputs of class k
    db       a reduction of dY over n (then over i, j for shared biases)
Accumulators have the input's dtype (``zero`` fixes it), as the CPU's float32 GEMM.
"""
from ._runtime import kernel_builder
from .array import as_cuda, empty, full
from .elementwise import launch

cuda = None  # numba.cuda, bound by kernel_builder on first use


@kernel_builder
def _forward_kernel():
    @cuda.jit
    def kernel(total, x, weight_k, bias, y, n_batch, channels, height, width, n_out, oh, ow,
               kh, kw, sh, sw, ph, pw, dh, dw, th, tw, groups, zero):
        t = cuda.grid(1)
        step = cuda.gridsize(1)
        cg, og = channels // groups, n_out // groups
        while t < total:
            j = t % ow
            i = (t // ow) % oh
            o = (t // (ow * oh)) % n_out
            n = t // (ow * oh * n_out)
            k = (i % th) * tw + j % tw
            g = o // og
            acc = zero
            w_base = (k * n_out + o) * cg * kh * kw
            for c in range(cg):
                x_base = (n * channels + g * cg + c) * height
                for u in range(kh):
                    h = i * sh + u * dh - ph
                    if h < 0 or h >= height:
                        continue
                    for v in range(kw):
                        w = j * sw + v * dw - pw
                        if w < 0 or w >= width:
                            continue
                        acc += weight_k[w_base + (c * kh + u) * kw + v] * x[(x_base + h) * width + w]
            y[t] = acc + bias[(o * oh + i) * ow + j]
            t += step
    return kernel


@kernel_builder
def _input_grad_kernel():
    @cuda.jit
    def kernel(total, dy, weight_k, dx, n_batch, channels, height, width, n_out, oh, ow,
               kh, kw, sh, sw, ph, pw, dh, dw, th, tw, groups, zero):
        t = cuda.grid(1)
        step = cuda.gridsize(1)
        cg, og = channels // groups, n_out // groups
        while t < total:
            w = t % width
            h = (t // width) % height
            cin = (t // (width * height)) % channels
            n = t // (width * height * channels)
            g = cin // cg
            c = cin % cg
            acc = zero
            for o in range(g * og, (g + 1) * og):
                for u in range(kh):
                    top = h + ph - u * dh
                    if top < 0 or top % sh != 0:
                        continue
                    i = top // sh
                    if i >= oh:
                        continue
                    for v in range(kw):
                        left = w + pw - v * dw
                        if left < 0 or left % sw != 0:
                            continue
                        j = left // sw
                        if j >= ow:
                            continue
                        k = (i % th) * tw + j % tw
                        acc += (weight_k[((k * n_out + o) * cg + c) * kh * kw + u * kw + v]
                                * dy[((n * n_out + o) * oh + i) * ow + j])
            dx[t] = acc
            t += step
    return kernel


@kernel_builder
def _weight_grad_kernel():
    @cuda.jit
    def kernel(total, x, dy, dweight_k, n_batch, channels, height, width, n_out, oh, ow,
               kh, kw, sh, sw, ph, pw, dh, dw, th, tw, groups, zero):
        t = cuda.grid(1)
        step = cuda.gridsize(1)
        cg, og = channels // groups, n_out // groups
        while t < total:
            v = t % kw
            u = (t // kw) % kh
            c = (t // (kw * kh)) % cg
            o = (t // (kw * kh * cg)) % n_out
            k = t // (kw * kh * cg * n_out)
            a = k // tw
            b = k % tw
            cin = (o // og) * cg + c
            acc = zero
            for n in range(n_batch):
                for i in range(a, oh, th):
                    h = i * sh + u * dh - ph
                    if h < 0 or h >= height:
                        continue
                    for j in range(b, ow, tw):
                        w = j * sw + v * dw - pw
                        if w < 0 or w >= width:
                            continue
                        acc += (dy[((n * n_out + o) * oh + i) * ow + j]
                                * x[((n * channels + cin) * height + h) * width + w])
            dweight_k[t] = acc
            t += step
    return kernel


def _geometry(x, n_out, out_size, kernel, stride, padding, dilation, tile, groups):
    n_batch, channels, height, width = x.shape
    return (n_batch, channels, height, width, n_out, int(out_size[0]), int(out_size[1]),
            int(kernel[0]), int(kernel[1]), int(stride[0]), int(stride[1]), int(padding[0]),
            int(padding[1]), int(dilation[0]), int(dilation[1]), int(tile[0]), int(tile[1]),
            int(groups), x.dtype.type(0))


def shared_conv_forward(x, weight_k, bias, kernel, stride, padding, dilation, out_size, tile, groups=1):
    """Y for weights per class ``weight_k`` (K, O, C / groups * kh * kw) and a full bias (O, oh, ow)."""
    x, weight_k, bias = (as_cuda(a).ascontiguous() for a in (x, weight_k, bias))
    n_out = weight_k.shape[1]
    y = empty((x.shape[0], n_out) + tuple(out_size), x.dtype)
    geometry = _geometry(x, n_out, out_size, kernel, stride, padding, dilation, tile, groups)
    launch(_forward_kernel(), y.size, x.flat(), weight_k.astype(x.dtype, copy=False).flat(),
           bias.astype(x.dtype, copy=False).flat(), y.base, *geometry)
    return y


def shared_conv_backward(x, weight_k, dy, kernel, stride, padding, dilation, tile, groups=1,
                         need_dx=True, need_dw=True):
    """(dx, dweight_k, dbias_full), dbias_full[o, i, j] = sum_n dY[n, o, i, j]; dx / dweight_k are
    None when not needed."""
    x, weight_k, dy = (as_cuda(a).ascontiguous() for a in (x, weight_k, dy))
    n_out, out_size = dy.shape[1], dy.shape[2:]
    geometry = _geometry(x, n_out, out_size, kernel, stride, padding, dilation, tile, groups)
    dx = dweight_k = None
    if need_dx:
        dx = empty(x.shape, x.dtype)
        launch(_input_grad_kernel(), dx.size, dy.flat(), weight_k.flat(), dx.base, *geometry)
    if need_dw:
        dweight_k = empty(weight_k.shape, x.dtype)
        launch(_weight_grad_kernel(), dweight_k.size, x.flat(), dy.flat(), dweight_k.base, *geometry)
    return dx, dweight_k, dy.sum(axis=0)


def full_bias(bias, n_out, out_size, dtype):
    """A bias of shape (O,) or (O, oh, ow), or none, as one value per output position (O, oh, ow)."""
    shape = (n_out,) + tuple(out_size)
    if bias is None:
        return full(shape, 0, dtype)
    bias = as_cuda(bias)
    if bias.ndim == 1:
        bias = bias.reshape(-1, 1, 1)
    return bias.astype(dtype, copy=False).broadcast_to(shape).copy()


# ---------------------------------------------------------------- convolution (one class)

def conv2d_forward(x, weight, bias, stride, padding, dilation, groups, out_size):
    """Y = K * X + b; weight (O, C / groups, kh, kw), bias (O,) or None."""
    n_out, kernel = weight.shape[0], weight.shape[2:]
    bias_full = full_bias(bias, n_out, out_size, x.dtype)
    return shared_conv_forward(x, as_cuda(weight).reshape(1, n_out, -1), bias_full, kernel, stride,
                               padding, dilation, out_size, (1, 1), groups)


def conv2d_forward_and_weight_grad(x, weight, dy, stride, padding, dilation, groups, out_size):
    """(Y, dK): conv2d_forward without bias and conv2d_backward's weight gradient for ``dy``."""
    y = conv2d_forward(x, weight, None, stride, padding, dilation, groups, out_size)
    return y, conv2d_backward(x, weight, dy, stride, padding, dilation, groups, False, True)[1]


def conv2d_backward(x, weight, dy, stride, padding, dilation, groups, need_dx=True, need_dw=True):
    """(dx, dweight, dbias): dbias = sum_(n,i,j) dY."""
    n_out = weight.shape[0]
    dx, dweight_k, dbias = shared_conv_backward(
        x, as_cuda(weight).reshape(1, n_out, -1), dy, weight.shape[2:], stride, padding, dilation,
        (1, 1), groups, need_dx, need_dw)
    dweight = None if dweight_k is None else dweight_k.reshape(weight.shape)
    return dx, dweight, dbias.sum(axis=(1, 2))


def add_channel_bias(y, bias):
    """y[n, o] += b[o] in place for y of shape (N, O, H, W); returns y."""
    y += bias.reshape(-1, 1, 1)
    return y


def bias_grad(dy):
    """db[o] = sum_(n, i, j) dy[n, o, i, j]."""
    return dy.sum(axis=(0, 2, 3))
