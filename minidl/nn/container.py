"""Containers with PyTorch's names and state_dict keys: Sequential, ModuleList, ModuleDict,
ParameterList, ParameterDict.

A list container registers its i-th entry under the name ``str(i)`` (so a ModuleList assigned
to ``self.layers`` gives keys ``layers.0.weight``, a ParameterList ``params.0``); inserting or
deleting renumbers the entries after it, as PyTorch does. A dict container registers each entry
under its key.
"""
import operator
from collections import OrderedDict

from ..tensor import Tensor
from .activation import ReLU
from .module import Module
from .parameter import Parameter
from .pooling import MaxPool2d


def _pools_first(module, after):
    """Whether ``module`` is a ReLU and ``after`` a MaxPool2d that Sequential may swap: exact
    types (a subclass may change either) and no hooks on either."""
    return (type(module) is ReLU and type(after) is MaxPool2d
            and not any(m._forward_hooks or m._forward_pre_hooks for m in (module, after)))


def _index(container, index):
    """``index`` (an int, negative counting from the end) as a position in 0..len-1."""
    index = operator.index(index)
    size = len(container)
    if not -size <= index < size:
        raise IndexError(f"{type(container).__name__}: index {index} is out of range for "
                         f"{size} entries")
    return index % size


def _renumber(container, modules):
    """Register ``modules`` in ``container`` as entries "0".."n-1", replacing the current ones."""
    container._modules.clear()
    for index, module in enumerate(modules):
        container.add_module(str(index), module)


def _set_pairs(container, pairs, value_name):
    """container[key] = value for each (key, value) of ``pairs``; an entry of another length is
    a ValueError naming the container."""
    for entry in pairs:
        if len(entry) != 2:
            raise ValueError(f"{type(container).__name__}.update: expected (key, {value_name}) "
                             f"pairs, got an entry of length {len(entry)}")
        container[entry[0]] = entry[1]


class _ModuleSequence(Module):
    """What Sequential and ModuleList share: modules in registration order, ``len``,
    iteration over the modules, ``append`` as entry "n", deletion that renumbers."""

    def __delitem__(self, index):
        """Remove entries and renumber the rest "0".."n-1" (PyTorch does so even for named ones)."""
        modules = list(self._modules.values())
        del modules[index if isinstance(index, slice) else _index(self, index)]
        _renumber(self, modules)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self


class Sequential(_ModuleSequence):
    """Applies its modules in order: ``Sequential(Linear(4, 8), ReLU(), Linear(8, 2))``, or
    ``Sequential(OrderedDict([("fc", Linear(4, 8)), ("act", ReLU())]))`` to name them.

    A ReLU followed by a MaxPool2d runs as the pool and then the ReLU, on the pooled tensor
    (a quarter of the size for 2x2 windows): max(relu(x)) = relu(max(x)) because ReLU never
    decreases, so the values are the same bits, and so are the gradients (a window's winner
    gets dY where its maximum is positive, 0 elsewhere, in either order). FashionCNN's step at
    batch 64 spent 1.5 ms of 23 in its ReLUs. Either module with a hook runs as written.
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for index, module in enumerate(modules):
                self.add_module(str(index), module)

    def forward(self, input):
        modules = list(self._modules.values())
        position = 0
        while position < len(modules):
            module = modules[position]
            after = modules[position + 1] if position + 1 < len(modules) else None
            if _pools_first(module, after):
                input = module(after(input))
                position += 2
            else:
                input = module(input)
                position += 1
        return input

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(OrderedDict(list(self._modules.items())[index]))
        return list(self._modules.values())[_index(self, index)]

    def __setitem__(self, index, module):
        self.add_module(list(self._modules)[_index(self, index)], module)


class ModuleList(_ModuleSequence):
    """A list of modules, registered as "0", "1", ... so their parameters are found; it has no
    forward. ``append``, ``extend``, ``insert``, ``pop``, ``+=``, indexing and slicing (a slice
    is a new ModuleList of the same modules) as a Python list."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return type(self)(list(self._modules.values())[index])
        return self._modules[str(_index(self, index))]

    def __setitem__(self, index, module):
        self.add_module(str(_index(self, index)), module)

    def __iadd__(self, modules):
        return self.extend(modules)

    def __add__(self, other):
        return ModuleList(list(self) + list(other))

    def extend(self, modules):
        if isinstance(modules, (Module, str)) or not hasattr(modules, "__iter__"):
            raise TypeError(f"ModuleList.extend should be called with an iterable of modules, "
                            f"got {type(modules).__name__}")
        for module in modules:
            self.append(module)
        return self

    def insert(self, index, module):
        modules = list(self._modules.values())
        modules.insert(index, module)
        _renumber(self, modules)

    def pop(self, index=-1):
        module = self[index]
        del self[index]
        return module


