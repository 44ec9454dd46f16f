"""Convolution, pooling and batch norm, forward + backward, minidl next to PyTorch in one process.

    python scripts/bench_conv.py [--quick]

Runs alternate between the libraries (medians, ratio = minidl / PyTorch); PyTorch gets as many
threads as Numba. Also the first-call time of the conv kernels in a fresh interpreter, with a
cold and then a warm Numba cache.
"""
import argparse
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
from bench_common import print_table, time_interleaved  # noqa: E402


def _pair_rows(name, minidl_step, torch_step, repeats):
    medians = time_interleaved({"minidl": minidl_step, "torch": torch_step}, repeats)
    return {"benchmark": name, "minidl_ms": 1e3 * medians["minidl"], "torch_ms": 1e3 * medians["torch"],
            "ratio": medians["minidl"] / medians["torch"]}


def _inputs(shape, seed=0):
    """The same float32 array as a minidl and a torch leaf."""
    import torch
    array = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return minidl.tensor(array, requires_grad=True), torch.tensor(array, requires_grad=True)


def conv_rows(repeats=5):
    """conv2d (64,16,32,32) x (32,16,3,3), padding 1; max_pool2d 2x2 and batch_norm on (64,32,32,32);
    each forward + backward (dx and every parameter gradient)."""
    import torch
    torch.set_num_threads(numba.get_num_threads())
    tf = torch.nn.functional
    rows = []

    x, tx = _inputs((64, 16, 32, 32))
    w, tw = _inputs((32, 16, 3, 3), 1)
    b, tb = _inputs((32,), 2)
    upstream = np.random.default_rng(3).standard_normal((64, 32, 32, 32)).astype(np.float32)
    t_upstream = torch.tensor(upstream)
    rows.append(_pair_rows("conv2d (64,16,32,32)x(32,16,3,3) pad 1, fwd+bwd",
                           lambda: F.conv2d(x, w, b, padding=1).backward(upstream),
                           lambda: tf.conv2d(tx, tw, tb, padding=1).backward(t_upstream), repeats))

    a, ta = _inputs((64, 32, 32, 32), 4)
    pooled = upstream[:, :, :16, :16].copy()
    t_pooled = torch.tensor(pooled)
    rows.append(_pair_rows("max_pool2d 2x2 (64,32,32,32), fwd+bwd",
                           lambda: F.max_pool2d(a, 2).backward(pooled),
                           lambda: tf.max_pool2d(ta, 2).backward(t_pooled), repeats))

    ours, theirs = minidl.nn.BatchNorm2d(32), torch.nn.BatchNorm2d(32)
    rows.append(_pair_rows("BatchNorm2d train (64,32,32,32), fwd+bwd",
                           lambda: ours(a).backward(upstream),
                           lambda: theirs(ta).backward(t_upstream), repeats))
    return rows


def fashion_cnn_rows(repeats=5, steps=10, batch_size=64):
    """Seconds per epoch (60,000 images) of FashionCNN training with Adam, from ``steps`` timed
    batches of random images, minidl and the same network in PyTorch."""
    import torch
    from minidl import nn, optim
    from models.fashion_cnn import FashionCNN

    torch.set_num_threads(numba.get_num_threads())
    rng = np.random.default_rng(0)
    images = rng.standard_normal((batch_size, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, batch_size)
    model, loss_fn = FashionCNN(), nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    tnn = torch.nn
    t_model = tnn.Sequential(
        tnn.Conv2d(1, 32, 3, padding=1), tnn.BatchNorm2d(32), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(32, 64, 3, padding=1), tnn.BatchNorm2d(64), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Flatten(), tnn.Linear(64 * 7 * 7, 128), tnn.ReLU(), tnn.Dropout(0.25), tnn.Linear(128, 10))
    t_optimizer = torch.optim.Adam(t_model.parameters(), lr=1e-3)
    t_images, t_labels = torch.from_numpy(images), torch.from_numpy(labels)

    def minidl_steps():
        for _ in range(steps):
            loss = loss_fn(model(minidl.Tensor(images)), minidl.Tensor(labels))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def torch_steps():
        for _ in range(steps):
            loss = tnn.functional.cross_entropy(t_model(t_images), t_labels)
            t_optimizer.zero_grad()
            loss.backward()
            t_optimizer.step()

    medians = time_interleaved({"minidl": minidl_steps, "torch": torch_steps}, repeats)
    scale = 60_000 / (steps * batch_size)
    return [{"benchmark": f"FashionCNN epoch, batch {batch_size}", "minidl_s": medians["minidl"] * scale,
             "torch_s": medians["torch"] * scale, "ratio": medians["minidl"] / medians["torch"]}]


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


def main_section(quick=False):
    print_table(conv_rows(3 if quick else 7), "Convolution, pooling, batch norm (float32)")
    print_table(fashion_cnn_rows(3 if quick else 5), "FashionCNN training (random images)")
    print_table(compile_rows(), "Kernel compile time (fresh interpreter)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    print(f"minidl {minidl.__version__}, numba {numba.__version__} ({numba.get_num_threads()} threads, "
          f"{numba.config.THREADING_LAYER} layer)")
    main_section(args.quick)
