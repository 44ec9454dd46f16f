"""Convolution, pooling and batch norm, forward + backward, minidl next to PyTorch in one process.

    python scripts/bench_conv.py [--quick] [--device cuda]

Runs alternate between the libraries (medians, ratio = minidl / PyTorch); PyTorch gets as many
threads as Numba. Also the first-call time of the conv kernels in a fresh interpreter, with a
cold and then a warm Numba cache.
"""
import argparse
import copy
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import numba  # noqa: E402
import numpy as np  # noqa: E402

import minidl  # noqa: E402
import minidl.nn.functional as F  # noqa: E402
from bench_common import print_table, time_interleaved, torch_twin  # noqa: E402


class Side:
    """Where one library runs: its device and how to wait for that device's queued work."""

    def __init__(self, library, device):
        import torch
        self.library, self.device = library, device
        if device == "cpu":
            self.sync = lambda: None
        else:
            self.sync = minidl.cuda.synchronize if library == "minidl" else torch.cuda.synchronize

    def array(self, array, requires_grad=False):
        import torch
        if self.library == "minidl":
            return minidl.tensor(array, requires_grad=requires_grad, device=self.device)
        return torch.tensor(array, requires_grad=requires_grad, device=self.device)

    def timed(self, step):
        """``step`` followed by a wait for the device, so the clock sees the work done."""
        def run():
            step()
            self.sync()
        return run


def sides(device):
    """The contestants: minidl and PyTorch on ``device``; on cuda also minidl's cpu path, for the
    speed-up of the GPU over it (PyTorch cuda is left out when this torch has no CUDA)."""
    import torch
    torch.set_num_threads(numba.get_num_threads())
    if device == "cpu":
        return {"minidl": Side("minidl", "cpu"), "torch": Side("torch", "cpu")}
    chosen = {"minidl": Side("minidl", "cuda"), "minidl_cpu": Side("minidl", "cpu")}
    if torch.cuda.is_available():
        chosen["torch"] = Side("torch", "cuda")
    return chosen


def _ratio_row(name, medians, unit, scale=1.0):
    """One table row: each contestant's median in ``unit``, minidl / torch and the cuda speed-up."""
    factor = {"ms": 1e3, "s": 1.0}[unit] * scale
    row = {"benchmark": name}
    row.update({f"{who}_{unit}": seconds * factor for who, seconds in medians.items()})
    if "torch" in medians:
        row["ratio"] = medians["minidl"] / medians["torch"]
    if "minidl_cpu" in medians:
        row["cpu/cuda"] = medians["minidl_cpu"] / medians["minidl"]
    return row