class ModuleDict(Module):
    """An ordered dict of modules registered under their keys: ``ModuleDict({"conv": ...})``."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(key, module)

    def __delitem__(self, key):
        del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def clear(self):
        self._modules.clear()

    def pop(self, key):
        module = self[key]
        del self[key]
        return module

    def update(self, modules):
        """Add or replace entries from a mapping or an iterable of (key, module) pairs."""
        pairs = modules.items() if hasattr(modules, "items") else modules
        _set_pairs(self, pairs, "module")


def _as_parameter(value):
    """A Tensor that is not yet a Parameter becomes one (sharing its array), as in PyTorch."""
    if isinstance(value, Tensor) and not isinstance(value, Parameter):
        return Parameter(value, requires_grad=value.requires_grad)
    return value


class ParameterList(Module):
    """A list of Parameters registered as "0", "1", ... (state_dict keys ``params.0``); plain
    Tensors are wrapped in Parameters."""

    def __init__(self, values=None):
        super().__init__()
        if values is not None:
            self.extend(values)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return type(self)(list(self)[index])
        return getattr(self, str(_index(self, index)))

    def __setitem__(self, index, value):
        setattr(self, str(_index(self, index)), _as_parameter(value))

    def __len__(self):
        return self.__dict__.get("_size", 0)

    def __iter__(self):
        return (self[index] for index in range(len(self)))

    def __iadd__(self, values):
        return self.extend(values)

    def append(self, value):
        index = len(self)
        object.__setattr__(self, "_size", index + 1)
        setattr(self, str(index), _as_parameter(value))
        return self

    def extend(self, values):
        if isinstance(values, Tensor) or not hasattr(values, "__iter__"):
            raise TypeError(f"ParameterList.extend should be called with an iterable, "
                            f"got {type(values).__name__}")
        for value in values:
            self.append(value)
        return self

    def extra_repr(self):
        return "\n".join(f"({index}): Parameter containing: [{type(p).__name__} of size "
                         f"{tuple(p.shape)}]" for index, p in enumerate(self))


class ParameterDict(Module):
    """An ordered dict of Parameters registered under their keys (state_dict keys
    ``params.<key>``); plain Tensors are wrapped in Parameters."""

    def __init__(self, parameters=None):
        super().__init__()
        object.__setattr__(self, "_keys", [])
        if parameters is not None:
            self.update(parameters)

    def __getitem__(self, key):
        return getattr(self, key)

    def __setitem__(self, key, value):
        if not isinstance(key, str):
            raise TypeError(f"ParameterDict: keys must be strings, got {type(key).__name__}")
        if key not in self._keys:
            self._keys.append(key)
        setattr(self, key, _as_parameter(value))

    def __delitem__(self, key):
        self._keys.remove(key)
        delattr(self, key)

    def __len__(self):
        return len(self._keys)

    def __iter__(self):
        return iter(list(self._keys))

    def __contains__(self, key):
        return key in self._keys

    def keys(self):
        return list(self._keys)

    def items(self):
        return [(key, self[key]) for key in self._keys]

    def values(self):
        return [self[key] for key in self._keys]

    def pop(self, key):
        value = self[key]
        del self[key]
        return value

    def update(self, parameters):
        """Add or replace entries from a mapping or an iterable of (key, parameter) pairs. A plain
        dict is taken in sorted key order, an OrderedDict or ParameterDict in its own, as PyTorch."""
        if isinstance(parameters, (OrderedDict, ParameterDict)):
            pairs = list(parameters.items())
        elif hasattr(parameters, "items"):
            pairs = sorted(parameters.items())
        else:
            pairs = parameters
        _set_pairs(self, pairs, "parameter")

    def extra_repr(self):
        return "\n".join(f"({key}): Parameter containing: [{type(p).__name__} of size "
                         f"{tuple(p.shape)}]" for key, p in self.items())
