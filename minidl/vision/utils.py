"""torchvision.utils for minidl: ``make_grid`` and ``save_image``, as pytorch/examples vae uses
them (``save_image(batch.view(64, 1, 28, 28), 'sample.png')``). No PIL: the PNG is written here
(8-bit RGB or RGBA, one zlib stream), so saving an image needs nothing beyond the standard
library and NumPy.
"""
import math
import os
import struct
import zlib

import numpy as np

from ..tensor import Tensor


def _host(tensor):
    """A Tensor, an array or a list of (C, H, W) images -> a float numpy array (a copy)."""
    if isinstance(tensor, (list, tuple)):
        return np.stack([_host(t) for t in tensor])
    if isinstance(tensor, Tensor):
        return np.array(tensor.detach().numpy(), dtype=np.float32 if tensor.dtype != np.float64
                        else np.float64)
    return np.array(tensor, dtype=np.float32)


def make_grid(tensor, nrow=8, padding=2, normalize=False, value_range=None, scale_each=False,
              pad_value=0.0):
    """Images (B, C, H, W) (or a list of (C, H, W), or one (C, H, W) / (H, W) image) -> one image
    (3 or C, rows * (H + padding) + padding, min(nrow, B) * (W + padding) + padding), laid out row
    by row with ``pad_value`` between, as torchvision's make_grid: one-channel images become
    three (grey RGB); ``normalize`` clamps to ``value_range`` (default: the min and max, of the
    whole batch or of each image with ``scale_each``) and maps it to [0, 1]. A Tensor."""
    images = _host(tensor)
    if images.ndim == 2:
        images = images[None]
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4:
        raise ValueError(f"make_grid: expected images (B, C, H, W), a list of (C, H, W), or one "
                         f"(C, H, W) or (H, W) image, got shape {images.shape}")
    if images.shape[1] == 1:
        images = np.repeat(images, 3, axis=1)
    if normalize:
        if value_range is not None and not isinstance(value_range, tuple):
            raise TypeError(f"make_grid: value_range has to be a tuple (min, max), got "
                            f"{type(value_range).__name__}")
        for block in (images if scale_each else [images]):
            low, high = value_range if value_range is not None else (block.min(), block.max())
            np.clip(block, low, high, out=block)
            block -= low
            block /= max(high - low, 1e-5)
    if len(images) == 1:
        return Tensor(images[0])
    count, channels, height, width = images.shape
    columns = min(nrow, count)
    rows = int(math.ceil(count / columns))
    step_y, step_x = height + padding, width + padding
    grid = np.full((channels, rows * step_y + padding, columns * step_x + padding), pad_value,
                   dtype=images.dtype)
    for k, image in enumerate(images):
        y, x = divmod(k, columns)
        grid[:, y * step_y + padding:(y + 1) * step_y, x * step_x + padding:(x + 1) * step_x] = image
    return Tensor(grid)


def _png(pixels):
    """PNG bytes of a uint8 image (H, W, 3) or (H, W, 4): signature, IHDR, one IDAT, IEND."""
    height, width, channels = pixels.shape

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    color_type = {3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    rows = np.concatenate([np.zeros((height, 1), np.uint8), pixels.reshape(height, -1)], axis=1)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))


def save_image(tensor, fp, format=None, **kwargs):
    """Write ``make_grid(tensor, **kwargs)`` as a PNG to ``fp`` (a path or a binary file object):
    values in [0, 1] map to 0..255, rounded to nearest and clamped, as torchvision's save_image.
    ``format`` may be None or "png" (there is no PIL here for other formats)."""
    if format is not None and format.lower() != "png":
        raise ValueError(f"save_image: only PNG can be written (no PIL in minidl), got format={format!r}")
    if format is None and isinstance(fp, (str, os.PathLike)):
        extension = os.path.splitext(os.fspath(fp))[1].lower()
        if extension != ".png":
            raise ValueError(f"save_image: only PNG can be written (no PIL in minidl), got a file "
                             f"named {os.fspath(fp)!r}; use a .png name")
    grid = make_grid(tensor, **kwargs).numpy()
    if grid.shape[0] not in (3, 4):
        raise ValueError(f"save_image: expected 1, 3 or 4 channels, got a grid of shape {grid.shape}")
    pixels = np.clip(grid * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    data = _png(np.ascontiguousarray(pixels))
    if hasattr(fp, "write"):
        fp.write(data)
    else:
        with open(fp, "wb") as f:
            f.write(data)
