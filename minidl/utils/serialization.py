"""Saving and loading arrays as .npz: written atomically, read as untrusted data.

``save(obj, f)`` / ``load(f)`` are PyTorch's ``torch.save`` / ``torch.load`` without pickle: a
mapping name -> array (a state_dict) is one .npz entry per name; any other nesting of dicts,
lists and tuples of arrays, Tensors, numbers, strings and None (a model's and an optimizer's
state dicts together) is one entry per array plus a JSON entry ``__structure__`` that holds the
rest. ``f`` is a path or a binary file object.

Saving: a file is first written to a temporary name beside the target (``.<name>.tmp-<pid>-*``),
flushed to disk, then renamed over the target: a crash or a bad value leaves the old file intact,
never half a file. The temporary is removed when the write fails, and temporaries of the same
target left by a process that no longer runs (one killed mid-save) are removed by the next save.
The file gets the permissions ``open()`` would give it: the replaced file's, else 0o666 less
the umask.

Loading never runs code. An .npz is a zip of .npy files; each entry's header (dtype, shape) is
read and checked before its body, and its body is read only to the size that header declares,
so a hostile file costs no more memory than the arrays expected from it. Object (pickled)
arrays are refused. Every fault of a file is a ValueError naming the file and the entry.

A checkpoint (``save_checkpoint``) is one .npz with these entries:
    model.<name>                 the model's state_dict
    optimizer.param_groups       JSON: each group's hyperparameters and parameter indices
    optimizer.state.<i>.<name>   the state of parameter i (Adam's moments, step ...)
    scheduler                    JSON: the lr scheduler's state
    epoch, step                  epochs and optimizer steps done
    rng                          JSON: minidl's global generator (init, dropout, loaders without a
                                 seed), numpy's ``bit_generator.state``
    loader.<name>                JSON: a DataLoader's state (its own shuffle generator)
    meta.<name>                  numbers and strings given by the caller
``load_checkpoint`` reads all of it, checks it against the model, optimizer and scheduler, and
changes them only once every check has passed: all or nothing.
"""
import contextlib
import json
import math
import numbers
import os
import re
import stat
import struct
import tempfile
import zipfile
import zlib

import numpy as np

from ..data.dataset import DataLoader
from ..device import to_host
from ..random import generator_from_state, get_rng_state, set_rng_state
from ..tensor import Tensor

MAX_TEXT_CHARS = 1 << 20  # a JSON entry or a meta string; generous for hyperparameters

# what a damaged zip or .npy header makes zipfile, zlib and numpy.lib.format raise
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, struct.error,
           NotImplementedError, RuntimeError, UnicodeDecodeError, OverflowError)
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}
_LOADER_NAME = re.compile(r"\w+")
_RESERVED = ("epoch", "step", "loaders")  # keys of load_checkpoint's answer that meta.* can't take
_OPTIMIZER_STATE = re.compile(r"state\.(0|[1-9][0-9]*)\.(\w+)")


