"""Record the Functions a model's forward runs: what ``minidl.onnx.export`` converts."""
import contextlib

from ..function import Function, no_grad
from ..tensor import Tensor, tensor


class Call:
    """One ``Function.apply``: the Function, its positional inputs (Tensors, arrays, scalars,
    None), its keyword options, its output Tensor and the dotted name of the innermost module
    that ran it ("" for the model itself)."""

    __slots__ = ("function", "inputs", "options", "output", "module")

    def __init__(self, function, inputs, options, output, module):
        self.function, self.inputs, self.options = function, inputs, options
        self.output, self.module = output, module

    def layer(self):
        """How an error names where this call came from: "layer 'features.0' (Conv2d)"."""
        name, module = self.module
        return f"layer {name!r} ({type(module).__name__})" if name else f"the model ({type(module).__name__})"


@contextlib.contextmanager
def _recording(model):
    """Within the block every ``Function.apply`` is appended to the yielded list."""
    calls, stack, handles = [], [], []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(
            lambda module, args, name=name: stack.append((name, module))))
        handles.append(module.register_forward_hook(lambda module, args, output: stack.pop()))
    original = Function.__dict__["apply"]

    def apply(cls, *inputs, **options):
        output = original.__func__(cls, *inputs, **options)
        calls.append(Call(cls, inputs, options, output, stack[-1] if stack else ("", model)))
        return output

    Function.apply = classmethod(apply)
    try:
        yield calls
    finally:
        Function.apply = original
        for handle in handles:
            handle.remove()


def trace(model, example_input):
    """Run ``model`` once in eval mode on ``example_input`` (a Tensor, array, or a tuple of
    them). Returns (input Tensors, output Tensors, the recorded Calls, {id: state_dict name}
    of every parameter and buffer and of their arrays)."""
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    inputs = tuple(x if isinstance(x, Tensor) else tensor(x) for x in inputs)
    names = {}
    for name, value in list(model.named_parameters()) + list(model.named_buffers()):
        names[id(value)] = names[id(value.array)] = name
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with no_grad(), _recording(model) as calls:
            outputs = model(*inputs)
    finally:
        for module, training in modes:
            object.__setattr__(module, "training", training)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    flat = []
    for output in outputs:  # an LSTM's (output, (h_n, c_n)) flattens to three outputs
        flat.extend(output if isinstance(output, tuple) else (output,))
    if not all(isinstance(output, Tensor) for output in flat):
        raise TypeError(f"onnx.export: the model must return Tensors or tuples of them, got "
                        f"{', '.join(type(o).__name__ for o in flat)}")
    return inputs, tuple(flat), calls, names
