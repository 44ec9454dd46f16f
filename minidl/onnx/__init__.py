"""Export a model to ONNX: ``minidl.onnx.export(model, example_input, "model.onnx")``.

The call has the shape of ``torch.onnx.export``: ``input_names``, ``output_names``,
``dynamic_axes`` ({name: {axis: "label"}} or {name: [axis, ...]}) and ``opset_version``
(13 or later; 17 by default). It needs the ``onnx`` package, an optional extra
(``pip install 'minidl[export]'``, which also brings onnxruntime to run the file);
``import minidl`` never imports it.

How the graph is found (``trace.py``): the model runs forward once on the example input, in
eval mode and without a graph, while ``Function.apply`` is wrapped to record every operation
it runs: the Function, its inputs and its options (stride, axis, shape ...), and the module
it ran in. The autograd graph would not do: it keeps no options and exists only for inputs
that need gradients. Each recorded Function then becomes ONNX nodes (``convert.py``);
parameters and buffers become initializers under their state_dict names, and arrays made
inside ``forward`` become constants. So models with their own ``forward`` (residual sums,
reshapes, indexing) export as well as Sequentials. Python control flow is frozen at the traced
path, as in PyTorch's tracer.

Covered: Linear, Conv1d/Conv2d (stride, padding, dilation, groups), ConvTranspose1d/2d
(ConvTranspose), max and average pooling (1-d, 2-d, adaptive with equal windows), BatchNorm1d/2d
in eval, LayerNorm (LayerNormalization, opset 17), GroupNorm (LayerNormalization of the groups,
then the per-channel affine: GroupNormalization's scale is per group in opset 18, per channel
from 21), ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, LogSoftmax, GELU (Gelu from opset 20, else
from Erf or Tanh), SiLU, ELU, Softplus, Mish (Mish from opset 18), Hardtanh (Clip),
scaled_dot_product_attention (MatMul, Mul, Add, Softmax, MatMul) and so MultiheadAttention and
the Transformer layers through the operations they run (MultiheadAttention's averaged weights
are computed outside the recorded operations: export it with need_weights=False),
Upsample/interpolate (Resize), F.pad (Pad; circular padding as Gather), Flatten/reshape/
permute/basic indexing/concatenate/stack, Dropout (identity in eval), Embedding (Gather),
RNN/LSTM/GRU, elementwise arithmetic, matmul, sums, means and maxima. Tiled and locally
connected convolutions have no ONNX operator and are refused with an error naming the layer;
so is an output that no recorded operation computed.

Tracing swaps ``Function.apply`` for the duration of one forward: do not run other minidl
code in other threads meanwhile.
"""
from ..utils.serialization import atomic_write
from .convert import build_model
from .trace import trace


def _require_onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("minidl.onnx.export needs the onnx package: pip install 'minidl[export]' "
                          "(or pip install onnx onnxruntime)") from None
    return onnx


def export(model, example_input, path, input_names=None, output_names=None, dynamic_axes=None,
           opset_version=17):
    """Trace ``model`` on ``example_input`` (a Tensor, an array, or a tuple of them) and write
    the ONNX model to ``path`` (atomically). Returns the ``onnx.ModelProto``, checked by
    ``onnx.checker``. See the module docstring."""
    onnx = _require_onnx()
    if opset_version < 13:
        raise ValueError(f"onnx.export: opset_version {opset_version} is too old; minidl writes "
                         "opset 13 or later (Squeeze, Slice and ReduceSum take axes as inputs)")
    inputs, outputs, calls, names = trace(model, example_input)
    proto = build_model(onnx, inputs, outputs, calls, names, input_names, output_names,
                        dynamic_axes or {}, int(opset_version))
    onnx.checker.check_model(proto)
    with atomic_write(path, suffix=".onnx") as f:
        f.write(proto.SerializeToString())
    return proto