@contextlib.contextmanager
def atomic_write(path, suffix=""):
    """``with atomic_write(path) as f:`` a binary file that becomes ``path`` only when the block
    ends without an error (written to a temporary name beside it, fsync'ed, renamed over it)."""
    directory, base = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    _remove_stale_temporaries(directory, base, suffix)
    mode = _new_file_mode(path)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{base}.tmp-{os.getpid()}-",
                                     suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _new_file_mode(path):
    """The permissions ``open(path, 'wb')`` leaves: the existing file's, else 0o666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0o022)  # the umask can only be read by setting it: set it straight back
        os.umask(umask)
        return 0o666 & ~umask


def _remove_stale_temporaries(directory, base, suffix):
    """Remove temporaries of ``base`` whose writing process no longer runs (killed mid-save)."""
    pattern = re.compile(re.escape(f".{base}.tmp-") + r"([0-9]+)-\w+" + re.escape(suffix))
    for name in os.listdir(directory):
        match = pattern.fullmatch(name)
        if match and not _process_running(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(directory, name))


def _process_running(pid):
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


STRUCTURE = "__structure__"  # the JSON entry of a nested object


def _host_array(value, where):
    array = np.asarray(to_host(value.array if isinstance(value, Tensor) else value))
    if array.dtype == object:
        raise TypeError(f"save: {where} is an object array; only numeric and string arrays "
                        "can be stored without pickling")
    return array


def _encode(value, arrays, where):
    """The JSON form of ``value``; its arrays go into ``arrays`` under the names it refers to.
    Containers and special values are one-key objects: {"dict": [[key, value], ...]},
    {"list": [...]}, {"tuple": [...]}, {"tensor" | "array" | "scalar": entry}, {"float": "nan"}."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, np.generic):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, (Tensor, np.ndarray, np.generic)):
        kind = ("tensor" if isinstance(value, Tensor)
                else "scalar" if isinstance(value, np.generic) else "array")
        name = f"{kind}{len(arrays)}"
        arrays[name] = _host_array(value, where)
        return {kind: name}
    if isinstance(value, dict):
        return {"dict": [[_encode(k, arrays, f"{where} key {k!r}"),
                          _encode(v, arrays, f"{where}[{k!r}]")] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return {"tuple" if isinstance(value, tuple) else "list":
                [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(value)]}
    if hasattr(value, "state_dict"):
        raise TypeError(f"save: {where} is a {type(value).__name__}; minidl never pickles objects "
                        f"(loading a pickle can run any code). Save its state_dict() instead and "
                        f"restore it with load_state_dict(minidl.load(f)) into a new "
                        f"{type(value).__name__}")
    raise TypeError(f"save: {where} is a {type(value).__name__}; only dicts, lists and tuples of "
                    "arrays, Tensors, numbers, strings and None are stored (nothing is pickled)")


def save(obj, f):
    """Write ``obj`` (a state_dict, or dicts, lists and tuples of them and of arrays, Tensors,
    numbers, strings, None) to ``f``: a path, written atomically, or a binary file object."""
    if (isinstance(obj, dict) and obj and STRUCTURE not in obj
            and all(isinstance(k, str) and isinstance(v, (Tensor, np.ndarray)) for k, v in obj.items())):
        payload = {name: _host_array(value, repr(name)) for name, value in obj.items()}
    else:
        payload = {}
        payload[STRUCTURE] = _json_entry(_encode(obj, payload, "obj"))  # fills in the arrays
    if hasattr(f, "write"):
        np.savez(f, **payload)
        return
    with atomic_write(f, suffix=".npz") as out:
        np.savez(out, **payload)


def load(f, map_location=None, weights_only=True):
    """What ``save`` stored in ``f`` (a path or a binary file object): a state_dict as a dict of
    numpy arrays, a nested object with its Tensors as Tensors (on ``map_location``, default
    cpu). No code runs, whatever ``weights_only`` says (object arrays are refused); a damaged
    file is a ValueError naming it and the entry, a missing one an OSError."""
    if hasattr(f, "read"):
        return _load(getattr(f, "name", "<file object>"), f, map_location)
    with open(f, "rb") as file:
        return _load(f, file, map_location)


def _load(path, file, map_location):
    archive = _Archive(path, file)
    if STRUCTURE not in archive.members:
        return {key: archive.read(key) for key in archive.members}
    unused = set(archive.members) - {STRUCTURE}

    def decode(node, where):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, dict) and len(node) == 1:
            (kind, value), = node.items()
            if kind in ("tensor", "array", "scalar") and isinstance(value, str) and value in unused:
                unused.remove(value)
                array = archive.read(value)
                if kind == "tensor":
                    return Tensor(array, device=map_location or "cpu")
                return array[()] if kind == "scalar" else array
            if kind == "float" and value in ("nan", "inf", "-inf"):
                return float(value)
            if kind in ("list", "tuple") and isinstance(value, list):
                items = [decode(v, f"{where}[{i}]") for i, v in enumerate(value)]
                return tuple(items) if kind == "tuple" else items
            if kind == "dict" and isinstance(value, list) and all(
                    isinstance(p, list) and len(p) == 2 for p in value):
                return {decode(k, f"{where} key"): decode(v, f"{where}[{k!r:.50}]")
                        for k, v in value}
        raise archive.error(STRUCTURE, f"holds {node!r:.100} at {where}, which is not a stored "
                                       "value (or refers to a missing or reused array entry)")

    try:
        obj = decode(archive.text(STRUCTURE), "obj")
    except (RecursionError, TypeError) as exc:  # too deep, or an unhashable dict key
        raise archive.error(STRUCTURE, f"is not a stored object ({type(exc).__name__}: {exc})")
    if unused:
        raise archive.error(sorted(unused)[0], f"is not referred to by {STRUCTURE!r}")
    return obj


class _Archive:
    """The entries of an .npz: key (member name less '.npy') -> zip member, read one by one."""

    def __init__(self, path, file):
        self.path = path
        magic = file.read(6)
        try:
            file.seek(0)
            self.zip = zipfile.ZipFile(file)
            infos = self.zip.infolist()
        except _DAMAGE as exc:
            what = "an .npy array" if magic == b"\x93NUMPY" else "damaged or of another format"
            raise ValueError(f"{path}: not an .npz archive: {what} ({type(exc).__name__}: "
                             f"{exc})") from exc
        self.members = {}
        for info in infos:
            if not info.filename.endswith(".npy"):
                raise ValueError(f"{path}: entry {info.filename!r} is not an .npy array")
            key = info.filename[:-len(".npy")]
            if key in self.members:
                raise self.error(key, "appears twice")
            if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED,
                                                                  zipfile.ZIP_DEFLATED):
                raise self.error(key, f"is encrypted or compressed by method {info.compress_type}"
                                      "; only stored and deflated entries are read")
            self.members[key] = info

    def error(self, key, complaint):
        return ValueError(f"{self.path}: entry {key!r} {complaint}")

    def _guard(self, key, what, read, *args):
        try:
            return read(*args)
        except _DAMAGE as exc:
            raise self.error(key, f"is damaged: its {what} is unreadable "
                                  f"({type(exc).__name__}: {exc})") from exc

    def read(self, key, check=None):
        """The array stored under ``key``. Its .npy header is read first; ``check(shape, dtype)``
        may return a complaint (a str) that refuses the entry before its body is read."""
        info = self.members[key]
        with self._guard(key, "zip entry", self.zip.open, info) as f:
            shape, fortran, dtype = self._guard(key, ".npy header", _read_header, f)
            header_size = f.tell()
            if dtype.hasobject:
                raise self.error(key, "holds pickled Python objects, which are never loaded")
            if dtype.itemsize == 0 or any(n < 0 for n in shape):
                raise self.error(key, f"declares an impossible array: {dtype} of shape {shape}")
            complaint = check(shape, dtype) if check is not None else None
            if complaint:
                raise self.error(key, complaint)
            size = math.prod(shape) * dtype.itemsize
            if info.file_size != header_size + size:
                raise self.error(key, f"is {info.file_size} bytes long, but its header declares "
                                      f"{header_size + size}")
            body, rest = self._guard(key, "data", lambda: (f.read(size), f.read(1)))
        if len(body) != size or rest:
            raise self.error(key, f"holds {len(body) + len(rest)} data bytes, not {size}")
        return np.frombuffer(body, dtype).reshape(shape, order="F" if fortran else "C").copy()

    def text(self, key):
        """The JSON value stored under ``key`` (a 0-d string array)."""
        array = self.read(key, _check_text)
        try:
            return json.loads(str(array))
        except (ValueError, RecursionError) as exc:
            raise self.error(key, f"is not valid JSON ({type(exc).__name__}: {exc})") from exc

    def count(self, key):
        """The integer >= 0 stored under ``key`` (a 0-d integer array)."""
        value = self.read(key, lambda shape, dtype: None if shape == () and dtype.kind in "iu"
                          else f"must be one integer, got {dtype} of shape {shape}").item()
        if value < 0:
            raise self.error(key, f"must be >= 0, got {value}")
        return value


