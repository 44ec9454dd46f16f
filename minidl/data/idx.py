"""The IDX file format of MNIST and Fashion-MNIST (optionally gzip-compressed).

Header: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64), the number of dimensions, then each dimension as a big-endian
uint32; then the data, big-endian, row-major.

``read_idx`` reads no more than the header promises plus one byte (to detect trailing data),
streaming from gzip, so a small .gz that inflates to gigabytes costs only what its header claims.
"""
import gzip
import math
import os
import zlib

import numpy as np

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _TYPES.items()}
MAX_NDIM = 32  # numpy's limit before 2.0; no real IDX file comes near it
_CHUNK = 1 << 24


def _open(path, mode):
    return gzip.open(path, mode) if str(path).endswith(".gz") else open(path, mode)


def read_idx(path):
    """The array stored in an IDX file (native byte order). ``path``: str, bytes or path-like.
    A damaged or inconsistent file raises ValueError naming it; a missing one, OSError."""
    name = os.fsdecode(path)
    try:
        with _open(name, "rb") as f:
            return _read(f, name)
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:  # a .gz cut short or corrupt
        raise ValueError(f"{name}: damaged gzip data ({error})") from error


def _read(f, name):
    head = f.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _TYPES:
        raise ValueError(f"{name} is not an IDX file (bad magic number {head.hex()})")
    ndim = head[3]
    if ndim > MAX_NDIM:
        raise ValueError(f"{name}: the header declares {ndim} dimensions, more than the {MAX_NDIM} "
                         "an IDX reader accepts")
    dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise ValueError(f"{name}: the header of {ndim} dimensions is cut short")
    shape = tuple(int.from_bytes(dims[4 * i:4 * i + 4], "big") for i in range(ndim))
    dtype = np.dtype(_TYPES[head[2]])
    expected = math.prod(shape) * dtype.itemsize  # a Python int: never overflows
    claim = f"{name}: header says shape {shape} ({expected} bytes of data)"
    if isinstance(f, gzip.GzipFile):  # no size to check first: inflate up to the promise + 1 byte
        data = bytearray()
        while len(data) <= expected:
            chunk = f.read(min(expected + 1 - len(data), _CHUNK))
            if not chunk:
                break
            data += chunk
        held = "more" if len(data) > expected else len(data)
    else:
        held = os.fstat(f.fileno()).st_size - f.tell()
        data = bytearray(expected if held == expected else 0)  # allocate only what the file holds
        if data:
            held = f.readinto(data)  # fewer if the file shrank meanwhile
    if held != expected:
        raise ValueError(f"{claim}, file holds {held}")
    array = np.frombuffer(data, dtype).reshape(shape)
    return array if dtype.isnative else array.byteswap(inplace=True).view(dtype.newbyteorder())


def write_idx(path, array):
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in .gz)."""
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"write_idx: dtype {array.dtype} has no IDX type code")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    with _open(path, "wb") as f:
        f.write(header + array.astype(_TYPES[code]).tobytes())
