"""MetaArray: the shape and dtype of an array, without its data (the ``meta`` device).

Tensors on the meta device hold MetaArrays. Functions give their output's shape through
``Function.infer``, so a model's shapes, parameter counts and cost can be worked out for
networks far too large to allocate.
"""
import numpy as np


class MetaArray:
    """Shape and dtype only; numpy attributes that need no data work, anything else raises."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype=np.float32):
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        if any(n < 0 for n in self.shape):
            raise ValueError(f"MetaArray: negative dimension in shape {self.shape}")

    @classmethod
    def like(cls, array):
        dtype = array.dtype if hasattr(array, "dtype") else np.asarray(array).dtype  # no host copy
        return cls(np.shape(array), dtype)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def itemsize(self):
        return self.dtype.itemsize

    @property
    def nbytes(self):
        return self.size * self.itemsize

    @property
    def T(self):
        return MetaArray(self.shape[::-1], self.dtype)

    def astype(self, dtype, copy=True):
        return MetaArray(self.shape, dtype)

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return MetaArray(resolve_reshape(self.shape, shape), self.dtype)

    def __getitem__(self, index):
        return MetaArray(standin(self)[index].shape, self.dtype)

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __array__(self, *args, **kwargs):
        raise TypeError(f"a meta tensor of shape {self.shape} has no data; build the model on a "
                        "real device (cpu) to compute values")

    def __repr__(self):
        return f"MetaArray(shape={self.shape}, dtype={self.dtype})"


def standin(meta):
    """A read-only zero-stride view of one element with ``meta``'s shape: indexing and shape
    rules work on it without allocating (do not compute with it)."""
    return np.broadcast_to(np.zeros((), dtype=meta.dtype), meta.shape)


def resolve_reshape(shape, new_shape):
    """``new_shape`` with its one -1 worked out; raises like numpy when sizes differ."""
    size = int(np.prod(shape, dtype=np.int64))
    new_shape = tuple(int(n) for n in new_shape)
    if new_shape.count(-1) > 1:
        raise ValueError("can only specify one unknown dimension")
    known = int(np.prod([n for n in new_shape if n != -1], dtype=np.int64))
    if -1 in new_shape:
        if known == 0 or size % known:
            raise ValueError(f"cannot reshape array of size {size} into shape {new_shape}")
        new_shape = tuple(size // known if n == -1 else n for n in new_shape)
    elif known != size:
        raise ValueError(f"cannot reshape array of size {size} into shape {new_shape}")
    return new_shape


def is_meta(array):
    return isinstance(array, MetaArray)
