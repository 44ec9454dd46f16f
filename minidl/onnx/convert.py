"""Recorded Functions -> ONNX nodes: one converter per Function, and the graph they fill.

A converter ``convert(graph, call)`` reads the call's inputs and options and adds nodes whose
last output is ``call.output``'s value. ``Graph.value`` names any input: an earlier output, a
model input, a parameter or buffer (an initializer under its state_dict name), or a constant
made inside forward (an initializer of its own).
"""
from fractions import Fraction

import numpy as np

from .. import ops
from ..device import to_host
from ..nn.attention import MultiheadAttention
from ..nn.functional.activation import ELU, GELU, Hardtanh, Mish, SiLU, Softplus
from ..nn.functional.attention import ScaledDotProductAttention
from ..nn.functional.conv import Convolution, LocallyConnected, TiledConvolution
from ..nn.functional.conv_transpose import TransposedConvolution
from ..nn.functional.linear import Linear
from ..nn.functional.normalization import BatchNorm, GroupNorm, LayerNorm
from ..nn.functional.pooling import AvgPool, MaxPool, _windows
from ..nn.functional.recurrent import Embedding, GRULayer, LSTMLayer, RNNLayer
from ..nn.functional.sampling import Interpolate, Pad, _pad_index, _source_tables
from ..tensor import Tensor

INT64_MAX = np.iinfo(np.int64).max


class Graph:
    """The nodes, initializers and value names of the model being built."""

    def __init__(self, onnx, names, opset):
        self.onnx, self.names, self.opset = onnx, names, opset
        self.values = {}  # id(Tensor or array) -> value name
        self.keep = []  # the objects whose ids are keys of self.values stay alive
        self.nodes, self.initializers, self.used = [], {}, set()

    def unique(self, hint):
        name, k = hint, 0
        while name in self.used:
            k += 1
            name = f"{hint}_{k}"
        self.used.add(name)
        return name

    def bind(self, obj, name):
        self.values[id(obj)] = name
        self.keep.append(obj)
        if isinstance(obj, Tensor):
            self.values.setdefault(id(obj.array), name)
            self.keep.append(obj.array)

    def value(self, obj, dtype=None):
        """The value name of an input: traced, a parameter, or a new constant (Python scalars
        become constants of ``dtype``)."""
        if isinstance(obj, (int, float, bool, np.generic)):
            return self.constant(np.asarray(obj, dtype=dtype), "const")
        keys = (id(obj), id(obj.array)) if isinstance(obj, Tensor) else (id(obj),)
        for key in keys:
            if key in self.values:
                return self.values[key]
        hint = next((self.names[key] for key in keys if key in self.names), "const")
        name = self.constant(obj.array if isinstance(obj, Tensor) else obj, hint)
        self.bind(obj, name)
        return name

    def constant(self, array, hint):
        name = self.unique(hint)
        self.initializers[name] = self.onnx.numpy_helper.from_array(
            np.ascontiguousarray(to_host(array)), name)
        return name

    def ints(self, values, hint="shape"):
        return self.constant(np.asarray(values, dtype=np.int64), hint)

    def node(self, op_type, inputs, call, outputs=1, **attributes):
        """Add a node named after the call's module; returns its output name(s)."""
        scope = call.module[0] or "model"
        names = [self.unique(f"/{scope}/{op_type}_output") for _ in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(
            op_type, list(inputs), names, name=self.unique(f"/{scope}/{op_type}"), **attributes))
        return names[0] if outputs == 1 else names


def dtype_of(x):
    return x.dtype if hasattr(x, "dtype") else None


# ---------------------------------------------------------------- elementwise and shapes

def _binary(op_type):
    def convert(g, call):
        dtype = call.output.dtype
        names = []
        for x in call.inputs:
            name = g.value(x, dtype)
            if dtype_of(x) is not None and np.dtype(dtype_of(x)) != dtype:
                name = g.node("Cast", [name], call, to=_onnx_type(g, dtype))
            names.append(name)
        return g.node(op_type, names, call)
    return convert


