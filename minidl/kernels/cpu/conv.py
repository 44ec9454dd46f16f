"""Convolution as unfold (im2col) + BLAS GEMM, for every weight-sharing pattern at once.

Notation (one image, C in and O out channels, kernel kh x kw, stride s, padding p, dilation d):
    Y[o, i, j] = b[o] + sum_{c,u,v} K[o, c, u, v] Xp[c, i s + u d, j s + v d]
Unfold the patches into columns X'[(c, u, v), (i, j)] = Xp[c, i s + u d, j s + v d]; then
    Y = K' X' + b,   dK' = dY X'^T,   db = sum_(i,j) dY,   dX' = K'^T dY,   dX = fold(dX')
where fold (col2im) adds each patch entry back into the input position it was copied from.

Tiled sharing (tile th x tw) puts output (i, j) in class k = (i mod th) tw + (j mod tw) and
uses kernel K_k there. The unfold writes the columns class by class, so class k's columns
form one contiguous (C kh kw) x width_k block and its outputs are one GEMM: Y_k = K'_k X'_k.
A locally connected layer has one class per output position (tile = output size). Columns
are ordered (class, n, i // th, j // tw), rows (c, u, v).

A plain convolution (one class, tile 1 x 1) with many output positions per image
(``IMAGE_MAJOR_POSITIONS``; fewer take the class order above, one GEMM for the whole batch)
orders the unfold image by image instead:
X'_n[(c, u, v), (i, j)], so Y_n = K' X'_n is image n's NCHW output as it stands, and one
batched GEMM writes Y with no reordering pass; dY is read in place the same way
(dK' = sum_n dY_n X'_n^T, dX'_n = K'^T dY_n).

Both run on the zero-padded input Xp (made once per call, when padding > 0): then every
patch lies inside the array, and each output row's columns are one strided copy, with no
bounds tests in the inner loops (3x faster than clipping each row at the padding).

The unfolded batch is big (38 MB for (64,16,32,32) with 3x3 kernels) and allocating it
fresh costs as much as filling it twice, so it lives in a reusable per-thread workspace. The
backward pass needs X' again: it unfolds anew instead of keeping a copy, unless the workspace
still holds this very input's unfold (the backward of the last forward convolution), and then
overwrites it with dX'.
"""
import threading

import numpy as np
from numba import njit

from . import tasks

_workspaces = threading.local()


def workspace(name, size, dtype):
    """A flat scratch array of ``size`` elements, reused across calls (grown when too small).
    One per (name, dtype) and thread; its contents are garbage on entry."""
    buffers = _workspaces.__dict__.setdefault("buffers", {})
    key = (name, np.dtype(dtype))
    buffer = buffers.get(key)
    if buffer is None or buffer.size < size:
        buffer = buffers[key] = np.empty(size, dtype=dtype)
        _contents().pop(key, None)
    return buffer[:size]


def _contents():
    """What a workspace is known to hold: (name, dtype) -> (array unfolded, geometry)."""
    return _workspaces.__dict__.setdefault("contents", {})


def unfolded(x, n_rows, layout, geometry, reuse):
    """The "cols" workspace holding unfold(x). With ``reuse`` the fill is skipped when the last
    unfold into it was of this same array (held, so its id cannot be reused) and geometry."""
    key = ("cols", np.dtype(x.dtype))
    cols = workspace("cols", n_rows * layout.total, x.dtype)
    held = _contents().get(key)
    shape = tuple(v for v in geometry if not isinstance(v, np.ndarray))  # the arrays follow from it
    if not (reuse and held is not None and held[0] is x and held[1] == shape):
        kh, kw, sh, sw, ph, pw, dh, dw = geometry[:8]
        unfold(padded(x, ph, pw), cols, kh, kw, sh, sw, dh, dw, *geometry[10:])
        _contents()[key] = (x, shape)
    return cols


def columns_to_overwrite(size, dtype):
    """The "cols" workspace for dX' (its unfold, if any, is forgotten)."""
    _contents().pop(("cols", np.dtype(dtype)), None)
    return workspace("cols", size, dtype)


def padded(x, ph, pw):
    """Xp: x with ph zero rows above and below and pw zero columns left and right (x itself
    when there is no padding)."""
    if ph == 0 and pw == 0:
        return x
    n_batch, channels, height, width = x.shape
    xp = np.empty((n_batch, channels, height + 2 * ph, width + 2 * pw), dtype=x.dtype)
    _pad(x, xp, ph, pw)
    return xp


def _pad(x, xp, ph, pw):
    tasks.run(_pad_tasks, x.shape[0] * x.shape[1], x, xp, ph, pw, work=x.size + xp.size)


@njit(cache=True, nogil=True)
def _pad_tasks(share, first, last, x, xp, ph, pw):
    n_batch, channels, height, width = x.shape
    for task in range(first, last):
        n, c = task // channels, task % channels
        plane, source = xp[n, c], x[n, c]
        plane[:ph] = 0.0
        plane[ph + height:] = 0.0
        for h in range(height):
            row, src = plane[ph + h], source[h]
            row[:pw] = 0.0
            row[pw + width:] = 0.0
            inside = row[pw:]
            for j in range(width):
                inside[j] = src[j]


def _crop(xp, x, ph, pw):
    """The adjoint's last step: x = Xp without its padding."""
    tasks.run(_crop_tasks, x.shape[0] * x.shape[1], xp, x, ph, pw, work=x.size * 2)


@njit(cache=True, nogil=True)
def _crop_tasks(share, first, last, xp, x, ph, pw):
    n_batch, channels, height, width = x.shape
    for task in range(first, last):
        n, c = task // channels, task % channels
        for h in range(height):
            row, src = x[n, c, h], xp[n, c, ph + h, pw:]
            for j in range(width):
                row[j] = src[j]