def op_rows(device="cpu", repeats=5, batch=64):
    """Forward + backward (dx and every parameter gradient), float32:
    conv2d (64,16,32,32) x (32,16,3,3) pad 1; max_pool2d 2x2 and BatchNorm2d on (64,32,32,32);
    cross-entropy on (256,1000) logits. ``batch`` shrinks the first axis (for the simulator)."""
    import torch
    contestants = sides(device)
    rng = np.random.default_rng(0)

    def normal(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    x, w, b = normal(batch, 16, 32, 32), normal(32, 16, 3, 3), normal(32)
    a, upstream = normal(batch, 32, 32, 32), normal(batch, 32, 32, 32)
    pooled = upstream[:, :, :16, :16].copy()
    logits, labels = normal(4 * batch, 1000), rng.integers(0, 1000, 4 * batch)
    steps = {name: {} for name in ("conv", "pool", "bn", "ce")}
    for who, side in contestants.items():
        functional = F if side.library == "minidl" else torch.nn.functional
        tx, tw, tb, ta = (side.array(v, requires_grad=True) for v in (x, w, b, a))
        t_logits, t_labels = side.array(logits, requires_grad=True), side.array(labels)
        t_up, t_pooled = side.array(upstream), side.array(pooled)
        norm = (minidl.nn if side.library == "minidl" else torch.nn).BatchNorm2d(32).to(side.device)
        steps["conv"][who] = side.timed(lambda functional=functional, tx=tx, tw=tw, tb=tb, t_up=t_up:
                                        functional.conv2d(tx, tw, tb, padding=1).backward(t_up))
        steps["pool"][who] = side.timed(lambda functional=functional, ta=ta, t_pooled=t_pooled:
                                        functional.max_pool2d(ta, 2).backward(t_pooled))
        steps["bn"][who] = side.timed(lambda norm=norm, ta=ta, t_up=t_up: norm(ta).backward(t_up))
        steps["ce"][who] = side.timed(lambda functional=functional, t_logits=t_logits, t_labels=t_labels:
                                      functional.cross_entropy(t_logits, t_labels).backward())
    names = {"conv": f"conv2d ({batch},16,32,32)x(32,16,3,3) pad 1", "pool": f"max_pool2d 2x2 ({batch},32,32,32)",
             "bn": f"BatchNorm2d train ({batch},32,32,32)", "ce": f"cross_entropy ({4 * batch},1000)"}
    return [_ratio_row(f"{names[op]}, fwd+bwd", time_interleaved(steps[op], repeats), "ms") for op in steps]


def epoch_rows(model_name, batch_size, device="cpu", repeats=5, steps=10):
    """Seconds per Fashion-MNIST epoch (60,000 images) of ``models/<model_name>`` trained with
    Adam, from ``steps`` timed batches of random images; PyTorch trains the same network with
    the same starting weights (``torch_twin``)."""
    import torch
    from minidl import nn, optim
    from models import MODELS

    rng = np.random.default_rng(0)
    images = rng.standard_normal((batch_size, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, batch_size)
    minidl.manual_seed(0)
    reference = MODELS[model_name]()
    runs = {}
    for who, side in sides(device).items():
        x, y = side.array(images), side.array(labels)
        if side.library == "minidl":
            model = copy.deepcopy(reference).to(side.device)
            optimizer, loss_fn = optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss()
        else:
            model = torch_twin(reference).to(side.device)
            optimizer, loss_fn = torch.optim.Adam(model.parameters(), lr=1e-3), torch.nn.CrossEntropyLoss()

        def train(model=model, optimizer=optimizer, loss_fn=loss_fn, x=x, y=y):
            for _ in range(steps):
                loss = loss_fn(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        runs[who] = side.timed(train)
    medians = time_interleaved(runs, repeats)
    return [_ratio_row(f"{model_name} epoch, batch {batch_size}", medians, "s", 60_000 / (steps * batch_size))]


FIRST_CALL = """
import time
start = time.perf_counter()
import numpy as np, minidl
import minidl.nn.functional as F
imported = time.perf_counter()
x = minidl.randn(8, 4, 16, 16, requires_grad=True)
w = minidl.randn(8, 4, 3, 3, requires_grad=True)
y = F.batch_norm(F.conv2d(x, w, padding=1), None, None, training=True)
F.max_pool2d(y, 2).sum().backward()
print(imported - start, time.perf_counter() - imported)
"""


def compile_rows():
    """Seconds to import minidl and then to run conv2d + batch_norm + max_pool2d forward and backward
    once (float32), in fresh interpreters sharing a new Numba cache: cold, then warm."""
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold cache", "warm cache"):
            out = subprocess.run([sys.executable, "-c", FIRST_CALL], env=env, capture_output=True,
                                 text=True, check=True, cwd=os.path.dirname(HERE))
            import_s, first_call_s = map(float, out.stdout.split()[-2:])
            rows.append({"benchmark": f"first conv+bn+pool fwd+bwd, {label}", "import_s": import_s,
                         "first_call_s": first_call_s})
    return rows


def main_section(quick=False, device="cpu"):
    repeats = 3 if quick else 7
    print_table(op_rows(device, repeats), f"Convolution, pooling, batch norm, cross-entropy (float32, {device})")
    epochs = [epoch_rows(name, batch, device, repeats=3 if quick else 5)[0]
              for name in ("lenet", "fashion_cnn") for batch in (64, 256)]
    print_table(epochs, f"Training epochs (random images, {device})")
    if device == "cpu":
        print_table(compile_rows(), "Kernel compile time (fresh interpreter)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    if args.device == "cuda" and not minidl.cuda.is_available():
        parser.error("--device cuda: minidl.cuda.is_available() is False (no NVIDIA GPU or driver)")
    print(f"minidl {minidl.__version__}, numba {numba.__version__} ({numba.get_num_threads()} threads, "
          f"{numba.config.THREADING_LAYER} layer)")
    main_section(args.quick, args.device)