def _unary(op_type, **fixed):
    def convert(g, call):
        return g.node(op_type, [g.value(call.inputs[0])], call, **fixed)
    return convert


def _onnx_type(g, dtype):
    return g.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _leaky_relu(g, call):
    return g.node("LeakyRelu", [g.value(call.inputs[0])], call,
                  alpha=float(call.options.get("negative_slope", 0.01)))


def _softmax(op_type):
    def convert(g, call):
        return g.node(op_type, [g.value(call.inputs[0])], call, axis=int(call.options.get("dim", -1)))
    return convert


def _clip(g, call):
    x = call.inputs[0]
    bounds = [("" if call.options.get(k) is None else g.value(float(call.options[k]), x.dtype))
              for k in ("min", "max")]
    return g.node("Clip", [g.value(x)] + bounds, call)


def _cast(g, call):
    return g.node("Cast", [g.value(call.inputs[0])], call, to=_onnx_type(g, call.options["dtype"]))


def _reshape(g, call):
    """Leading target sizes equal to the input's become 0 ("copy that axis"), so that a reshape
    such as flatten's (N, -1) follows a dynamic batch axis."""
    x, target = call.inputs[0], list(call.options["shape"])
    for axis, size in enumerate(target[:x.ndim]):
        if size != x.shape[axis]:
            break
        target[axis] = 0
    return g.node("Reshape", [g.value(x), g.ints(target)], call)


def _permute(g, call):
    return g.node("Transpose", [g.value(call.inputs[0])], call, perm=list(call.options["axes"]))


def _reduce(op_type):
    def convert(g, call):
        x, axis = call.inputs[0], call.options.get("axis")
        keepdims = int(bool(call.options.get("keepdims", False)))
        inputs, attributes = [g.value(x)], {"keepdims": keepdims}
        if axis is not None:
            axes = [int(a) for a in (axis if isinstance(axis, (tuple, list)) else (axis,))]
            if op_type == "ReduceSum" or g.opset >= 18:
                inputs.append(g.ints(axes, "axes"))
            else:
                attributes["axes"] = axes
        return g.node(op_type, inputs, call, **attributes)
    return convert


def _get_item(g, call):
    """Basic indexing (ints, slices, None, Ellipsis) as Slice, then Squeeze and Unsqueeze."""
    x, index = call.inputs[0], call.options["index"]
    parts = list(index) if isinstance(index, tuple) else [index]
    if not ops._is_basic_index(tuple(parts)):
        raise NotImplementedError(f"onnx.export: {call.layer()} indexes a tensor with {index!r}; only "
                                  "ints, slices, None and ... export")
    if Ellipsis in parts:
        at = parts.index(Ellipsis)
        used = sum(p is not None for p in parts) - 1
        parts[at:at + 1] = [slice(None)] * (x.ndim - used)
    starts, ends, axes, steps, squeeze, unsqueeze = [], [], [], [], [], []
    axis = out_axis = 0
    for part in parts:
        if part is None:
            unsqueeze.append(out_axis)
            out_axis += 1
            continue
        if isinstance(part, slice):
            if part != slice(None):
                step = 1 if part.step is None else int(part.step)
                starts.append((0 if step > 0 else -1) if part.start is None else int(part.start))
                ends.append((INT64_MAX if step > 0 else -INT64_MAX) if part.stop is None else int(part.stop))
                axes.append(axis)
                steps.append(step)
            out_axis += 1
        else:
            part = int(part)
            starts.append(part)
            ends.append(INT64_MAX if part == -1 else part + 1)
            axes.append(axis)
            steps.append(1)
            squeeze.append(axis)
        axis += 1
    name = g.value(x)
    if axes:
        name = g.node("Slice", [name, g.ints(starts, "starts"), g.ints(ends, "ends"),
                                g.ints(axes, "axes"), g.ints(steps, "steps")], call)
    if squeeze:
        name = g.node("Squeeze", [name, g.ints(squeeze, "axes")], call)
    if unsqueeze:
        name = g.node("Unsqueeze", [name, g.ints(unsqueeze, "axes")], call)
    if name == g.value(x):
        name = g.node("Identity", [name], call)
    return name


