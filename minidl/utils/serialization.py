"""Saving and loading arrays as .npz: written atomically, read with allow_pickle=False.

A file is first written to a temporary name in the same directory, flushed to disk, then
renamed over the target: a crash or a bad value leaves the old file intact, never half a file.
Loading never runs code (no pickles).
"""
import json
import os
import tempfile

import numpy as np

from ..device import to_host
from ..tensor import Tensor


def save(arrays, path):
    """Write a mapping name -> array (a state_dict) to ``path`` atomically."""
    payload = {}
    for name, value in arrays.items():
        array = np.asarray(to_host(value.data if isinstance(value, Tensor) else value))
        if array.dtype == object:
            raise TypeError(f"save: {name!r} is an object array; only numeric and string arrays "
                            "can be stored without pickling")
        payload[name] = array
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def load(path):
    """The mapping name -> array stored by ``save`` (no code is run: allow_pickle=False)."""
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _flatten_optimizer(state):
    flat = {"optimizer.param_groups": np.array(json.dumps(state["param_groups"]))}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            flat[f"optimizer.state.{index}.{name}"] = np.asarray(value)
    return flat


def _unflatten_optimizer(flat):
    state = {}
    for key, value in flat.items():
        if key.startswith("optimizer.state."):
            index, name = key[len("optimizer.state."):].split(".", 1)
            state.setdefault(int(index), {})[name] = value
    groups = json.loads(str(flat["optimizer.param_groups"]))
    return {"state": state, "param_groups": groups}


def save_checkpoint(path, model, optimizer=None, scheduler=None, epoch=None, **metadata):
    """One .npz with the model (``model.*``), the optimizer (``optimizer.*``), the scheduler and
    ``epoch``; extra keyword values (numbers, strings) are stored under ``meta.*``."""
    arrays = {f"model.{k}": v for k, v in model.state_dict().items()}
    if optimizer is not None:
        arrays.update(_flatten_optimizer(optimizer.state_dict()))
    if scheduler is not None:
        arrays["scheduler"] = np.array(json.dumps(scheduler.state_dict()))
    if epoch is not None:
        arrays["epoch"] = np.array(int(epoch))
    arrays.update({f"meta.{k}": np.asarray(v) for k, v in metadata.items()})
    save(arrays, path)


def load_checkpoint(path, model, optimizer=None, scheduler=None):
    """Restore what ``save_checkpoint`` wrote; returns {'epoch': ..., **metadata}."""
    flat = load(path)
    model.load_state_dict({k[len("model."):]: v for k, v in flat.items() if k.startswith("model.")})
    if optimizer is not None:
        if "optimizer.param_groups" not in flat:
            raise KeyError(f"load_checkpoint: {path} holds no optimizer state")
        optimizer.load_state_dict(_unflatten_optimizer(flat))
    if scheduler is not None and "scheduler" in flat:
        scheduler.load_state_dict(json.loads(str(flat["scheduler"])))
    info = {k[len("meta."):]: v.item() for k, v in flat.items() if k.startswith("meta.")}
    info["epoch"] = int(flat["epoch"]) if "epoch" in flat else None
    return info