def _read_header(f):
    version = np.lib.format.read_magic(f)
    if version not in _HEADER_READERS:
        raise ValueError(f".npy format version {version} is not read here")
    return _HEADER_READERS[version](f)


def _check_text(shape, dtype):
    if shape != () or dtype.kind != "U":
        return f"must be one string, got {dtype} of shape {shape}"
    if dtype.itemsize > 4 * MAX_TEXT_CHARS:
        return f"is a string of {dtype.itemsize // 4} characters, over the {MAX_TEXT_CHARS} allowed"
    return None


def _check_meta(shape, dtype):
    if shape != () or dtype.kind not in "biufU":
        return f"must be one number or string, got {dtype} of shape {shape}"
    return _check_text(shape, dtype) if dtype.kind == "U" else None


def _check_like(target):
    """A header check for an array that replaces ``target`` (same shape, same kind of number)."""
    def check(shape, dtype):
        same_kind = dtype.kind == target.dtype.kind or {dtype.kind, target.dtype.kind} <= set("iu")
        if shape != target.shape or not same_kind:
            return (f"is {dtype} of shape {shape}, but the model holds {target.dtype} of shape "
                    f"{target.shape} there")
        return None
    return check


def _check_optimizer_state(size):
    """A header check for the state of a parameter of ``size`` entries: an array of that size,
    or one number (a counter)."""
    def check(shape, dtype):
        if dtype.kind not in "iuf" or (shape != () and math.prod(shape) != size):
            return f"must be a real array of {size} entries or one number, got {dtype} {shape}"
        return None
    return check