def _concatenate(g, call):
    return g.node("Concat", [g.value(x) for x in call.inputs], call, axis=int(call.options.get("axis", 0)))


def _stack(g, call):
    axis = int(call.options.get("axis", 0))
    rank = call.output.ndim
    axes = g.ints([axis % rank], "axes")
    parts = [g.node("Unsqueeze", [g.value(x), axes], call) for x in call.inputs]
    return g.node("Concat", parts, call, axis=axis % rank)


# ---------------------------------------------------------------- layers

def _linear(g, call):
    x, weight, bias = (list(call.inputs) + [None])[:3]
    if x.ndim == 2:
        inputs = [g.value(x), g.value(weight)] + ([g.value(bias)] if bias is not None else [])
        return g.node("Gemm", inputs, call, transB=1)
    y = g.node("MatMul", [g.value(x), g.node("Transpose", [g.value(weight)], call, perm=[1, 0])], call)
    return y if bias is None else g.node("Add", [y, g.value(bias)], call)


def _convolution(g, call):
    x, weight, bias = call.inputs
    o = call.options
    stride, padding, dilation = o["stride"], o["padding"], o["dilation"]
    if x.ndim == 3:  # conv1d runs as a height-1 conv2d: keep the width entries
        stride, padding, dilation = stride[1:], padding[1:], dilation[1:]
    inputs = [g.value(x), g.value(weight)] + ([g.value(bias)] if bias is not None else [])
    return g.node("Conv", inputs, call, kernel_shape=list(weight.shape[2:]), strides=list(stride),
                  pads=list(padding) * 2, dilations=list(dilation), group=int(o["groups"]))


