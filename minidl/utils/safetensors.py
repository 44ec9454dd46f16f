"""safetensors files: the weights format of the Hugging Face hub, read and written here.

The format (https://github.com/huggingface/safetensors) is small enough to implement in a page,
so minidl does that instead of depending on the ``safetensors`` package (whose wheels pull in
nothing minidl needs and whose numpy API does the same few steps); the tests cross-read files
with that package when it is installed. A file is:

    8 bytes      N, the header's length, an unsigned little-endian 64-bit integer
    N bytes      a UTF-8 JSON object: {name: {"dtype": "F32", "shape": [...],
                 "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}} (optional),
                 padded with spaces
    the rest     every tensor's raw little-endian C-order bytes; the offsets count from here,
                 and the tensors tile this part exactly, in offset order

Loading treats the file as untrusted: the header length is bounded, every entry is checked
(known dtype, shape of non-negative integers, offsets contiguous from 0 to the end of the file,
byte length = element count x item size, no duplicate names) before any array is made, and any
fault is a ValueError naming the file and the entry. No code runs on load. Saving is atomic
(``serialization.atomic_write``). ``BF16`` tensors, which numpy lacks, load widened to float32.
Names are PyTorch's state_dict names, so weights move both ways between minidl and PyTorch.
"""
import json
import os
import struct

import numpy as np

from ..device import to_host
from ..tensor import Tensor
from .serialization import atomic_write

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the reference implementation's bound

_DTYPES = {  # safetensors name -> numpy dtype (little-endian)
    "F64": "<f8", "F32": "<f4", "F16": "<f2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}
_NAMES = {np.dtype(code): name for name, code in _DTYPES.items()}


def save_safetensors(state_dict, path, metadata=None):
    """Write name -> array (numpy arrays, Tensors or anything ``np.asarray`` takes, e.g. a
    ``model.state_dict()``) to ``path`` as a safetensors file; ``metadata`` is an optional
    dict of str -> str stored under ``__metadata__``."""
    if metadata is not None:
        bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise TypeError(f"save_safetensors: metadata must map str to str; {bad[0]!r} does not")
    header, arrays, offset = {}, [], 0
    for name, value in state_dict.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError(f"save_safetensors: {name!r} cannot name a tensor")
        array = np.asarray(to_host(value.array if isinstance(value, Tensor) else value))
        little = array.dtype.newbyteorder("<")
        if little not in _NAMES:
            raise TypeError(f"save_safetensors: {name!r} has dtype {array.dtype}, which safetensors "
                            f"cannot store here; supported: {', '.join(map(str, _NAMES))}")
        array = array.astype(little, order="C", copy=False)
        header[name] = {"dtype": _NAMES[little], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        arrays.append(array)
        offset += array.nbytes
    if metadata:
        header["__metadata__"] = dict(metadata)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as the reference writes it
    with atomic_write(path, suffix=".safetensors") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for array in arrays:
            f.write(array.tobytes())


def load_safetensors(path, with_metadata=False):
    """name -> numpy array of the tensors in ``path`` (in file order); with ``with_metadata``
    the pair (arrays, metadata dict). Feed the arrays to ``model.load_state_dict``."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise ValueError(f"load_safetensors: {path} has {len(prefix)} bytes, too short for the "
                             "8-byte header length")
        (length,) = struct.unpack("<Q", prefix)
        if length > MAX_HEADER_BYTES or 8 + length > size:
            raise ValueError(f"load_safetensors: {path} declares a header of {length} bytes, but the "
                             f"file has {size} bytes (and headers are bounded by {MAX_HEADER_BYTES})")
        entries, metadata = _parse_header(path, f.read(length))
        data = f.read()
    _check_layout(path, entries, len(data))
    arrays = {}
    for name, (dtype, shape, (begin, end)) in entries.items():
        if begin == end:
            arrays[name] = np.zeros(shape, np.float32 if dtype == "BF16" else _DTYPES[dtype])
        elif dtype == "BF16":  # the top 16 bits of a float32
            raw = np.frombuffer(data, "<u2", (end - begin) // 2, begin).astype(np.uint32) << 16
            arrays[name] = raw.view(np.float32).reshape(shape)
        else:
            array = np.frombuffer(data, _DTYPES[dtype], int(np.prod(shape, dtype=np.int64)), begin)
            arrays[name] = array.astype(array.dtype.newbyteorder("="), copy=True).reshape(shape)
    return (arrays, metadata) if with_metadata else arrays


def _parse_header(path, text):
    """{name: (dtype, shape, (begin, end))} and the metadata, or a ValueError naming the fault."""
    def unique_keys(pairs):
        keys = [k for k, _ in pairs]
        for key in keys:
            if keys.count(key) > 1:
                raise ValueError(f"load_safetensors: {path} names {key!r} twice in its header")
        return dict(pairs)

    try:
        header = json.loads(text.decode("utf-8"), object_pairs_hook=unique_keys)
    except UnicodeDecodeError as error:
        raise ValueError(f"load_safetensors: {path} has a header that is not UTF-8 ({error})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"load_safetensors: {path} has a header that is not JSON ({error})") from None
    if not isinstance(header, dict):
        raise ValueError(f"load_safetensors: {path} has a header that is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError(f"load_safetensors: {path} has __metadata__ that is not a map of str to str")
    entries = {}
    for name, info in header.items():
        where = f"load_safetensors: {path}, tensor {name!r}"
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"{where}: expected exactly the fields dtype, shape, data_offsets, got {info!r}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _DTYPES and dtype != "BF16":
            raise ValueError(f"{where}: unknown or unsupported dtype {dtype!r}; supported: "
                             f"{', '.join(list(_DTYPES) + ['BF16'])}")
        if not isinstance(shape, list) or not all(_is_count(n) for n in shape):
            raise ValueError(f"{where}: shape {shape!r} is not a list of non-negative integers")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(n) for n in offsets)
                or offsets[0] > offsets[1]):
            raise ValueError(f"{where}: data_offsets {offsets!r} is not [begin, end] with begin <= end")
        itemsize = 2 if dtype == "BF16" else np.dtype(_DTYPES[dtype]).itemsize
        expected = int(np.prod(shape, dtype=object)) * itemsize
        if offsets[1] - offsets[0] != expected:
            raise ValueError(f"{where}: shape {shape} of {dtype} needs {expected} bytes, but "
                             f"data_offsets {offsets} hold {offsets[1] - offsets[0]}")
        entries[name] = (dtype, tuple(shape), tuple(offsets))
    return entries, metadata


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_layout(path, entries, data_bytes):
    """The tensors must tile the data part exactly: no gap, no overlap, nothing past the end."""
    position = 0
    for name, (_, _, (begin, end)) in sorted(entries.items(), key=lambda item: item[1][2]):
        if begin != position:
            raise ValueError(f"load_safetensors: {path}, tensor {name!r}: data_offsets start at {begin}, "
                             f"expected {position} (the tensors must be contiguous)")
        position = end
    if position != data_bytes:
        raise ValueError(f"load_safetensors: {path} holds {data_bytes} bytes of tensor data, but its "
                         f"header accounts for {position} (truncated or padded file)")
