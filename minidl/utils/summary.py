"""``minidl.summary``: per-layer output shapes, parameter counts and multiply-accumulates.

By default the model runs on the meta device: shapes flow through every layer's own forward
(the same shape checks as on real data) while nothing is allocated or computed, so the
summary of a 1.8-billion-parameter network takes a few MB. A layer that cannot take its input
is named in the error, before any training starts.
"""
import copy

import numpy as np

from ..device import Device
from ..function import no_grad
from ..meta import MetaArray
from ..tensor import zeros


class LayerError(ValueError):
    """A layer failed on the shape it received during ``summary``."""


class ModelSummary:
    """Rows (name, type, depth, output shape, parameters, MACs) and totals; ``str()`` is the table."""

    def __init__(self, model, rows, input_shape, dtype):
        self.rows = rows
        params = list(model.parameters())
        self.total_params = sum(p.numel() for p in params)
        self.trainable_params = sum(p.numel() for p in params if p.requires_grad)
        self.non_trainable_params = self.total_params - self.trainable_params
        self.total_macs = sum(row["macs"] for row in rows if row["leaf"])
        itemsize = np.dtype(dtype).itemsize
        self.input_bytes = int(np.prod(input_shape)) * itemsize
        self.param_bytes = sum(p.numel() * p.dtype.itemsize for p in params)
        self.buffer_bytes = sum(b.numel() * b.dtype.itemsize for b in model.buffers())
        # what training keeps per step: each leaf layer's output and its gradient
        self.activation_bytes = 2 * sum(row["output_bytes"] for row in rows if row["leaf"])
        self.input_shape = tuple(input_shape)

    @property
    def total_bytes(self):
        return self.input_bytes + self.param_bytes + self.buffer_bytes + self.activation_bytes

    def __str__(self):
        header = f"{'Layer (type)':<44}{'Output Shape':<24}{'Param #':>16}{'Mult-Adds':>18}"
        rule = "=" * len(header)
        lines = [rule, header, rule]
        for row in self.rows:
            label = "  " * row["depth"] + (f"{row['name']} ({row['type']})" if row["name"] else row["type"])
            params = f"{row['params']:,}" if row["params"] else "--"
            macs = f"{row['macs']:,}" if row["macs"] else "--"
            lines.append(f"{label:<44}{str(list(row['output_shape'])):<24}{params:>16}{macs:>18}")
        mb = 1 / 2 ** 20
        lines += [rule,
                  f"Total params: {self.total_params:,}",
                  f"Trainable params: {self.trainable_params:,}",
                  f"Non-trainable params: {self.non_trainable_params:,}",
                  f"Total mult-adds: {self.total_macs:,}",
                  rule,
                  f"Input size (MB): {self.input_bytes * mb:,.2f}",
                  f"Forward/backward pass size (MB): {self.activation_bytes * mb:,.2f}",
                  f"Params size (MB): {(self.param_bytes + self.buffer_bytes) * mb:,.2f}",
                  f"Estimated total size (MB): {self.total_bytes * mb:,.2f}",
                  rule]
        return "\n".join(lines)

    __repr__ = __str__


def summary(model, input_size, dtype=np.float32, device="meta", batch_size=1, verbose=True):
    """Summarise ``model`` for inputs of shape ``(batch_size, *input_size)``; prints the table
    when ``verbose`` and returns a ModelSummary. ``device="meta"`` (default) allocates nothing;
    a model built on another device is summarised through a meta copy and left unchanged."""
    device = Device(device)
    subject = _on_device(model, device)
    names = {id(m): name for name, m in subject.named_modules()}
    rows, running = [], []

    def before(module, inputs):
        row = {"name": names.get(id(module), "?"), "type": type(module).__name__,
               "depth": names.get(id(module), "").count(".") + (1 if names.get(id(module)) else 0),
               "module": module, "leaf": not module._modules, "input_shape": _shape_of(inputs)}
        rows.append(row)
        running.append(row)

    def after(module, inputs, output):
        row = running.pop()
        row["output_shape"] = tuple(output.shape)
        row["output_bytes"] = int(np.prod(output.shape)) * output.dtype.itemsize
        row["params"] = sum(p.numel() for p in module.parameters())
        row["macs"] = int(np.prod(output.shape)) * getattr(module, "macs_per_output", 0)

    handles = [h for m in subject.modules()
               for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))]
    shape = (batch_size,) + tuple(int(n) for n in input_size)
    try:
        with no_grad():
            subject(zeros(shape, dtype=dtype, device=device))
    except (ValueError, IndexError, RuntimeError) as error:
        if not running:
            raise
        row = running[-1]
        raise LayerError(f"summary: layer {row['name'] or row['type']!r} ({row['module']!r}) "
                         f"cannot take its input of shape {row['input_shape']}: {error}") from error
    finally:
        for handle in handles:
            handle.remove()
    for row in rows:
        del row["module"]
    result = ModelSummary(subject, rows, shape, dtype)
    if verbose:
        print(result)
    return result


def _on_device(model, device):
    """``model`` itself when its tensors already live on ``device``; else a copy there whose
    arrays are not duplicated first (each is replaced while copying)."""
    tensors = list(model.parameters()) + list(model.buffers())
    if all(t.device == device for t in tensors):
        return model
    if device != "meta":
        raise ValueError(f"summary: the model lives on {tensors[0].device}; summarise it there or "
                         "on the meta device")
    memo = {id(t.array): MetaArray.like(t.array) for t in tensors}
    memo.update({id(t.grad): None for t in tensors if t.grad is not None})
    clone = copy.deepcopy(model, memo)
    for t in list(clone.parameters()) + list(clone.buffers()):
        t.device = device
    return clone


def _shape_of(inputs):
    shapes = [tuple(x.shape) for x in inputs if hasattr(x, "shape")]
    return shapes[0] if len(shapes) == 1 else shapes