def _window_geometry(call, size, windows):
    """(kernel, stride, padding) of fixed windows equal to ``windows`` ([lo, hi) per output)
    over an axis of ``size``; pooling Functions receive the windows, not the arguments."""
    lo, hi, out = windows[0], windows[1], len(windows[0])
    for pad in range(size + 1):
        # the first window is [0, kernel - pad), clipped to the input
        kernels = [int(hi[0]) + pad] if hi[0] < size else range(size + pad, size + 2 * pad + 1)
        for kernel in kernels:
            span = size + 2 * pad - kernel  # out - 1 = span // stride
            strides = [kernel] if out == 1 else range(span // out + 1, span // (out - 1) + 1)
            for stride in strides:
                l, h, _ = _windows(size, kernel, stride, pad, out)
                if np.array_equal(l, lo) and np.array_equal(h, hi):
                    return kernel, stride, pad
    raise NotImplementedError(f"onnx.export: {call.layer()} pools over windows that no fixed kernel, "
                              "stride and padding reproduce (adaptive pooling of uneven windows), "
                              "which ONNX's pooling operators cannot express")


def _pool(op_type):
    def convert(g, call):
        x, rows, cols = call.inputs[0], call.options["rows"], call.options["cols"]
        geometry = [_window_geometry(call, n, w) for n, w in zip(x.shape[2:], (rows, cols))]
        kernel, stride, pad = (list(v) for v in zip(*geometry))
        attributes = {"kernel_shape": kernel, "strides": stride, "pads": pad * 2}
        if op_type == "AveragePool":
            full = all(np.all(w[2] == k) for w, k in zip((rows, cols), kernel))
            attributes["count_include_pad"] = int(full)
            if not full and not all(np.array_equal(w[2], w[1] - w[0]) for w in (rows, cols)):
                raise NotImplementedError(f"onnx.export: {call.layer()} averages with window counts "
                                          "ONNX's AveragePool cannot express")
        return g.node(op_type, [g.value(x)], call, **attributes)
    return convert


def _batch_norm(g, call):
    x, weight, bias = call.inputs
    o = call.options
    if o["training"]:
        raise NotImplementedError(f"onnx.export: {call.layer()} normalises with batch statistics "
                                  "(track_running_stats=False); ONNX's BatchNormalization uses "
                                  "running statistics")
    channels = x.shape[1]
    scale = g.value(weight) if weight is not None else g.constant(np.ones(channels, x.dtype), "scale")
    shift = g.value(bias) if bias is not None else g.constant(np.zeros(channels, x.dtype), "bias")
    return g.node("BatchNormalization", [g.value(x), scale, shift, g.value(o["running_mean"]),
                                         g.value(o["running_var"])], call, epsilon=float(o["eps"]))


def _embedding(g, call):
    index, weight = call.inputs
    return g.node("Gather", [g.value(weight), g.value(index)], call, axis=0)


def _gates(array, order, hidden):
    """Reorder the stacked gate blocks of a PyTorch weight or bias into ONNX's order."""
    array = to_host(array.array if isinstance(array, Tensor) else array)
    return np.concatenate([array[k * hidden:(k + 1) * hidden] for k in order])


def _recurrent(op_type, order, **fixed):
    """RNNLayer / LSTMLayer / GRULayer (one layer, (T, N, I) -> (T, N, H)) as ONNX's RNN, LSTM
    or GRU node with gates reordered (PyTorch LSTM i f g o -> ONNX i o f c, GRU r z n -> z r h)."""
    def convert(g, call):
        lstm = op_type == "LSTM"
        x, states, (w_ih, w_hh, b_ih, b_hh) = call.inputs[0], call.inputs[1:3 if lstm else 2], call.inputs[-4:]
        hidden = w_hh.shape[1]
        name = g.names.get(id(w_ih), "weight").replace("weight_ih", "{}")
        bias = np.concatenate([_gates(b, order, hidden) if b is not None
                               else np.zeros(len(order) * hidden, w_ih.dtype) for b in (b_ih, b_hh)])
        inputs = [g.value(x),
                  g.constant(_gates(w_ih, order, hidden)[None], name.format("W")),
                  g.constant(_gates(w_hh, order, hidden)[None], name.format("R")),
                  g.constant(bias[None], name.format("B")), ""]
        for state in states:  # absent (hx=None) or untraced all-zero states are ONNX's default: leave them out
            if state is None or (g.values.get(id(state)) is None and not isinstance(state, Tensor)
                                 and not np.any(to_host(state))):
                inputs.append("")
            else:
                inputs.append(g.node("Unsqueeze", [g.value(state), g.ints([0], "axes")], call))
        while inputs[-1] == "":
            inputs.pop()
        attributes = dict(fixed, hidden_size=int(hidden))
        if op_type == "RNN":
            attributes["activations"] = ["Relu" if call.options.get("relu") else "Tanh"]
        outputs = g.node(op_type, inputs, call, outputs=3 if lstm else 2, **attributes)
        y = g.node("Squeeze", [outputs[0], g.ints([1], "axes")], call)
        return g.node("Concat", [y, outputs[2]], call, axis=0) if lstm else y
    return convert


# ---------------------------------------------------------------- activations of recent models

def _softplus_of(g, call, x, name):
    """log(1 + e^(beta x)) / beta, and x where beta x > threshold (PyTorch's Softplus), on the
    value ``name`` of x; beta and threshold from the call's options (1 and 20 by default)."""
    beta, threshold = call.options.get("beta", 1.0), call.options.get("threshold", 20.0)
    z = name if beta == 1.0 else g.node("Mul", [name, g.value(beta, x.dtype)], call)
    y = g.node("Softplus", [z], call)
    if beta != 1.0:
        y = g.node("Div", [y, g.value(beta, x.dtype)], call)
    above = g.node("Greater", [z, g.value(threshold, x.dtype)], call)
    return g.node("Where", [above, name, y], call)


def _gelu(g, call):
    """Gelu (opset 20), else x Phi(x) from Erf: 0.5 x (1 + erf(x / sqrt 2)), or the tanh form
    0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))."""
    x, tanh = call.inputs[0], call.options["approximate_tanh"]
    name = g.value(x)
    if g.opset >= 20:
        return g.node("Gelu", [name], call, approximate="tanh" if tanh else "none")
    if tanh:
        cube = g.node("Mul", [g.node("Mul", [name, name], call), name], call)
        inner = g.node("Add", [name, g.node("Mul", [cube, g.value(0.044715, x.dtype)], call)], call)
        phi = g.node("Tanh", [g.node("Mul", [inner, g.value(np.sqrt(2 / np.pi), x.dtype)], call)], call)
    else:
        phi = g.node("Erf", [g.node("Mul", [name, g.value(np.sqrt(0.5), x.dtype)], call)], call)
    half_x = g.node("Mul", [name, g.value(0.5, x.dtype)], call)
    return g.node("Mul", [half_x, g.node("Add", [phi, g.value(1.0, x.dtype)], call)], call)


def _silu(g, call):
    name = g.value(call.inputs[0])
    return g.node("Mul", [name, g.node("Sigmoid", [name], call)], call)


def _mish(g, call):
    """x tanh(softplus(x)) (Mish is an operator from opset 18)."""
    x = call.inputs[0]
    name = g.value(x)
    if g.opset >= 18:
        return g.node("Mish", [name], call)
    return g.node("Mul", [name, g.node("Tanh", [_softplus_of(g, call, x, name)], call)], call)


def _hardtanh(g, call):
    x = call.inputs[0]
    return g.node("Clip", [g.value(x), g.value(float(call.options["min_val"]), x.dtype),
                           g.value(float(call.options["max_val"]), x.dtype)], call)


# ---------------------------------------------------------------- normalisation and attention

def _layer_norm(g, call):
    x, weight, bias = call.inputs
    shape = call.options["normalized_shape"]
    if g.opset < 17:
        raise NotImplementedError(f"onnx.export: {call.layer()} needs LayerNormalization, an "
                                  "operator of opset 17: export with opset_version=17 or later")
    scale = g.value(weight) if weight is not None else g.constant(np.ones(shape, x.dtype), "scale")
    inputs = [g.value(x), scale] + ([g.value(bias)] if bias is not None else [])
    return g.node("LayerNormalization", inputs, call, axis=-len(shape), epsilon=float(call.options["eps"]))


def _group_norm(g, call):
    """x (N, C, *) as (N, G, M), LayerNormalization over M (the group's statistics), back to x's
    shape, then the per-channel weight and bias (GroupNormalization of opset 18 takes them per
    group, of opset 21 per channel: this form runs on any runtime of opset 17)."""
    x, weight, bias = call.inputs
    groups, channels = call.options["num_groups"], x.shape[1]
    if g.opset < 17:
        raise NotImplementedError(f"onnx.export: {call.layer()} is exported through LayerNormalization, "
                                  "an operator of opset 17: export with opset_version=17 or later")
    count = int(np.prod(x.shape[1:])) // groups
    name = g.value(x)
    blocks = g.node("Reshape", [name, g.ints([0, groups, count])], call)
    normal = g.node("LayerNormalization", [blocks, g.constant(np.ones(count, x.dtype), "scale")], call,
                    axis=-1, epsilon=float(call.options["eps"]))
    y = g.node("Reshape", [normal, g.node("Shape", [name], call)], call)
    per_channel = [channels] + [1] * (x.ndim - 2)
    if weight is not None:
        y = g.node("Mul", [y, g.node("Reshape", [g.value(weight), g.ints(per_channel)], call)], call)
    if bias is not None:
        y = g.node("Add", [y, g.node("Reshape", [g.value(bias), g.ints(per_channel)], call)], call)
    return y


def _attention(g, call):
    """softmax(c Q K^T + M) V as MatMul, Mul, Add, Softmax, MatMul (is_causal: M = -inf above
    the diagonal). Dropout is off in eval."""
    q, k, v, mask = call.inputs
    queries, keys = q.shape[-2], k.shape[-2]
    perm = list(range(k.ndim - 2)) + [k.ndim - 1, k.ndim - 2]
    scaled = g.node("Mul", [g.value(q), g.value(float(call.options["scale"]), q.dtype)], call)
    scores = g.node("MatMul", [scaled, g.node("Transpose", [g.value(k)], call, perm=perm)], call)
    if call.options["causal"]:
        causal = np.where(np.triu(np.ones((queries, keys), bool), 1), -np.inf, 0).astype(q.dtype)
        scores = g.node("Add", [scores, g.constant(causal, "causal_mask")], call)
    if mask is not None:
        scores = g.node("Add", [scores, g.value(mask)], call)
    return g.node("MatMul", [g.node("Softmax", [scores], call, axis=-1), g.value(v)], call)


# ---------------------------------------------------------------- transposed convolution, resampling

def _conv_transpose(g, call):
    x, weight, bias = call.inputs
    o = call.options
    axes = slice(2 - (x.ndim - 2), None)  # conv_transpose1d keeps the width entries
    stride, padding = list(o["stride"][axes]), list(o["padding"][axes])
    inputs = [g.value(x), g.value(weight)] + ([g.value(bias)] if bias is not None else [])
    return g.node("ConvTranspose", inputs, call, kernel_shape=list(weight.shape[2:]), strides=stride,
                  pads=padding * 2, output_padding=list(o["output_padding"][axes]),
                  dilations=list(o["dilation"][axes]), group=int(o["groups"]))


def _scale_of(size, out, mode, align, table, dtype):
    """The scale factor (out / in) whose source positions are ``table`` on an axis of ``size``:
    that of the output size, else (linear, half pixel: a scale_factor PyTorch keeps although
    floor(size * factor) rounded the output) the one read off the last interpolated position,
    as a fraction of small denominator; None when neither gives the table."""
    i0, i1, a = table
    guesses = [None]
    inside = np.flatnonzero(i1 > i0)
    if mode == "linear" and not align and inside.size:
        i = inside[-1]
        guesses.append(float(Fraction((i + 0.5) / (i0[i] + a[i] + 0.5)).limit_denominator(64)))
    for factor in guesses:
        if all(np.allclose(u, w, atol=1e-6)
               for u, w in zip(_source_tables(size, out, mode, align, factor, dtype), table)):
            return out / size if factor is None else factor
    return None


def _interpolate(g, call):
    """Resize with the mode and coordinate rule whose source positions equal the traced tables:
    nearest (asymmetric, floor), linear with align_corners, or linear pytorch_half_pixel; by
    scales per spatial axis (not sizes), so that the batch axis stays free."""
    x, tables = call.inputs[0], call.options["tables"][-(call.inputs[0].ndim - 2):]
    spatial, sizes = x.shape[2:], [len(t[0]) for t in tables]
    nearest = all(np.array_equal(i0, i1) and not np.any(a) for i0, i1, a in tables)
    for mode, align in [("nearest", False)] if nearest else [("linear", True), ("linear", False)]:
        factors = [_scale_of(n, out, mode, align, t, x.dtype) for n, out, t in zip(spatial, sizes, tables)]
        if None not in factors:
            break
    else:
        raise NotImplementedError(f"onnx.export: {call.layer()} resamples at source positions that "
                                  "no Resize of a fixed scale reproduces")
    rule = "asymmetric" if nearest else "align_corners" if align else "pytorch_half_pixel"
    extra = {"nearest_mode": "floor"} if nearest else {}
    scales = g.constant(np.asarray([1, 1] + factors, np.float32), "scales")
    return g.node("Resize", [g.value(x), "", scales], call, mode=mode,
                  coordinate_transformation_mode=rule, **extra)


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}