class Layout:
    """Where each output position's column lives: class sizes and offsets for a tile. Block
    (row r, image n) of class k starts at rows * starts[k] + (r row_step + n image_step) per_image
    (per_image: the class's positions in one image); ``image_major`` (tile 1 x 1 only) puts
    image n's rows together."""

    def __init__(self, batch, out_h, out_w, tile_h, tile_w, image_major=False, rows=None):
        self.tile = (tile_h, tile_w)
        if image_major and (tile_h, tile_w) != (1, 1):
            raise ValueError("Layout: image-major columns need a single class (tile 1 x 1)")
        self.row_step, self.image_step = (1, rows) if image_major else (batch, 1)
        self.rows_per_class = np.array([(out_h - a + tile_h - 1) // tile_h for a in range(tile_h)],
                                       dtype=np.int64)
        self.cols_per_class = np.array([(out_w - b + tile_w - 1) // tile_w for b in range(tile_w)],
                                       dtype=np.int64)
        widths = batch * np.outer(self.rows_per_class, self.cols_per_class).reshape(-1)
        self.widths = widths
        self.starts = np.concatenate(([0], np.cumsum(widths)[:-1])).astype(np.int64)
        self.total = int(widths.sum())
        self.uniform = bool((widths == widths[0]).all())

    def blocks(self, flat, rows):
        """The per-class (rows, width_k) matrices inside a flat buffer laid out by this layout."""
        if self.uniform:
            return flat.reshape(len(self.widths), rows, self.widths[0])
        return [flat[rows * s: rows * (s + w)].reshape(rows, w) for s, w in zip(self.starts, self.widths)]


# The loops below index views with counters that start at 0 (``for jj in range(n)``): numba
# then knows the index is not negative, skips its wraparound check, and the copy vectorises
# (about 3x faster than indexing the whole array at base + jj).

def unfold(xp, out, kh, kw, sh, sw, dh, dw, th, tw, rows_per_class, cols_per_class, starts, row_step,
           image_step):
    """im2col: out[block k][(c, u, v), (n, i // th, j // tw)] = Xp[n, c, i sh + u dh, j sw + v dw]
    (blocks placed as ``Layout`` says). One task per (row (c, u, v), image n)."""
    tasks.run(_unfold_tasks, xp.shape[0] * xp.shape[1] * kh * kw, xp, out, kh, kw, sh, sw, dh, dw, th, tw,
              rows_per_class, cols_per_class, starts, row_step, image_step, work=xp.size + out.size)


@njit(cache=True, nogil=True)
def _unfold_tasks(share, first, last, xp, out, kh, kw, sh, sw, dh, dw, th, tw, rows_per_class, cols_per_class,
                  starts, row_step, image_step):
    n_batch, channels, height, width = xp.shape
    planes = xp.reshape(n_batch * channels, height * width)
    n_rows = channels * kh * kw
    step = tw * sw
    for task in range(first, last):
        r, n = task // n_batch, task % n_batch
        c, u, v = r // (kh * kw), (r // kw) % kh, r % kw
        plane = planes[n * channels + c]
        for b in range(tw):
            count = cols_per_class[b]
            for a in range(th):  # the outputs i = ii th + a of class (a, b): one block
                per_image = rows_per_class[a] * count
                block = out[n_rows * starts[a * tw + b] + (r * row_step + n * image_step) * per_image:][:per_image]
                for ii in range(rows_per_class[a]):
                    dst = block[ii * count:]
                    src = plane[((ii * th + a) * sh + u * dh) * width + b * sw + v * dw:]
                    if step == 1:
                        for jj in range(count):
                            dst[jj] = src[jj]
                    else:
                        for jj in range(count):
                            dst[jj] = src[jj * step]


def fold(cols, dxp, kh, kw, sh, sw, dh, dw, th, tw, rows_per_class, cols_per_class, starts, row_step,
         image_step):
    """col2im, the adjoint of ``unfold``: dXp[n, c, h, w] = sum of the column entries copied
    from (h, w). One task per (n, c) plane, so no two tasks write the same element."""
    tasks.run(_fold_tasks, dxp.shape[0] * dxp.shape[1], cols, dxp, kh, kw, sh, sw, dh, dw, th, tw, rows_per_class,
              cols_per_class, starts, row_step, image_step, work=cols.size + dxp.size)


@njit(cache=True, nogil=True)
def _fold_tasks(share, first, last, cols, dxp, kh, kw, sh, sw, dh, dw, th, tw, rows_per_class, cols_per_class,
                starts, row_step, image_step):
    n_batch, channels, height, width = dxp.shape
    planes = dxp.reshape(n_batch * channels, height * width)
    n_rows = channels * kh * kw
    step = tw * sw
    for task in range(first, last):
        n, c = task // channels, task % channels
        plane = planes[task]
        plane[:] = 0.0
        for u in range(kh):
            for v in range(kw):
                r = (c * kh + u) * kw + v
                for b in range(tw):
                    count = cols_per_class[b]
                    for a in range(th):
                        per_image = rows_per_class[a] * count
                        block = cols[n_rows * starts[a * tw + b]
                                     + (r * row_step + n * image_step) * per_image:][:per_image]
                        for ii in range(rows_per_class[a]):
                            src = block[ii * count:]
                            dst = plane[((ii * th + a) * sh + u * dh) * width + b * sw + v * dw:]
                            if step == 1:
                                for jj in range(count):
                                    dst[jj] += src[jj]
                            else:
                                for jj in range(count):
                                    dst[jj * step] += src[jj]


def scatter_output(y_cols, bias, y, th, tw, rows_per_class, cols_per_class, starts):
    """y[n, o, i, j] = Y_k[o, (n, i // th, j // tw)] + bias[o, i, j] (class-ordered to NCHW)."""
    tasks.run(_scatter_output_tasks, y.shape[0] * y.shape[1], y_cols, bias, y, th, tw, rows_per_class,
              cols_per_class, starts, work=y.size * 2)


@njit(cache=True, nogil=True)
def _scatter_output_tasks(share, first, last, y_cols, bias, y, th, tw, rows_per_class, cols_per_class, starts):
    n_batch, n_out, oh = y.shape[:3]
    for task in range(first, last):
        n, o = task // n_out, task % n_out
        a, ii = 0, 0  # i = ii th + a
        for i in range(oh):
            for b in range(tw):
                count = cols_per_class[b]
                per_image = rows_per_class[a] * count
                base = n_out * starts[a * tw + b] + (o * n_batch + n) * per_image + ii * count
                src = y_cols[base:base + count]
                dst = y[n, o, i, b:]
                shift = bias[o, i, b:]
                for jj in range(count):
                    dst[jj * tw] = src[jj] + shift[jj * tw]
            a += 1
            if a == th:
                a, ii = 0, ii + 1


def gather_grad(dy, dy_cols, dbias, th, tw, rows_per_class, cols_per_class, starts):
    """The adjoint of ``scatter_output``: dY_k in class order, and dbias[o, i, j] = sum_n dy.
    One task per output channel o: it alone writes dY_k[o] and dbias[o]."""
    tasks.run(_gather_grad_tasks, dy.shape[1], dy, dy_cols, dbias, th, tw, rows_per_class, cols_per_class,
              starts, work=dy.size * 2)


@njit(cache=True, nogil=True)
def _gather_grad_tasks(share, first, last, dy, dy_cols, dbias, th, tw, rows_per_class, cols_per_class, starts):
    n_batch, n_out, oh = dy.shape[:3]
    for o in range(first, last):
        dbias[o] = 0.0
        for n in range(n_batch):
            a, ii = 0, 0  # i = ii th + a
            for i in range(oh):
                for b in range(tw):
                    count = cols_per_class[b]
                    per_image = rows_per_class[a] * count
                    base = n_out * starts[a * tw + b] + (o * n_batch + n) * per_image + ii * count
                    dst = dy_cols[base:base + count]
                    src = dy[n, o, i, b:]
                    total = dbias[o, i, b:]
                    for jj in range(count):
                        g = src[jj * tw]
                        dst[jj] = g
                        total[jj * tw] += g
                a += 1
                if a == th:
                    a, ii = 0, ii + 1


def _geometry(kernel, stride, padding, dilation, out_size, layout):
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    th, tw = layout.tile
    return (kh, kw, sh, sw, ph, pw, dh, dw, out_size[0], out_size[1], th, tw,
            layout.rows_per_class, layout.cols_per_class, layout.starts, layout.row_step, layout.image_step)


def shared_conv_forward(x, weight_k, bias, kernel, stride, padding, dilation, out_size, tile, groups=1):
    """Y for weights per class ``weight_k`` (K, O, C / groups * kh * kw) and a full bias
    (O, oh, ow). x is C-contiguous NCHW; the output has x's dtype."""
    n_batch, channels = x.shape[:2]
    n_out = weight_k.shape[1]
    layout = Layout(n_batch, out_size[0], out_size[1], *tile)
    geometry = _geometry(kernel, stride, padding, dilation, out_size, layout)
    n_rows = channels * kernel[0] * kernel[1]
    cols = unfolded(x, n_rows, layout, geometry, reuse=False)  # x may have changed in place
    y_cols = workspace("out", n_out * layout.total, x.dtype)
    _grouped_matmul(weight_k, layout.blocks(cols, n_rows), layout.blocks(y_cols, n_out), groups)
    y = np.empty((n_batch, n_out) + tuple(out_size), dtype=x.dtype)
    scatter_output(y_cols, bias, y, *geometry[10:15])
    return y


def shared_conv_backward(x, weight_k, dy, kernel, stride, padding, dilation, tile, groups=1,
                         need_dx=True, need_dw=True):
    """(dx, dweight_k, dbias_full): dK'_k = dY_k X'_k^T, dX = fold(K'_k^T dY_k), dbias = sum_n dY.
    dx / dweight_k are None when not needed (the first layer's input needs no gradient)."""
    n_batch, channels = x.shape[:2]
    n_out, out_size = dy.shape[1], dy.shape[2:]
    layout = Layout(n_batch, out_size[0], out_size[1], *tile)
    geometry = _geometry(kernel, stride, padding, dilation, out_size, layout)
    n_rows = channels * kernel[0] * kernel[1]
    dy_cols = workspace("out", n_out * layout.total, x.dtype)
    dbias = np.empty(dy.shape[1:], dtype=x.dtype)
    gather_grad(dy, dy_cols, dbias, *geometry[10:15])
    dy_blocks = layout.blocks(dy_cols, n_out)
    cols = (unfolded(x, n_rows, layout, geometry, reuse=True) if need_dw
            else columns_to_overwrite(n_rows * layout.total, x.dtype))
    col_blocks = layout.blocks(cols, n_rows)
    dweight_k = dx = None
    if need_dw:
        dweight_k = np.empty_like(weight_k)
        _grouped_weight_grad(dy_blocks, col_blocks, dweight_k, groups)
    if need_dx:
        columns_to_overwrite(cols.size, x.dtype)  # the unfold is used up
        _grouped_input_grad(weight_k, dy_blocks, col_blocks, groups)  # overwrites the columns
        dx = folded(cols, x, geometry)
    return dx, dweight_k, dbias


def folded(cols, x, geometry):
    """dX = fold(dX'), the columns laid out as ``geometry`` says, shaped and typed like x."""
    kh, kw, sh, sw, ph, pw, dh, dw = geometry[:8]
    n_batch, channels, height, width = x.shape
    dx = np.empty_like(x)
    dxp = dx if ph == 0 and pw == 0 else np.empty(
        (n_batch, channels, height + 2 * ph, width + 2 * pw), dtype=x.dtype)
    fold(cols, dxp, kh, kw, sh, sw, dh, dw, *geometry[10:])
    if dxp is not dx:
        _crop(dxp, dx, ph, pw)
    return dx


def _group_slices(n_out, n_rows, groups):
    og, rg = n_out // groups, n_rows // groups
    return [(slice(g * og, (g + 1) * og), slice(g * rg, (g + 1) * rg)) for g in range(groups)]


def _pairs(weight_k, *blocks):
    """(class index, per-class blocks...) for uniform (3-d arrays: one batched matmul) or not."""
    if isinstance(blocks[0], np.ndarray):
        return [(slice(None),) + tuple(blocks)]
    return [(k,) + tuple(b[k] for b in blocks) for k in range(len(weight_k))]


def _grouped_matmul(weight_k, col_blocks, y_blocks, groups):
    """Y_k[group rows] = K'_k[group] X'_k[group rows]."""
    n_out, n_rows = weight_k.shape[1], weight_k.shape[2] * groups
    for k, cols, y in _pairs(weight_k, col_blocks, y_blocks):
        for out_rows, in_rows in _group_slices(n_out, n_rows, groups):
            np.matmul(weight_k[k][..., out_rows, :], cols[..., in_rows, :], out=y[..., out_rows, :])


def weight_grad_product(grad, cols, out=None):
    """grad cols^T over the last two axes (dK' = dY X'^T: O x R from O x P and R x P). OpenBLAS
    runs it up to 2x faster with the longer of O and R as the rows of its output, so for O < R
    it computes (X' dY^T)^T (2 cores: 16 x 150 over 25,600 positions 2.7 -> 1.3 ms, 64 images
    of 32 x 144 over 1,024 9.5 -> 5.7 ms; 64 x 32 the other way round lost 2.2 -> 4.2 ms)."""
    if grad.shape[-2] >= cols.shape[-2]:
        return np.matmul(grad, np.swapaxes(cols, -1, -2), out=out)
    product = np.swapaxes(np.matmul(cols, np.swapaxes(grad, -1, -2)), -1, -2)
    if out is None:
        return product
    out[...] = product
    return out


def _grouped_weight_grad(dy_blocks, col_blocks, dweight_k, groups):
    """dK'_k[group] = dY_k[group rows] X'_k[group rows]^T."""
    n_out, n_rows = dweight_k.shape[1], dweight_k.shape[2] * groups
    for k, dy, cols in _pairs(dweight_k, dy_blocks, col_blocks):
        for out_rows, in_rows in _group_slices(n_out, n_rows, groups):
            weight_grad_product(dy[..., out_rows, :], cols[..., in_rows, :], out=dweight_k[k][..., out_rows, :])


def _grouped_input_grad(weight_k, dy_blocks, col_blocks, groups):
    """dX'_k[group rows] = K'_k[group]^T dY_k[group rows], written over the columns."""
    n_out, n_rows = weight_k.shape[1], weight_k.shape[2] * groups
    for k, dy, cols in _pairs(weight_k, dy_blocks, col_blocks):
        for out_rows, in_rows in _group_slices(n_out, n_rows, groups):
            np.matmul(np.swapaxes(weight_k[k][..., out_rows, :], -1, -2), dy[..., out_rows, :],
                      out=cols[..., in_rows, :])


# ---------------------------------------------------------------- convolution (one class)

def _algorithm(weight_shape, stride, padding, dilation, groups, out_size):
    """How conv2d computes this shape: 3x3 stride-1 convolutions with >= 128 channels and outputs
    of 14x14 or more by Winograd F(2x2 or 4x4, 3x3) ("winograd", winograd.chosen); stride-1
    layers of at most a few hundred weights by the per-row loops of direct_conv ("direct",
    direct_conv.chosen; those register_conv supports only below its MIN_OUTPUTS outputs); other
    layers with fewer channels, 3x3 with padding 0 or 1, by register_conv's tiles in float32 and
    direct_conv's blocked loops otherwise ("direct 3x3", direct_conv.chosen_3x3), other layers
    register_conv supports (5x5, stride 2) by its tiles in float32 ("register tiles"; im2col
    otherwise);
    every other shape (other layers with >= 128 channels too: on small planes GEMMs beat both
    other paths) by im2col, in chunks of images where ``chunked`` says ("im2col chunks"), else
    over the whole batch; all of them by the reference whole-batch im2col under
    MINIDL_CONV_ALGORITHM=im2col."""
    if winograd.chosen(weight_shape, stride, padding, dilation, groups, out_size):
        return "winograd"
    if winograd.ALGORITHM == "im2col":
        return "im2col"
    if not winograd.wide(weight_shape):
        tiled = register_conv.supported(weight_shape, stride, padding, dilation, groups)
        if direct_conv.chosen(weight_shape, stride, groups) and not (
                tiled and weight_shape[0] >= register_conv.MIN_OUTPUTS):
            return "direct"
        if direct_conv.chosen_3x3(weight_shape, stride, padding, dilation, groups, out_size):
            return "direct 3x3"
        if tiled:
            return "register tiles"
    return "im2col chunks" if chunked(weight_shape, groups) else "im2col"


def _algorithm_for(x, weight, stride, padding, dilation, groups, out_size):
    """``_algorithm`` for these arrays: float32 takes register_conv's tiles where it says so
    ("register tiles" in other dtypes is im2col)."""
    algorithm = _algorithm(weight.shape, stride, padding, dilation, groups, out_size)
    if algorithm in ("direct 3x3", "register tiles") and x.dtype == np.float32:
        return "register tiles"
    if algorithm == "register tiles":
        return "im2col chunks" if chunked(weight.shape, groups) else "im2col"
    return algorithm


def _winograd_tiles(weight_shape, stride, out_size, backward=False):
    """Whether register_conv's correlation of weight_shape[1] planes into weight_shape[0] (the
    forward pass and dK; dX's is (C, O)) runs on the Winograd tiles: 3x3, stride 1, and where
    ``register_winograd.chosen`` says."""
    return (tuple(weight_shape[2:]) == (3, 3) and tuple(stride) == (1, 1)
            and register_winograd.chosen(weight_shape[1], weight_shape[0], out_size, backward))


def conv2d_forward(x, weight, bias, stride, padding, dilation, groups, out_size):
    """Y_n = K' X'_n + b per group and image n; weight (O, C / groups, kh, kw), bias (O,) or None."""
    algorithm = _algorithm_for(x, weight, stride, padding, dilation, groups, out_size)
    if algorithm == "register tiles":
        return register_conv.conv2d_forward(x, weight, bias, stride, padding,
                                            _winograd_tiles(weight.shape, stride, out_size))
    if algorithm == "winograd":
        return winograd.conv2d_forward(x, weight, bias, padding, out_size)
    if algorithm == "im2col chunks":
        return chunked_conv_forward(x, weight, bias, stride, padding, dilation, out_size)
    if algorithm == "direct":
        return direct_conv.conv2d_forward(x, weight, bias, padding, dilation, out_size)
    if algorithm == "direct 3x3":
        return direct_conv.conv3x3_forward(x, weight, bias, padding)
    n_batch, channels = x.shape[:2]
    n_out, kernel = weight.shape[0], weight.shape[2:]
    if not _image_major(out_size):  # one GEMM over the whole batch: the shared path with one class
        return shared_conv_forward(x, weight.reshape(1, n_out, -1), full_bias(bias, n_out, out_size, x.dtype),
                                   kernel, stride, padding, dilation, out_size, (1, 1), groups)
    n_rows = channels * kernel[0] * kernel[1]
    layout = Layout(n_batch, out_size[0], out_size[1], 1, 1, image_major=True, rows=n_rows)
    geometry = _geometry(kernel, stride, padding, dilation, out_size, layout)
    cols = unfolded(x, n_rows, layout, geometry, reuse=False).reshape(n_batch, n_rows, -1)
    y = np.empty((n_batch, n_out, cols.shape[2]), dtype=x.dtype)
    weight_2d = weight.reshape(n_out, -1)
    for out_rows, in_rows in _group_slices(n_out, n_rows, groups):
        np.matmul(weight_2d[out_rows], cols[:, in_rows], out=y[:, out_rows])
    if bias is not None:
        add_channel_bias(y, bias)
    return y.reshape((n_batch, n_out) + tuple(out_size))


def conv2d_forward_and_weight_grad(x, weight, dy, stride, padding, dilation, groups, out_size):
    """(Y, dK): conv2d_forward without bias and conv2d_backward's weight gradient for ``dy``, from
    one unfold of x where the layer runs in chunked im2col (a transposed convolution's backward:
    dX = conv(dY), dK from unfold(dY)), else by the two calls."""
    if _algorithm(weight.shape, stride, padding, dilation, groups, out_size) == "im2col chunks":
        return chunked_conv_forward(x, weight, None, stride, padding, dilation, out_size, dy)
    y = conv2d_forward(x, weight, None, stride, padding, dilation, groups, out_size)
    return y, conv2d_backward(x, weight, dy, stride, padding, dilation, groups, False, True)[1]


def conv2d_backward(x, weight, dy, stride, padding, dilation, groups, need_dx=True, need_dw=True):
    """(dx, dweight, dbias): dK' = sum_n dY_n X'_n^T, dX = fold(K'^T dY_n), db = sum_(n,i,j) dY."""
    n_batch, channels = x.shape[:2]
    n_out, kernel, out_size = weight.shape[0], weight.shape[2:], dy.shape[2:]
    algorithm = _algorithm_for(x, weight, stride, padding, dilation, groups, out_size)
    if algorithm == "register tiles":  # dX is the correlation of O planes into C
        dx_shape = (channels, n_out) + tuple(kernel)
        return register_conv.conv2d_backward(x, weight, dy, stride, padding, need_dx, need_dw,
                                             _winograd_tiles(dx_shape, stride, x.shape[2:], True),
                                             _winograd_tiles(weight.shape, stride, out_size, True))
    if algorithm == "winograd":
        dx, dweight = winograd.conv2d_backward(x, weight, dy, padding, need_dx, need_dw)
        return dx, dweight, bias_grad(dy)
    if algorithm == "im2col chunks":
        return chunked_conv_backward(x, weight, dy, stride, padding, dilation, need_dx, need_dw) + (
            bias_grad(dy),)
    if algorithm == "direct":
        return direct_conv.conv2d_backward(x, weight, dy, padding, dilation, need_dx, need_dw)
    if algorithm == "direct 3x3":
        return direct_conv.conv3x3_backward(x, weight, dy, padding, need_dx, need_dw)
    dbias = bias_grad(dy)
    if not _image_major(out_size):
        dx, dweight, _ = shared_conv_backward(x, weight.reshape(1, n_out, -1), dy, kernel, stride, padding,
                                              dilation, (1, 1), groups, need_dx, need_dw)
        return dx, (None if dweight is None else dweight.reshape(weight.shape)), dbias
    n_rows = channels * kernel[0] * kernel[1]
    layout = Layout(n_batch, out_size[0], out_size[1], 1, 1, image_major=True, rows=n_rows)
    geometry = _geometry(kernel, stride, padding, dilation, out_size, layout)
    dy = dy.reshape(n_batch, n_out, -1)
    dweight = dx = None
    weight_2d = weight.reshape(n_out, -1)
    if need_dw:
        cols = unfolded(x, n_rows, layout, geometry, reuse=True).reshape(n_batch, n_rows, -1)
        dweight = np.empty_like(weight_2d)
        for out_rows, in_rows in _group_slices(n_out, n_rows, groups):
            per_image = weight_grad_product(dy[:, out_rows], cols[:, in_rows])
            np.sum(per_image, axis=0, out=dweight[out_rows])
        dweight = dweight.reshape(weight.shape)
    if need_dx:
        cols = columns_to_overwrite(n_rows * layout.total, x.dtype).reshape(n_batch, n_rows, -1)
        for out_rows, in_rows in _group_slices(n_out, n_rows, groups):
            np.matmul(weight_2d[out_rows].T, dy[:, out_rows], out=cols[:, in_rows])
        dx = folded(cols.reshape(-1), x, geometry)
    return dx, dweight, dbias


#: fewest output positions per image for image-major columns (one GEMM per image, written in
#: NCHW as it stands); below it, one GEMM over the whole batch and a reorder measured faster:
#: LeNet's 6->16 5x5 conv (10x10 outputs) at batch 256, backward 12.4 -> 8.8 ms, and a whole
#: LeNet step 27.5 -> 22.0 ms (batch 64: 10.8 -> 10.0; medians, 2 cores). Between 196 and 1024
#: positions the two measured within noise of each other.
IMAGE_MAJOR_POSITIONS = 256


def _image_major(out_size):
    return out_size[0] * out_size[1] >= IMAGE_MAJOR_POSITIONS


def add_channel_bias(y, bias):
    """y[n, o] += b[o] in place for C-contiguous y of shape (N, O, ...); returns y."""
    tasks.run(_add_channel_bias_tasks, y.shape[0] * y.shape[1], _rows_of_channels(y), bias, work=y.size * 2)
    return y


def _rows_of_channels(a):
    """(N, O, ...) -> (N, O, L) (a view of contiguous a)."""
    return a.reshape(a.shape[0], a.shape[1], int(np.prod(a.shape[2:])))


@njit(cache=True, nogil=True)
def _add_channel_bias_tasks(share, first, last, y, bias):
    n_batch, n_out, length = y.shape
    for task in range(first, last):
        row, shift = y[task // n_out, task % n_out], bias[task % n_out]
        for k in range(length):
            row[k] += shift


def bias_grad(dy):
    """db[o] = sum_(n, ...) dy[n, o, ...] for C-contiguous dy of shape (N, O, ...), added in float64."""
    sums = np.empty(dy.shape[1], dtype=dy.dtype)
    tasks.run(_bias_grad_tasks, dy.shape[1], _rows_of_channels(dy), sums, work=dy.size)
    return sums


@njit(cache=True, nogil=True)
def _bias_grad_tasks(share, first, last, dy, sums):
    n_batch, n_out, length = dy.shape
    lanes = np.empty(length)  # one running sum per position: a loop that vectorises
    for o in range(first, last):
        lanes[:] = 0.0
        for n in range(n_batch):
            row = dy[n, o]
            for k in range(length):
                lanes[k] += row[k]
        sums[o] = lanes.sum()


def full_bias(bias, n_out, out_size, dtype):
    """A bias of shape (O,) or (O, oh, ow), or none, as one value per output position (O, oh, ow)."""
    shape = (n_out,) + tuple(out_size)
    if bias is None:
        return np.zeros(shape, dtype=dtype)
    if bias.ndim == 1:
        bias = bias[:, None, None]
    return np.ascontiguousarray(np.broadcast_to(bias, shape), dtype=dtype)


# ---------------------------------------------------------------- im2col in chunks of images
# A plain convolution (one group) that takes im2col runs in shares of the batch, each share a
# chunk of images at a time: the chunk's columns (CHUNK_FLOATS at most, so that they stay in
# L2), its GEMMs on a single-threaded BLAS (np.dot inside the kernel, tasks.run_calling_blas)
# and its outputs written in NCHW, instead of unfolding the whole batch to memory for one GEMM
# that reads it back. For LeNet's 6->16 5x5 convolution at batch 256 the whole-batch columns
# are 15 MB, and dX' = K'^T dY, with 16 multiply-adds per element written, runs at the speed of
# memory: forward 4.7 -> 1.7 ms, backward 5.9 -> 3.6 ms, and a LeNet training step at batch 256
# 13.4-16 -> 11 ms (2 cores). Strided 32->16 3x3 at batch 64: 1.7 -> 1.1 and 3.0 -> 2.2 ms; 64->64
# 3x3 on 8x8 planes: 3.3 -> 2.9 and 6.6 -> 5.4 ms; 1x1 16->32 on 32x32: 1.5 -> 1.0 and 3.2 -> 2.3 ms.

# A strided convolution reads every sw-th column of the padded input: as a gather, the stride-2
# unfold of a 16-wide output row took 3.5 times as long per element as a stride-1 one (32 against
# 9 us for one image of a 16 -> 32 3x3 layer at 16x16). So the chunked path keeps the padded
# input's columns in sw phases (``padded_phases``): padded column w at (w % sw) P + w // sw,
# P = ceil(Wp / sw) columns per phase. Column j sw + v dw of a tap v is then
#     (v dw % sw) P + v dw // sw + j,
# contiguous in j: the unfold copies and the fold adds whole runs, and only the padding pass
# (and the fold's copy back to dX) moves columns one at a time, once per element.

CHUNK_FLOATS = 1 << 16  # floats of columns per chunk: 256 KB in float32
#: most weights (O C kh kw) for the chunked path: each share keeps a float64 partial dK' (16 MB
#: over 8 shares at the limit); bigger layers unfold the whole batch (no partial sums).
CHUNKED_MAX_WEIGHTS = 1 << 18


def chunked(weight_shape, groups):
    """Whether im2col runs in chunks of images: one group, at most CHUNKED_MAX_WEIGHTS weights."""
    return groups == 1 and int(np.prod(weight_shape)) <= CHUNKED_MAX_WEIGHTS



def chunked_conv_forward(x, weight, bias, stride, padding, dilation, out_size, dy=None):
    """Y_n = K' X'_n + b for one group, image chunk by image chunk; bias (O,) or None. With
    ``dy`` (shaped as Y) also dK' = sum_n dY_n X'_n^T from the same columns (float64 partial
    sums per share): returns (Y, dK), for a transposed convolution's backward, whose dX and dK
    both unfold its dY (``conv2d_forward_and_weight_grad``)."""
    n_out, kernel = weight.shape[0], weight.shape[2:]
    y = np.empty((x.shape[0], n_out) + tuple(out_size), dtype=x.dtype)
    shift = np.zeros(n_out, dtype=x.dtype) if bias is None else bias
    balance = direct_conv.balanced(x.shape, weight.shape, out_size)
    dweight_parts = _weight_grad_parts(x.shape[0], weight, balance, dy is not None)
    tasks.run_calling_blas(_forward_chunks, x.shape[0], padded_phases(x, *padding, stride[1]),
                           _phase_width(x, padding[1], stride[1]), weight.reshape(n_out, -1), shift,
                           *kernel, *stride, *dilation, _chunk(weight, out_size), y,
                           y if dy is None else dy, dweight_parts, balance=balance)
    return y if dy is None else (y, _weight_grad_total(dweight_parts, weight, x.dtype))


def chunked_conv_backward(x, weight, dy, stride, padding, dilation, need_dx=True, need_dw=True):
    """(dx, dweight) for one group, image chunk by image chunk (None where not needed):
    dK' = sum_n dY_n X'_n^T (float64 partial sums per share, added in share order) and
    dX_n = fold(K'^T dY_n)."""
    n_out, kernel, out_size = weight.shape[0], weight.shape[2:], dy.shape[2:]
    balance = direct_conv.balanced(x.shape, weight.shape, out_size)
    dweight_parts = _weight_grad_parts(x.shape[0], weight, balance, need_dw)
    dx = np.empty_like(x)
    xq = padded_phases(x, *padding, stride[1]) if need_dw else x  # dK' reads it, dX does not
    tasks.run_calling_blas(_backward_chunks, x.shape[0], x, xq, _phase_width(x, padding[1], stride[1]),
                           np.ascontiguousarray(weight.reshape(n_out, -1).T), dy, *kernel, *stride, *padding,
                           *dilation, _chunk(weight, out_size), need_dx, need_dw, dx, dweight_parts,
                           balance=balance)
    dweight = _weight_grad_total(dweight_parts, weight, x.dtype) if need_dw else None
    return (dx if need_dx else None), dweight


def _weight_grad_parts(n_images, weight, balance, needed):
    """Zeroed float64 partial dK' per share of ``n_images``, (shares, O, C kh kw); (shares, 0, 0)
    when not ``needed`` (the chunk kernels then skip dK')."""
    parts = (weight.shape[0], weight[0].size) if needed else (0, 0)
    return np.zeros((tasks.shares_calling_blas(n_images, balance),) + parts)


def _weight_grad_total(dweight_parts, weight, dtype):
    """dK: the shares' parts added in share order, in ``dtype`` and the weight's shape."""
    return dweight_parts.sum(axis=0).astype(dtype).reshape(weight.shape)


def _phase_width(x, pw, sw):
    """P: columns per phase of x's padded rows (Wp = W + 2 pw of them) in sw phases."""
    return -(-(x.shape[3] + 2 * pw) // sw)


def padded_phases(x, ph, pw, sw):
    """Xq: x padded as ``padded`` does, each row's Wp columns in sw phases of P = _phase_width
    (the comment above; the columns past Wp are 0); for sw = 1 that is ``padded(x, ph, pw)``."""
    if sw == 1:
        return padded(x, ph, pw)
    phase_width = _phase_width(x, pw, sw)
    n_batch, channels, height = x.shape[:3]
    xq = np.empty((n_batch, channels, height + 2 * ph, sw * phase_width), dtype=x.dtype)
    tasks.run(_pad_phases_tasks, n_batch * channels, x, xq, ph, pw, sw, phase_width, work=x.size + xq.size)
    return xq


@njit(cache=True, nogil=True)
def _pad_phases_tasks(share, first, last, x, xq, ph, pw, sw, phase_width):
    channels, height = x.shape[1:3]
    for task in range(first, last):
        plane, source = xq[task // channels, task % channels], x[task // channels, task % channels]
        plane[:] = 0.0
        for h in range(height):
            _copy_phases(plane[ph + h], source[h], pw, sw, phase_width, True)


@njit(cache=True, inline="always")
def _copy_phases(phases, row, pw, sw, phase_width, into_phases):
    """phases[(pw + j) % sw P + (pw + j) // sw] = row[j] (``into_phases``: a row padded by pw, in
    sw phases) or the other way round. Stride 2 in loops of its own: with the constant stride
    LLVM moves whole vectors (the padding of a (64, 16, 32, 32) batch took 0.3 ms on one core,
    against 0.95 ms in the general loop)."""
    width = row.size
    if sw == 2:
        even = phases[pw % 2 * phase_width + pw // 2:]  # the columns j = 2 k, then j = 2 k + 1
        odd = phases[(pw + 1) % 2 * phase_width + (pw + 1) // 2:]
        if into_phases:
            for k in range(width // 2):
                even[k] = row[2 * k]
                odd[k] = row[2 * k + 1]
        else:
            for k in range(width // 2):
                row[2 * k] = even[k]
                row[2 * k + 1] = odd[k]
        if width % 2 and into_phases:
            even[width // 2] = row[width - 1]
        elif width % 2:
            row[width - 1] = even[width // 2]
        return
    for phase in range(sw):
        j0 = (phase - pw) % sw  # the first column j with (pw + j) % sw == phase
        run = phases[phase * phase_width + (pw + j0) // sw:]
        for k in range(-(-(width - j0) // sw)):
            if into_phases:
                run[k] = row[j0 + k * sw]
            else:
                row[j0 + k * sw] = run[k]


def _chunk(weight, out_size):
    """Images per chunk: as many as keep the chunk's columns within CHUNK_FLOATS (at least 1)."""
    return max(1, CHUNK_FLOATS // (weight[0].size * out_size[0] * out_size[1]))


@njit(cache=True, nogil=True)
def _forward_chunks(share, first, last, xq, phase_width, weight_2d, bias, kh, kw, sh, sw, dh, dw, chunk, y,
                    dy, dweight_parts):
    """Y of images first <= n < last from ``xq``, the padded input in phases (padded_phases);
    when ``dweight_parts`` has rows (not (shares, 0, 0)), also their dY_n X'_n^T added to this
    share's part."""
    n_out, n_rows = weight_2d.shape
    positions = y.shape[2] * y.shape[3]
    need_dw = dweight_parts.shape[1] > 0
    cols_buffer = np.empty(n_rows * chunk * positions, dtype=xq.dtype)
    out_buffer = np.empty(n_out * chunk * positions, dtype=xq.dtype)
    product = np.empty((n_out, n_rows), dtype=xq.dtype)
    for start in range(first, last, chunk):
        stop = min(start + chunk, last)
        span = (stop - start) * positions
        _unfold_chunk(xq, phase_width, start, stop, kh, kw, sh, sw, dh, dw, y.shape[2], y.shape[3], cols_buffer)
        cols = cols_buffer[:n_rows * span].reshape(n_rows, span)
        out = out_buffer[:n_out * span].reshape(n_out, span)
        np.dot(weight_2d, cols, out)
        for n in range(start, stop):
            for o in range(n_out):
                source, target, shift = out[o, (n - start) * positions:], y[n, o].reshape(-1), bias[o]
                for p in range(positions):
                    target[p] = source[p] + shift
        if need_dw:  # out is free again: it takes the chunk of dY
            _gather_chunk(dy, start, stop, out)
            _add_weight_grad(out, cols, product, dweight_parts[share])


@njit(cache=True, nogil=True)
def _backward_chunks(share, first, last, x, xq, phase_width, weight_t, dy, kh, kw, sh, sw, ph, pw, dh, dw, chunk,
                     need_dx, need_dw, dx, dweight_parts):
    """dx of images first <= n < last (when need_dx) and their dK' added to this share's part.
    ``xq`` is the padded input in phases (read only for dK'); dX is folded into a padded scratch
    chunk in phases, then copied to dx."""
    n_rows, n_out = weight_t.shape
    channels, height, width = x.shape[1:]
    oh, ow = dy.shape[2], dy.shape[3]
    positions = oh * ow
    cols_buffer = np.empty(n_rows * chunk * positions, dtype=x.dtype)
    grad_buffer = np.empty(n_out * chunk * positions, dtype=x.dtype)
    product = np.empty((n_out, n_rows), dtype=x.dtype)
    dxq = np.empty((chunk, channels, height + 2 * ph, sw * phase_width), dtype=x.dtype)
    dweight = dweight_parts[share]
    for start in range(first, last, chunk):
        stop = min(start + chunk, last)
        span = (stop - start) * positions
        grad = grad_buffer[:n_out * span].reshape(n_out, span)
        _gather_chunk(dy, start, stop, grad)
        cols = cols_buffer[:n_rows * span].reshape(n_rows, span)
        if need_dw:
            _unfold_chunk(xq, phase_width, start, stop, kh, kw, sh, sw, dh, dw, oh, ow, cols_buffer)
            _add_weight_grad(grad, cols, product, dweight)
        if need_dx:
            np.dot(weight_t, grad, cols)
            _fold_chunk(cols_buffer, phase_width, stop - start, kh, kw, sh, sw, dh, dw, oh, ow, dxq)
            for n in range(start, stop):
                for c in range(channels):
                    for h in range(height):
                        _copy_phases(dxq[n - start, c, ph + h], dx[n, c, h], pw, sw, phase_width, False)


@njit(cache=True, inline="always")
def _gather_chunk(dy, start, stop, grad):
    """grad[o, (n - start) P + p] = dY[n, o, p] (P positions) for start <= n < stop: the chunk's
    dY as one (O, chunk P) matrix."""
    positions = dy.shape[2] * dy.shape[3]
    for n in range(start, stop):
        for o in range(dy.shape[1]):
            source, target = dy[n, o].reshape(-1), grad[o, (n - start) * positions:]
            for p in range(positions):
                target[p] = source[p]


@njit(cache=True, inline="always")
def _add_weight_grad(grad, cols, product, dweight):
    """dweight += grad cols^T (the chunk's dK' = dY X'^T, into a float64 part)."""
    np.dot(grad, cols.T, product)
    for o in range(product.shape[0]):
        for r in range(product.shape[1]):
            dweight[o, r] += product[o, r]


@njit(cache=True)
def _unfold_chunk(xq, phase_width, start, stop, kh, kw, sh, sw, dh, dw, oh, ow, cols):
    """cols[(c, u, v), (n - start, i, j)] = Xp[n, c, i sh + u dh, j sw + v dw] for start <= n < stop
    (``unfold``'s layout with one class), read from Xq, the padded input in phases: runs of ow
    columns."""
    count = stop - start
    positions = oh * ow
    for c in range(xq.shape[1]):
        for u in range(kh):
            for v in range(kw):
                column = v * dw % sw * phase_width + v * dw // sw
                r = (c * kh + u) * kw + v
                for n in range(start, stop):
                    plane, block = xq[n, c], cols[(r * count + n - start) * positions:]
                    for i in range(oh):
                        source, target = plane[i * sh + u * dh, column:], block[i * ow:]
                        for j in range(ow):
                            target[j] = source[j]


@njit(cache=True)
def _fold_chunk(cols, phase_width, count, kh, kw, sh, sw, dh, dw, oh, ow, dxq):
    """The adjoint of _unfold_chunk into dXq[m] (the padded gradient in phases) for the chunk's
    images m < count."""
    positions = oh * ow
    for m in range(count):
        for c in range(dxq.shape[1]):
            plane = dxq[m, c]
            plane[:] = 0.0
            for u in range(kh):
                for v in range(kw):
                    column = v * dw % sw * phase_width + v * dw // sw
                    block = cols[(((c * kh + u) * kw + v) * count + m) * positions:]
                    for i in range(oh):
                        source, target = block[i * ow:], plane[i * sh + u * dh, column:]
                        for j in range(ow):
                            target[j] += source[j]


# at the end: winograd takes this module's workspaces
from . import direct_conv, register_conv, register_winograd, winograd  # noqa: E402
