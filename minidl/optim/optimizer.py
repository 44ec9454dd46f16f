"""Optimizer: parameter groups, per-parameter state, and state_dict as torch.optim has them.

Subclasses implement ``update(group, param, grad, state)`` on flat arrays; the arithmetic is a
kernel of the parameter's device (``kernels/<device>/optim.py``).
"""
import numpy as np

from ..device import like, to_device, to_host
from ..function import no_grad
from ..kernels.cuda.array import CudaArray
from ..kernels import for_device


class Optimizer:
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
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            for param in group["params"]:
                if set_to_none:
                    param.grad = None
                elif param.grad is not None:
                    param.grad.data[...] = 0

    @no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns closure() if given."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if not param.data.flags.c_contiguous:
                    param.data = np.ascontiguousarray(param.data, like=like(param.data))
                grad = np.ascontiguousarray(param.grad.data, dtype=param.dtype,
                                            like=like(param.grad.data)).reshape(-1)
                state = self.state.setdefault(id(param), {})
                self.update(for_device(param.device, "optim"), group, param.data.reshape(-1),
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
        """Restore hyperparameters and state; checks group and parameter counts and shapes first."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state has {len(groups)} "
                             f"parameter groups, the optimizer {len(self.param_groups)}")
        for saved, own in zip(groups, self.param_groups):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(f"{type(self).__name__}.load_state_dict: a group holds "
                                 f"{len(saved['params'])} parameters in the state and "
                                 f"{len(own['params'])} in the optimizer")
        params = self._ordered_params()
        new_state = {}
        for index, entries in state_dict["state"].items():
            param = params[int(index)]
            restored = {}
            for name, value in entries.items():
                if isinstance(value, np.ndarray) and value.ndim:
                    if value.size != param.data.size:
                        raise ValueError(f"{type(self).__name__}.load_state_dict: state {name!r} of "
                                         f"parameter {index} has {value.size} entries, the "
                                         f"parameter {param.data.size}")
                    value = to_device(np.array(value.reshape(-1), dtype=param.dtype, copy=True),
                                      param.device)
                elif isinstance(value, np.ndarray):
                    value = value.item()
                restored[name] = value
            new_state[id(param)] = restored
        for saved, own in zip(groups, self.param_groups):
            own.update({k: v for k, v in saved.items() if k != "params"})
        self.state = new_state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])
