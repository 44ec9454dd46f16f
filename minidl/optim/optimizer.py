"""Optimizer: parameter groups, per-parameter state, and state_dict as torch.optim has them.

Subclasses implement ``update(group, param, grad, state)`` on flat arrays; the arithmetic is a
kernel of the parameter's device (``kernels/<device>/optim.py``). They check their
hyperparameters in ``check_hyperparameters`` (for every group, and for a state being loaded) and
name their per-parameter state in ``state_buffers`` (arrays shaped like the parameter) and
``state_counters`` (integers), which is all ``load_state_dict`` accepts.
"""
import math
import numbers

import numpy as np

from ..device import like, to_device, to_host
from ..function import no_grad
from ..kernels.cuda.array import CudaArray
from ..kernels import for_device


def check_number(owner, key, value, upper=None, closed=False):
    """Raise unless ``value`` is a real number (not a bool), finite, >= 0 and (given) < upper
    (<= upper when ``closed``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {key} must be a number, got {value!r} ({type(value).__name__})")
    domain = f"in [0, {upper}{']' if closed else ')'}" if upper is not None else ">= 0"
    below = upper is None or value < upper or closed and value == upper
    if not (math.isfinite(value) and value >= 0 and below):
        raise ValueError(f"{owner}: invalid {key} {value!r} (must be a finite number {domain})")


def check_integer(owner, key, value, minimum=0):
    """Raise unless ``value`` is an integer (not a bool) >= minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {key} must be an integer, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{owner}: invalid {key} {value!r} (must be an integer >= {minimum})")