def _pad_of(size, src):
    """(mode, before, after) whose ``_pad_index`` is ``src``; replicate before reflect (they agree
    on axes of size 1, where only edge padding is valid ONNX), circular last (exported as Gather)."""
    for mode in ("constant", "replicate", "reflect", "circular"):
        for before in range(-size, len(src) + 1):
            after = len(src) - size - before
            if (mode == "constant" or min(before, after) >= 0) and size + before + after >= 0:
                if np.array_equal(_pad_index(size, before, after, mode), src):
                    return mode, before, after
    raise AssertionError("a pad index table that no mode gives")


def _pad(g, call):
    """Pad (constant, reflect, edge); circular padding as a Gather of its source indices."""
    x, indices = call.inputs[0], call.options["indices"]
    found = [(axis,) + _pad_of(x.shape[axis], src) for axis, src in indices]
    modes = {mode for _, mode, _, _ in found if mode != "constant"} or {"constant"}
    name = g.value(x)
    if modes == {"circular"}:
        for axis, src in indices:
            name = g.node("Gather", [name, g.ints(src, "indices")], call, axis=axis)
        return name
    pads = [0] * (2 * x.ndim)
    for axis, _, before, after in found:
        pads[axis], pads[x.ndim + axis] = before, after
    (mode,) = modes
    inputs = [name, g.ints(pads, "pads")]
    if mode == "constant":
        inputs.append(g.value(float(call.options["value"]), x.dtype))
    return g.node("Pad", inputs, call, mode=_PAD_MODES[mode])


