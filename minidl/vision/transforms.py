"""torchvision's common transforms, over numpy images and minidl Tensors (no PIL).

An image is a numpy array (H, W) or (H, W, C) (what minidl.vision.datasets give) or, after
``ToTensor``, a Tensor (C, H, W). The random transforms draw from minidl's global generator
(minidl.random) at each call, so ``minidl.manual_seed`` reproduces them and a checkpoint that
saves that generator resumes them.
"""
import numbers

import numpy as np

from ..random import default_generator
from ..tensor import Tensor


class Compose:
    """Apply ``transforms`` one after another."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, image):
        for transform in self.transforms:
            image = transform(image)
        return image

    def __repr__(self):
        return "Compose(" + ", ".join(map(repr, self.transforms)) + ")"


class Lambda:
    """Apply a user function."""

    def __init__(self, lambd):
        if not callable(lambd):
            raise TypeError(f"Lambda: argument should be callable, got {type(lambd).__name__}")
        self.lambd = lambd

    def __call__(self, image):
        return self.lambd(image)


class ToTensor:
    """A numpy image (H, W) or (H, W, C) -> a Tensor (C, H, W); uint8 pixels are scaled to
    float32 in [0, 1], other dtypes keep their values and dtype, as torchvision's ToTensor."""

    def __call__(self, image):
        array = np.asarray(image)
        if array.ndim not in (2, 3):
            raise ValueError(f"ToTensor: expected an image (H, W) or (H, W, C), got shape "
                             f"{array.shape}")
        array = (array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
        if array.dtype == np.uint8:
            return Tensor(array.astype(np.float32) / np.float32(255))
        return Tensor(np.ascontiguousarray(array))

    def __repr__(self):
        return "ToTensor()"


class Normalize:
    """(x - mean[c]) / std[c] for each channel c of a Tensor (..., C, H, W)."""

    def __init__(self, mean, std, inplace=False):
        self.mean, self.std = np.atleast_1d(mean), np.atleast_1d(std)
        if (self.std == 0).any():
            raise ValueError(f"Normalize: std evaluated to zero ({std}), leading to division by "
                             "zero")
        self.inplace = inplace

    def __call__(self, tensor):
        if not isinstance(tensor, Tensor) or tensor.ndim < 3:
            raise TypeError(f"Normalize: expected a Tensor (..., C, H, W) (apply ToTensor first), "
                            f"got {type(tensor).__name__} of shape {np.shape(tensor)}")
        channels = tensor.shape[-3]
        if len(self.mean) not in (1, channels) or len(self.std) not in (1, channels):
            raise ValueError(f"Normalize: {len(self.mean)} means and {len(self.std)} stds for an "
                             f"image of {channels} channels")
        dtype = tensor.dtype
        mean, std = (v.astype(dtype)[:, None, None] for v in (self.mean, self.std))
        return Tensor((tensor.array - mean) / std, device=tensor.device)

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


def _spatial(image):
    """(array, first spatial axis): (H, W[, C]) numpy images have H at 0, Tensors (..., H, W)
    at ndim - 2."""
    if isinstance(image, Tensor):
        return image.array, image.ndim - 2
    array = np.asarray(image)
    return array, 0


def _rewrap(image, array):
    return Tensor(array, device=image.device) if isinstance(image, Tensor) else array


class RandomCrop:
    """A crop of ``size`` (an int or (h, w)) at a random place, after ``padding`` (an int,
    (left/right, top/bottom) or (left, top, right, bottom)) filled by ``padding_mode``
    ('constant' with ``fill``, 'edge', 'reflect', 'symmetric')."""

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant"):
        self.size = (size, size) if isinstance(size, numbers.Integral) else tuple(size)
        if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ValueError(f"RandomCrop: padding_mode must be 'constant', 'edge', 'reflect' or "
                             f"'symmetric', got {padding_mode!r}")
        self.padding, self.pad_if_needed = padding, pad_if_needed
        self.fill, self.padding_mode = fill, padding_mode

    def _pad(self, array, axis, left, top, right, bottom):
        widths = [(0, 0)] * array.ndim
        widths[axis], widths[axis + 1] = (top, bottom), (left, right)
        options = {"constant_values": self.fill} if self.padding_mode == "constant" else {}
        return np.pad(array, widths, mode=self.padding_mode, **options)

    def __call__(self, image):
        array, axis = _spatial(image)
        if self.padding is not None:
            p = (self.padding,) if isinstance(self.padding, numbers.Integral) else tuple(self.padding)
            left, top, right, bottom = {1: p * 4, 2: p * 2, 4: p}[len(p)]
            array = self._pad(array, axis, left, top, right, bottom)
        h, w = self.size
        height, width = array.shape[axis], array.shape[axis + 1]
        if self.pad_if_needed and (height < h or width < w):
            dh, dw = max(h - height, 0), max(w - width, 0)
            array = self._pad(array, axis, dw, dh, dw, dh)
            height, width = array.shape[axis], array.shape[axis + 1]
        if height < h or width < w:
            raise ValueError(f"RandomCrop: crop size {self.size} is larger than the (padded) "
                             f"image of {height}x{width}")
        generator = default_generator()
        i = int(generator.integers(0, height - h + 1))
        j = int(generator.integers(0, width - w + 1))
        index = [slice(None)] * array.ndim
        index[axis], index[axis + 1] = slice(i, i + h), slice(j, j + w)
        return _rewrap(image, np.ascontiguousarray(array[tuple(index)]))

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror the image left-right with probability ``p``."""

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, image):
        if default_generator().random() >= self.p:
            return image
        array, axis = _spatial(image)
        return _rewrap(image, np.ascontiguousarray(np.flip(array, axis + 1)))

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"
