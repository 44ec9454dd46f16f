"""Module: the base of every layer and model.

Assigning a Parameter, a Module or (with ``register_buffer``) a persistent array to an
attribute registers it, so ``parameters()``, ``state_dict()``, ``to()`` and ``train()``
reach every part of a nested model without the model listing them.
"""
from collections import OrderedDict

import numpy as np

from ..device import Device, to_device, to_host
from ..tensor import Tensor
from .parameter import Parameter


class _HookHandle:
    def __init__(self, hooks, hook):
        self.hooks, self.key = hooks, id(hook)
        hooks[self.key] = hook

    def remove(self):
        self.hooks.pop(self.key, None)


class Module:
    """Base class for layers and models; subclasses define ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() (call super().__init__() first)")
        for table in (self._parameters, self._modules, self._buffers):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self.__dict__.get("_buffer_names", ()):
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        for table in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(table)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        if param is None:
            self._parameters.pop(name, None)
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, param)

    def register_buffer(self, name, tensor, persistent=True):
        """A Tensor that is state but not learnable (BatchNorm's running statistics)."""
        names = self.__dict__.setdefault("_buffer_names", set())
        names.add(name)
        if not persistent:
            self.__dict__.setdefault("_non_persistent", set()).add(name)
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor

    def add_module(self, name, module):
        setattr(self, name, module)

    # ------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        for hook in list(self._forward_pre_hooks.values()):
            hook(self, args)
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            hook(self, args, output)
        return output

    def register_forward_hook(self, hook):
        """Call ``hook(module, inputs, output)`` after every forward; returns a handle whose
        ``remove()`` unregisters it."""
        return _HookHandle(self._forward_hooks, hook)

    def register_forward_pre_hook(self, hook):
        """Call ``hook(module, inputs)`` before every forward; returns a removable handle."""
        return _HookHandle(self._forward_pre_hooks, hook)

    # ------------------------------------------------------------ traversal
    def named_modules(self, prefix=""):
        stack = [(prefix, self)]
        seen = set()
        while stack:
            name, module = stack.pop(0)
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            stack[0:0] = [(f"{name}.{n}" if name else n, m) for n, m in module._modules.items()
                          if m is not None]

    def get_submodule(self, target):
        """The module at dotted path ``target`` ("" is this module), as PyTorch's."""
        module = self
        for part in target.split(".") if target else ():
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(f"{type(module).__name__} has no submodule {part!r} (path {target!r})")
            module = child
        return module

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        for name, module in self._modules.items():
            if module is not None:
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def named_parameters(self, prefix="", recurse=True):
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, param in module._parameters.items():
                if param is None or id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self, recurse=True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix=""):
        for module_name, module in self.named_modules(prefix):
            for name, buf in module._buffers.items():
                if buf is not None:
                    yield (f"{module_name}.{name}" if module_name else name), buf

    def buffers(self):
        for _, buf in self.named_buffers():
            yield buf

    # ------------------------------------------------------------ modes and devices
    def train(self, mode=True):
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        for param in self.parameters():
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad.data[...] = 0

    def _apply(self, convert):
        """Replace every parameter's and buffer's array (and gradient) by ``convert(array)``."""
        for module in self.modules():
            for tensor in list(module._parameters.values()) + list(module._buffers.values()):
                if tensor is not None:
                    tensor.data = convert(tensor.data)
                    if tensor.grad is not None:
                        tensor.grad.data = convert(tensor.grad.data)
        return self

    def to(self, target=None, dtype=None):
        """``model.to("meta")``, ``model.to(minidl.float64)``: moves/casts parameters and buffers
        in place (the Parameter objects stay the same, so optimizers keep working)."""
        if target is not None and not isinstance(target, (str, Device)):
            target, dtype = None, target
        if target is not None:
            device = Device(target)
            self._apply(lambda a: to_device(a, device))
            for tensor in list(self.parameters()) + list(self.buffers()):
                tensor.device = device
                if tensor.grad is not None:
                    tensor.grad.device = device
        if dtype is not None:
            dtype = np.dtype(dtype)
            self._apply(lambda a: a.astype(dtype) if np.issubdtype(a.dtype, np.floating) else a)
        return self

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    # ------------------------------------------------------------ state
    def state_dict(self, prefix=""):
        """Ordered name -> numpy array (a copy) of every parameter and persistent buffer."""
        state = OrderedDict()
        for module_name, module in self.named_modules(prefix):
            skip = module.__dict__.get("_non_persistent", set())
            entries = list(module._parameters.items()) + [
                (n, b) for n, b in module._buffers.items() if n not in skip]
            for name, value in entries:
                if value is not None:
                    key = f"{module_name}.{name}" if module_name else name
                    state[key] = np.array(to_host(value.data), copy=True)
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into parameters and buffers by name.

        Shape mismatches always raise; with ``strict`` missing and unexpected keys raise too.
        Nothing is written unless every check passes. Returns (missing_keys, unexpected_keys).
        """
        if not (hasattr(state_dict, "keys") and hasattr(state_dict, "__getitem__")):
            raise TypeError(f"load_state_dict: expected a dict-like state_dict (name -> array), "
                            f"got {type(state_dict).__name__}")
        own = OrderedDict()
        for module_name, module in self.named_modules():
            skip = module.__dict__.get("_non_persistent", set())
            for name, value in list(module._parameters.items()) + list(module._buffers.items()):
                if value is not None and name not in skip:
                    own[f"{module_name}.{name}" if module_name else name] = value
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        for key, target in own.items():
            if key in state_dict:
                shape = np.shape(state_dict[key].data if isinstance(state_dict[key], Tensor)
                                 else state_dict[key])
                if shape != target.shape:
                    problems.append(f"size mismatch for {key}: checkpoint has shape {shape}, "
                                    f"model has {target.shape}")
        if strict:
            if missing:
                problems.append("missing keys: " + ", ".join(missing))
            if unexpected:
                problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n  "
                               + "\n  ".join(problems))
        for key, target in own.items():
            if key in state_dict:
                value = state_dict[key]
                value = to_host(value.data if isinstance(value, Tensor) else value)
                target.data = to_device(np.array(value, dtype=target.dtype, copy=True), target.device)
        return missing, unexpected

    # ------------------------------------------------------------ printing
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = []
        for name, module in self._modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        head = f"{type(self).__name__}(" + (f"\n  {extra}" if extra else "")
        return head + "\n" + "\n".join(lines) + "\n)"