def _no_onnx_operator(g, call):
    raise NotImplementedError(f"onnx.export: {call.layer()} runs {call.function.__name__}, which has "
                              "no ONNX operator (tiled and locally connected convolutions share "
                              "weights differently from Conv); it cannot be exported")


CONVERTERS = {
    ops.Add: _binary("Add"), ops.Sub: _binary("Sub"), ops.Mul: _binary("Mul"),
    ops.Div: _binary("Div"), ops.Pow: _binary("Pow"), ops.MatMul: _binary("MatMul"),
    ops.Neg: _unary("Neg"), ops.Exp: _unary("Exp"), ops.Log: _unary("Log"),
    ops.Sqrt: _unary("Sqrt"), ops.Abs: _unary("Abs"), ops.Clip: _clip,
    ops.ReLU: _unary("Relu"), ops.LeakyReLU: _leaky_relu, ops.Sigmoid: _unary("Sigmoid"),
    ops.Tanh: _unary("Tanh"), ops.Softmax: _softmax("Softmax"), ops.LogSoftmax: _softmax("LogSoftmax"),
    ops.Sum: _reduce("ReduceSum"), ops.Mean: _reduce("ReduceMean"), ops.Max: _reduce("ReduceMax"),
    ops.Cast: _cast, ops.Reshape: _reshape, ops.Permute: _permute, ops.GetItem: _get_item,
    ops.Concatenate: _concatenate, ops.Stack: _stack,
    Linear: _linear, Convolution: _convolution,
    TiledConvolution: _no_onnx_operator, LocallyConnected: _no_onnx_operator,
    MaxPool: _pool("MaxPool"), AvgPool: _pool("AveragePool"),
    BatchNorm: _batch_norm, Embedding: _embedding,
    GELU: _gelu, SiLU: _silu, ELU: lambda g, call: g.node("Elu", [g.value(call.inputs[0])], call,
                                                          alpha=float(call.options["alpha"])),
    Softplus: lambda g, call: _softplus_of(g, call, call.inputs[0], g.value(call.inputs[0])),
    Mish: _mish, Hardtanh: _hardtanh,
    LayerNorm: _layer_norm, GroupNorm: _group_norm, ScaledDotProductAttention: _attention,
    TransposedConvolution: _conv_transpose, Interpolate: _interpolate, Pad: _pad,
    RNNLayer: _recurrent("RNN", (0,)),
    LSTMLayer: _recurrent("LSTM", (0, 3, 1, 2)),
    GRULayer: _recurrent("GRU", (1, 0, 2), linear_before_reset=1),
}