def check_flag(owner, key, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {key} must be True or False, got {value!r}")


class Optimizer:
    state_buffers = ()   # per-parameter state arrays, shaped like the parameter
    state_counters = ()  # per-parameter integer state (Adam's step)
    state_scalars = ()   # per-parameter real-number state (NAdam's mu_product)

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}  # id(param) -> dict of arrays and counters
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group):
        group = dict(group)
        group["params"] = list(group["params"])
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for param in group["params"]:
            if not param.requires_grad:
                raise ValueError(f"{type(self).__name__}: can't optimize a tensor that does not "
                                 f"require grad (shape {param.shape})")
            if id(param) in seen:
                raise ValueError(f"{type(self).__name__}: a parameter appears in more than one group")
            seen.add(id(param))
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        group.setdefault("initial_lr", group["lr"])
        self.check_hyperparameters(group)
        self.param_groups.append(group)

    def check_hyperparameters(self, group):
        """TypeError or ValueError naming the optimizer and the argument when a value of
        ``group`` is outside its domain (as torch.optim checks); subclasses extend it."""
        for key in ("lr", "initial_lr"):
            check_number(type(self).__name__, key, group[key])

    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            for param in group["params"]:
                if set_to_none:
                    param.grad = None
                elif param.grad is not None:
                    param.grad.array[...] = 0

    @no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns closure() if given."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if not param.array.flags.c_contiguous:
                    param.array = np.ascontiguousarray(param.array, like=like(param.array))
                grad = np.ascontiguousarray(param.grad.array, dtype=param.dtype,
                                            like=like(param.grad.array)).reshape(-1)
                state = self.state.setdefault(id(param), {})
                self.update(for_device(param.device, "optim"), group, param.array.reshape(-1),
                            grad, state)
        return loss

    def update(self, kernels, group, param, grad, state):
        raise NotImplementedError

    @staticmethod
    def _buffer(state, name, like, fill=0.0):
        if name not in state:
            state[name] = np.full_like(like, fill)
        elif isinstance(state[name], CudaArray) != isinstance(like, CudaArray):
            # the model moved (model.to(...)) after this state was made: the state follows it
            state[name] = to_device(state[name], "cuda" if isinstance(like, CudaArray) else "cpu")
        return state[name]

    # ------------------------------------------------------------ state
    def _ordered_params(self):
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self):
        """{'state': {index: {name: array or number}}, 'param_groups': [{hyperparameters,
        'params': [indices]}]}: parameters by their position, as torch.optim."""
        index = {id(p): i for i, p in enumerate(self._ordered_params())}
        state = {index[key]: {k: (np.array(to_host(v), copy=True)
                                  if isinstance(v, (np.ndarray, CudaArray)) else v)
                              for k, v in entries.items()}
                 for key, entries in self.state.items() if key in index}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and state; everything is checked (``check_state_dict``)
        before anything changes."""
        groups, state = self.check_state_dict(state_dict)
        for saved, own in zip(groups, self.param_groups):
            own.update(saved)
        self.state = state

    def check_state_dict(self, state_dict):
        """([hyperparameters per group], {id(param): state}) that ``state_dict`` restores.

        ValueError (TypeError for a wrong type) naming the group, parameter index or state entry
        unless it matches this optimizer exactly: as many groups, each listing the same parameter
        indices, the same hyperparameter names with values in their domain, and per-parameter
        state only of the names this optimizer keeps, with arrays the parameter's size.
        """
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            got = (sorted(map(str, state_dict)) if isinstance(state_dict, dict)
                   else type(state_dict).__name__)
            raise ValueError(f"{name}: expected a dict with keys 'param_groups' and 'state', "
                             f"got {got}")
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(saved_groups, (list, tuple)) or len(saved_groups) != len(self.param_groups):
            count = len(saved_groups) if isinstance(saved_groups, (list, tuple)) else saved_groups
            raise ValueError(f"{name}: the state has {count!r:.100} parameter groups, the "
                             f"optimizer {len(self.param_groups)}")
        groups, first = [], 0
        for g, (saved, own) in enumerate(zip(saved_groups, self.param_groups)):
            indices = list(range(first, first + len(own["params"])))
            first += len(own["params"])
            if not isinstance(saved, dict) or set(saved) != set(own):
                keys = sorted(map(str, saved)) if isinstance(saved, dict) else type(saved).__name__
                raise ValueError(f"{name}: group {g} of the state has keys {keys}, the optimizer "
                                 f"{sorted(own)}")
            if saved["params"] != indices:
                raise ValueError(f"{name}: group {g} of the state lists parameters "
                                 f"{saved['params']!r:.200}, the optimizer's are {indices}")
            values = {k: tuple(v) if isinstance(own[k], tuple) and isinstance(v, list) else v
                      for k, v in saved.items() if k != "params"}
            self.check_hyperparameters({**own, **values})
            groups.append(values)
        if not isinstance(saved_state, dict):
            raise ValueError(f"{name}: 'state' must be a dict, got {type(saved_state).__name__}")
        params = self._ordered_params()
        state = {}
        for index, entries in saved_state.items():
            if (isinstance(index, bool) or not isinstance(index, numbers.Integral)
                    or not 0 <= index < len(params)):
                raise ValueError(f"{name}: state for parameter {index!r}, but the optimizer has "
                                 f"parameters 0 to {len(params) - 1}")
            if not isinstance(entries, dict):
                raise ValueError(f"{name}: the state of parameter {index} is a "
                                 f"{type(entries).__name__}, not a dict")
            param = params[index]
            state[id(param)] = {key: self._check_state_entry(name, index, param, key, value)
                                for key, value in entries.items()}
        return groups, state

    def state_kind(self, key):
        """How state ``key`` is kept: 'buffer', 'counter', 'scalar' (the class attributes above)
        or None (not kept)."""
        for kind, keys in (("buffer", self.state_buffers), ("counter", self.state_counters),
                           ("scalar", self.state_scalars)):
            if key in keys:
                return kind
        return None

    def _check_state_entry(self, name, index, param, key, value):
        """The value to keep for state ``key`` of parameter ``index``, after its checks."""
        kind = self.state_kind(key)
        if kind == "buffer":
            if (not isinstance(value, np.ndarray) or value.dtype.kind not in "iuf"
                    or value.size != param.array.size or value.ndim == 0):
                shape = value.shape if isinstance(value, np.ndarray) else type(value).__name__
                raise ValueError(f"{name}: state {key!r} of parameter {index} must be a real array "
                                 f"of {param.array.size} entries, got "
                                 f"{getattr(value, 'dtype', '')} {shape}")
            return to_device(np.array(value.reshape(-1), dtype=param.dtype, copy=True),
                             param.device)
        if kind == "counter":
            if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "iu":
                value = value.item()
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"{name}: state {key!r} of parameter {index} must be an integer "
                                 f">= 0, got {value!r:.100}")
            return int(value)
        if kind == "scalar":
            if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "iuf":
                value = value.item()
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"{name}: state {key!r} of parameter {index} must be a number, "
                                 f"got {value!r:.100}")
            return float(value)
        kept = self.state_buffers + self.state_counters + self.state_scalars
        raise ValueError(f"{name}: parameter {index} has state {key!r}, which "
                         f"{type(self).__name__} does not keep (it keeps "
                         f"{', '.join(kept) or 'none'})")

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])
