"""Module: the base of every layer and model.

Assigning a Parameter, a Module or (with ``register_buffer``) a persistent array to an
attribute registers it, so ``parameters()``, ``state_dict()``, ``to()`` and ``train()``
reach every part of a nested model without the model listing them.
"""
from collections import OrderedDict

import numpy as np

from ..device import Device, to_device, to_host
from ..tensor import RemovableHandle, Tensor
from .parameter import Parameter


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
                self.__dict__.get("_buffer_names", set()).discard(name)
                self.__dict__.get("_non_persistent", set()).discard(name)
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        if param is None:
            self._parameters.pop(name, None)
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, param)

    def register_buffer(self, name, tensor, persistent=True):
        """A Tensor that is state but not learnable (BatchNorm's running statistics). A
        non-persistent buffer moves with ``to()`` but stays out of ``state_dict()``; ``None``
        reserves the name."""
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"{type(self).__name__}.register_buffer: buffer name must be a non-empty "
                           f"string without '.', got {name!r}")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"{type(self).__name__}.register_buffer: cannot assign "
                            f"{type(tensor).__name__} to buffer {name!r} (a Tensor or None is required)")
        if name in self._parameters or name in self._modules:
            raise KeyError(f"{type(self).__name__}.register_buffer: attribute {name!r} already exists")
        names = self.__dict__.setdefault("_buffer_names", set())
        names.add(name)
        non_persistent = self.__dict__.setdefault("_non_persistent", set())
        if persistent:
            non_persistent.discard(name)
        else:
            non_persistent.add(name)
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}.add_module: {type(module).__name__} is not a Module "
                            f"(child {name!r})")
        if not isinstance(name, str) or "." in name:
            raise KeyError(f"{type(self).__name__}.add_module: module name must be a string without "
                           f"'.', got {name!r}")
        if module is None:
            self._modules[name] = None
        else:
            setattr(self, name, module)

    register_module = add_module

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
        return RemovableHandle(self._forward_hooks, hook)

    def register_forward_pre_hook(self, hook):
        """Call ``hook(module, inputs)`` before every forward; returns a removable handle."""
        return RemovableHandle(self._forward_pre_hooks, hook)

    # ------------------------------------------------------------ traversal
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """(dotted name, module) for this module and every descendant, depth first in
        registration order; a module reached twice is given once unless ``remove_duplicate``
        is False. ``memo``: a set of modules to skip (PyTorch's signature)."""
        stack = [(prefix, self)]
        seen = set() if memo is None else {id(m) for m in memo}
        while stack:
            name, module = stack.pop(0)
            if id(module) in seen:
                continue
            if remove_duplicate:
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

    def _named_members(self, table, prefix, recurse, remove_duplicate):
        """(dotted name, tensor) of one table ("_parameters" or "_buffers") of this module and,
        with ``recurse``, its descendants; a tensor shared by two modules is given once unless
        ``remove_duplicate`` is False."""
        seen = set()
        modules = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse
                   else [(prefix, self)])
        for module_name, module in modules:
            for name, tensor in getattr(module, table).items():
                if tensor is None or id(tensor) in seen:
                    continue
                if remove_duplicate:
                    seen.add(id(tensor))
                yield (f"{module_name}.{name}" if module_name else name), tensor

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, tensor) of every buffer, persistent or not (``state_dict`` keeps only
        the persistent ones)."""
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    def apply(self, fn):
        """Call ``fn(module)`` on every child (recursively, children first) and then on this
        module, as ``model.apply(init_weights)``; returns self."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------ modes and devices
    def train(self, mode=True):
        """Set training mode on this module and (through their own ``train``) its children."""
        if not isinstance(mode, (bool, np.bool_)):
            raise ValueError(f"{type(self).__name__}.train: training mode is expected to be a bool, "
                             f"got {type(mode).__name__}")
        mode = bool(mode)
        object.__setattr__(self, "training", mode)
        for module in self.children():
            module.train(mode)
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
                param.grad.array[...] = 0

    def _apply(self, convert):
        """Replace every parameter's and buffer's array (and gradient) by ``convert(array)``."""
        for module in self.modules():
            for tensor in list(module._parameters.values()) + list(module._buffers.values()):
                if tensor is not None:
                    tensor.array = convert(tensor.array)
                    if tensor.grad is not None:
                        tensor.grad.array = convert(tensor.grad.array)
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

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        """Move to the GPU (``device``: an index or "cuda:k"; the one GPU by default)."""
        if device is None:
            return self.to("cuda")
        return self.to(device if isinstance(device, (str, Device)) else f"cuda:{int(device)}")

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    # ------------------------------------------------------------ state
    def state_dict(self, prefix=""):
        """Ordered name -> numpy array (a copy) of every parameter and persistent buffer. A module
        reached by two paths is listed under both, as PyTorch does."""
        state = OrderedDict()
        for module_name, module in self.named_modules(prefix=prefix, remove_duplicate=False):
            skip = module.__dict__.get("_non_persistent", set())
            entries = list(module._parameters.items()) + [
                (n, b) for n, b in module._buffers.items() if n not in skip]
            for name, value in entries:
                if value is not None:
                    key = f"{module_name}.{name}" if module_name else name
                    state[key] = np.array(to_host(value.array), copy=True)
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
        for module_name, module in self.named_modules(remove_duplicate=False):
            skip = module.__dict__.get("_non_persistent", set())
            for name, value in list(module._parameters.items()) + list(module._buffers.items()):
                if value is not None and name not in skip:
                    own[f"{module_name}.{name}" if module_name else name] = value
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        for key, target in own.items():
            if key in state_dict:
                shape = np.shape(state_dict[key].array if isinstance(state_dict[key], Tensor)
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
                value = to_host(value.array if isinstance(value, Tensor) else value)
                target.array = to_device(np.array(value, dtype=target.dtype, copy=True), target.device)
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