# ---------------------------------------------------------------- the model

def _axes_of(dynamic_axes, name):
    """{axis: label} from PyTorch's dynamic_axes entry ({axis: label} or [axis, ...])."""
    entry = dynamic_axes.get(name, {})
    return dict(entry) if isinstance(entry, dict) else {int(a): f"{name}_dim_{a}" for a in entry}


def _value_info(g, name, t, dynamic_axes):
    axes = _axes_of(dynamic_axes, name)
    shape = [axes.get(a, axes.get(a - t.ndim, n)) for a, n in enumerate(t.shape)]
    return g.onnx.helper.make_tensor_value_info(name, _onnx_type(g, t.dtype), shape)


def _names(given, count, default, what):
    if given is None:
        return [default if count == 1 else f"{default}_{k}" for k in range(count)]
    given = list(given)
    if len(given) != count:
        raise ValueError(f"onnx.export: {len(given)} {what}_names for {count} {what}s")
    return given


def build_model(onnx, inputs, outputs, calls, names, input_names, output_names, dynamic_axes, opset):
    """The ModelProto of the traced calls (see the module docstring)."""
    g = Graph(onnx, names, opset)
    input_names = _names(input_names, len(inputs), "input", "input")
    output_names = _names(output_names, len(outputs), "output", "output")
    unknown = set(dynamic_axes) - set(input_names) - set(output_names)
    if unknown:
        raise ValueError(f"onnx.export: dynamic_axes names {sorted(unknown)}, which are neither "
                         f"inputs {input_names} nor outputs {output_names}")
    for name, x in zip(input_names, inputs):
        g.used.add(name)
        g.bind(x, name)
    for call in calls:
        if isinstance(call.module[1], MultiheadAttention) and any(
                isinstance(x, Tensor) and id(x) not in g.values and id(x) not in names for x in call.inputs):
            raise NotImplementedError(f"onnx.export: {call.layer()} returns attention weights, which it "
                                      "computes outside the recorded operations: call it with "
                                      "need_weights=False to export it")
        converter = CONVERTERS.get(call.function)
        if converter is None:
            raise NotImplementedError(f"onnx.export: {call.layer()} runs {call.function.__name__}, "
                                      "which minidl cannot export to ONNX yet")
        g.bind(call.output, converter(g, call))
    rename = {}
    for name, y in zip(output_names, outputs):
        if not any(key in g.values or key in names for key in (id(y), id(y.array))):
            raise NotImplementedError(f"onnx.export: output {name!r} is not computed by an operation "
                                      "minidl records")
        source = g.value(y)
        if source in input_names or source in g.initializers or source in rename:
            g.nodes.append(onnx.helper.make_node("Identity", [source], [name], name=g.unique(f"/{name}")))
        else:
            rename[source] = name
    for node in g.nodes:
        for field in (node.input, node.output):
            for k, value in enumerate(field):
                field[k] = rename.get(value, value)
    graph = onnx.helper.make_graph(
        g.nodes, "minidl", [_value_info(g, n, x, dynamic_axes) for n, x in zip(input_names, inputs)],
        [_value_info(g, n, y, dynamic_axes) for n, y in zip(output_names, outputs)],
        list(g.initializers.values()))
    opsets = [onnx.helper.make_opsetid("", opset)]
    # the oldest IR version that carries this opset, so that older runtimes read the file
    return onnx.helper.make_model(graph, producer_name="minidl", opset_imports=opsets,
                                  ir_version=onnx.helper.find_min_ir_version_for(opsets))
