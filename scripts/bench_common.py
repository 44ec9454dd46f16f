"""Timing helpers shared by the bench scripts: interleaved runs, runs alone in a process of their
own, medians, ratio tables."""
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np


def time_interleaved(candidates, repeats=5, warmup=1):
    """Median seconds of each callable in ``candidates`` (name -> fn), run in turns so that a
    noisy neighbour slows all of them alike."""
    return {name: statistics.median(values)
            for name, values in _interleaved_seconds(candidates, repeats, warmup).items()}


def _interleaved_seconds(candidates, repeats, warmup):
    """{name: seconds of each timed call} for ``time_interleaved``."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return samples


#: fresh interpreters per contestant, taken in turn (A, B, A, B), when timed alone: a noisy minute
#: of a shared machine then slows both libraries alike, as interleaving does within one process.
#: With one process each, the LSTM row alone read 1.37 (minidl 9.2 ms) and 0.99 (6.2 ms) in two
#: runs minutes apart; fresh processes of the same minidl code ran their first ten steps at 12 ms
#: in one case out of three, at 6.5-7 in the others.
ALONE_ROUNDS = 2


def time_contestants(factory, args, contestants, repeats=5, alone=False, warmup=1):
    """Median seconds of each contestant's step, from ``factory(*args, only=None)`` -> {name: step}.

    Interleaved (``time_interleaved``), or with ``alone`` each contestant in fresh interpreters of
    its own, ALONE_ROUNDS of them taken in turn with the other contestants', each built there by
    ``factory(*args, only=name)`` and timing its share of the ``repeats`` after ``warmup`` calls;
    the median is over all of them. No second library's thread pool runs beside it (PyTorch's
    OpenMP workers spin on for milliseconds after each of its ops and take a core from whatever
    runs next). ``factory`` is a module-level function of a bench script and ``args`` are JSON
    values."""
    if not alone:
        return time_interleaved(factory(*args), repeats, warmup)
    source = os.path.abspath(sys.modules[factory.__module__].__file__)
    samples = {who: [] for who in contestants}
    per_process = -(-repeats // ALONE_ROUNDS)
    for _ in range(ALONE_ROUNDS):
        for who in contestants:
            out = subprocess.run([sys.executable, os.path.abspath(__file__), source, factory.__name__,
                                  json.dumps(list(args)), who, str(per_process), str(warmup)],
                                 capture_output=True, text=True, check=True)
            samples[who] += json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
    return {who: statistics.median(values) for who, values in samples.items()}


def measuring_ways(alone):
    """[(how, alone)] for a bench section's tables: interleaved, and with ``alone`` also alone."""
    return [("interleaved in one process", False)] + ([("each library alone in its own processes, in turn", True)]
                                                     if alone else [])


def _time_alone(source, factory_name, args, who, repeats, warmup):
    """The child end of ``time_contestants(alone=True)``: prints {"seconds": [each timed call]}."""
    spec = importlib.util.spec_from_file_location("bench_alone_" + os.path.basename(source)[:-3], source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    steps = getattr(module, factory_name)(*json.loads(args), only=who)
    print(json.dumps({"seconds": _interleaved_seconds(steps, int(repeats), int(warmup))[who]}))


def print_table(rows, title=None):
    """Rows of dicts with the same keys, printed as aligned columns."""
    if title:
        print(f"\n{title}")
    if not rows:
        return
    keys = list(rows[0])
    cells = [[_format(row[k]) for k in keys] for row in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths)))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)))


def _format(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def torch_twin(model):
    """The same network in PyTorch, with a copy of ``model``'s weights: a Sequential of Conv2d,
    BatchNorm2d, ReLU, MaxPool2d, Flatten, Linear and Dropout layers, translated layer by layer."""
    import torch
    from minidl import nn

    def translate(layer):
        if isinstance(layer, nn.Conv2d):
            return torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                                   layer.padding, layer.dilation, layer.groups, bias=layer.bias is not None)
        if isinstance(layer, nn.BatchNorm2d):
            return torch.nn.BatchNorm2d(layer.num_features, layer.eps, layer.momentum)
        if isinstance(layer, nn.MaxPool2d):
            return torch.nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)
        if isinstance(layer, nn.Linear):
            return torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
        if isinstance(layer, nn.Dropout):
            return torch.nn.Dropout(layer.p)
        simple = {nn.ReLU: torch.nn.ReLU, nn.Flatten: torch.nn.Flatten}
        if type(layer) in simple:
            return simple[type(layer)]()
        raise TypeError(f"torch_twin: no PyTorch translation for {type(layer).__name__}")

    twin = torch.nn.Sequential(*(translate(layer) for layer in model.children()))
    state = {key: torch.from_numpy(np.array(value)) for key, value in model.state_dict().items()}
    result = twin.load_state_dict(state, strict=False)  # minidl may keep no num_batches_tracked
    if result.unexpected_keys or any(not key.endswith("num_batches_tracked") for key in result.missing_keys):
        raise ValueError(f"torch_twin: state_dict keys differ: {result}")
    return twin


if __name__ == "__main__":
    SCRIPTS = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [SCRIPTS, os.path.dirname(SCRIPTS)]
    _time_alone(*sys.argv[1:])