def _json_entry(value):
    return np.array(json.dumps(value, allow_nan=False))


def _flatten_optimizer(state):
    flat = {"optimizer.param_groups": _json_entry(state["param_groups"])}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            flat[f"optimizer.state.{index}.{name}"] = np.asarray(value)
    return flat


def save_checkpoint(path, model, optimizer=None, scheduler=None, epoch=None, step=None,
                    loader_states=None, **metadata):
    """One .npz holding what a resumed run needs (the entries are listed in the module's
    docstring): the model, the optimizer, the scheduler, ``epoch`` and ``step``, minidl's global
    generator, and ``loader_states`` ({name: DataLoader.state_dict()}). Extra keyword values
    (single numbers and strings) are stored under ``meta.*``."""
    arrays = {f"model.{k}": v for k, v in model.state_dict().items()}
    if optimizer is not None:
        arrays.update(_flatten_optimizer(optimizer.state_dict()))
    if scheduler is not None:
        arrays["scheduler"] = _json_entry(scheduler.state_dict())
    for key, value in (("epoch", epoch), ("step", step)):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"save_checkpoint: {key} must be an int >= 0, got {value!r}")
            arrays[key] = np.array(int(value))
    arrays["rng"] = _json_entry(get_rng_state())
    for name, state in (loader_states or {}).items():
        if not isinstance(name, str) or not _LOADER_NAME.fullmatch(name):
            raise ValueError(f"save_checkpoint: a loader's name must be letters, digits and _, "
                             f"got {name!r}")
        DataLoader.check_state_dict(state)
        arrays[f"loader.{name}"] = _json_entry(state)
    for name, value in metadata.items():
        array = np.asarray(value)
        if name in _RESERVED:
            raise ValueError(f"save_checkpoint: {name!r} cannot name metadata; it is a key of "
                             "what load_checkpoint returns")
        if _check_meta(array.shape, array.dtype):
            raise TypeError(f"save_checkpoint: metadata {name!r} must be a single number or "
                            f"string, got {value!r:.100}")
        arrays[f"meta.{name}"] = array
    save(arrays, path)


def load_checkpoint(path, model, optimizer=None, scheduler=None):
    """Restore what ``save_checkpoint`` wrote into ``model``, ``optimizer``, ``scheduler`` and
    minidl's global generator; returns {'epoch': int or None, 'step': int or None,
    'loaders': {name: DataLoader state}, **metadata} (a loader's state is for its
    ``load_state_dict``, already checked).

    All or nothing: every entry is read and checked first (its name, its declared shape and
    dtype before its body, its values against the model, optimizer and scheduler given), and
    only then is anything changed. The entries of an optimizer or scheduler not given are
    not read. A missing file is an OSError; any fault of the file a ValueError naming it and
    the entry at fault.
    """
    own = model.state_dict()
    params = optimizer._ordered_params() if optimizer is not None else []
    with open(path, "rb") as file:
        archive = _Archive(path, file)
        # names first: an unexpected entry is refused before any entry is read
        model_keys, optimizer_keys, plain_keys = [], [], []
        for key in archive.members:
            section, _, name = key.partition(".")
            if section == "model" and name in own:
                model_keys.append(key)
            elif section == "optimizer" and (name == "param_groups"
                                             or _OPTIMIZER_STATE.fullmatch(name)):
                optimizer_keys.append(key)
            elif (key in ("scheduler", "epoch", "step", "rng")
                  or section == "loader" and _LOADER_NAME.fullmatch(name)
                  or section == "meta" and name and name not in _RESERVED):
                plain_keys.append(key)
            elif section == "model":
                raise archive.error(key, f"is not a parameter or buffer of the model "
                                         f"({type(model).__name__})")
            else:
                raise archive.error(key, "is not part of a checkpoint (model.*, optimizer.*, "
                                         "scheduler, epoch, step, rng, loader.*, meta.*)")
        missing = [name for name in own if f"model.{name}" not in archive.members]
        if missing:
            raise ValueError(f"{path}: holds no entry for the model's {', '.join(missing)}")
        if optimizer is not None and "optimizer.param_groups" not in archive.members:
            raise ValueError(f"{path}: holds no optimizer state (no entry "
                             "'optimizer.param_groups'); it may hold a model only")
        if scheduler is not None and "scheduler" not in archive.members:
            raise ValueError(f"{path}: holds no scheduler state (no entry 'scheduler')")

        model_state = {key[len("model."):]: archive.read(key, _check_like(own[key[len("model."):]]))
                       for key in model_keys}
        optimizer_state = None
        if optimizer is not None:
            optimizer_state = {"param_groups": archive.text("optimizer.param_groups"), "state": {}}
            for key in optimizer_keys:
                match = _OPTIMIZER_STATE.fullmatch(key[len("optimizer."):])
                if match is None:
                    continue
                index, name = int(match.group(1)), match.group(2)
                if index >= len(params):
                    raise archive.error(key, f"is state of parameter {index}, but the optimizer "
                                             f"has {len(params)} parameters")
                value = archive.read(key, _check_optimizer_state(params[index].array.size))
                optimizer_state["state"].setdefault(index, {})[name] = value
        info, loaders, scheduler_state, rng = {"epoch": None, "step": None}, {}, None, None
        for key in plain_keys:
            section, _, name = key.partition(".")
            if key in ("epoch", "step"):
                info[key] = archive.count(key)
            elif key == "scheduler":
                scheduler_state = archive.text(key) if scheduler is not None else None
            elif key == "rng":
                rng = archive.text(key)
            elif section == "loader":
                loaders[name] = archive.text(key)
            else:
                info[name] = archive.read(key, _check_meta).item()

    # values: each checked by its owner without changing it
    checks = [("rng", generator_from_state, rng)] if rng is not None else []
    checks += [(f"loader.{name}", DataLoader.check_state_dict, state)
               for name, state in loaders.items()]
    if optimizer is not None:
        checks.append(("optimizer.*", optimizer.check_state_dict, optimizer_state))
    if scheduler is not None:
        checks.append(("scheduler", scheduler.check_state_dict, scheduler_state))
    for key, check, value in checks:
        try:
            check(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: entry {key!r} is refused: {exc}") from exc

    # every check has passed: apply
    model.load_state_dict(model_state)
    if optimizer is not None:
        optimizer.load_state_dict(optimizer_state)
    if scheduler is not None:
        scheduler.load_state_dict(scheduler_state)
    if rng is not None:
        set_rng_state(rng)
    info["loaders"] = loaders
    return info
