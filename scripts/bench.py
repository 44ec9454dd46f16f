"""minidl next to PyTorch (and scikit-learn for trees), in one process, as time ratios.

    python scripts/bench.py                 # every section
    python scripts/bench.py --only mlp      # one section: mlp, startup, conv, rnn, tree
    python scripts/bench.py --quick         # fewer images and repeats
    python scripts/bench.py --device cuda   # conv ops and CNN epochs on the GPU: minidl cuda, PyTorch
                                            # cuda and minidl's own cpu path

Runs alternate between the two libraries and report medians: timings on shared machines
swing between processes, ratios measured side by side do not. ratio = minidl / reference.
On cuda every timed call ends with a device synchronisation (``minidl.cuda.synchronize()``,
``torch.cuda.synchronize()``); the PyTorch column needs a CUDA build of torch.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import numba  # noqa: E402
import numpy as np  # noqa: E402

import minidl  # noqa: E402
from bench_common import print_table, time_interleaved, torch_twin  # noqa: E402


def mlp_epoch_rows(n_images, repeats, batch_size=64):
    """Seconds per epoch of MLP 784-256-128-10 with Adam, minidl and PyTorch, same data and order."""
    import torch
    from minidl import nn, optim
    from minidl.data import FashionMNIST
    from models.mlp import MLP

    torch.set_num_threads(numba.get_num_threads())
    data = FashionMNIST(train=True)
    images, labels = data.data[:n_images], data.targets[:n_images]
    order = np.random.default_rng(0).permutation(len(images))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]

    model, loss_fn = MLP(), nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    t_model = torch_twin(model)
    t_loss = torch.nn.CrossEntropyLoss()
    t_optimizer = torch.optim.Adam(t_model.parameters(), lr=1e-3)
    t_images, t_labels = torch.from_numpy(images), torch.from_numpy(labels)

    def minidl_epoch():
        for index in batches:
            loss = loss_fn(model(minidl.Tensor(images[index])), minidl.Tensor(labels[index]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def torch_epoch():
        for index in batches:
            index = torch.from_numpy(index)
            loss = t_loss(t_model(t_images[index]), t_labels[index])
            t_optimizer.zero_grad()
            loss.backward()
            t_optimizer.step()

    medians = time_interleaved({"minidl": minidl_epoch, "torch": torch_epoch}, repeats)
    scale = 60_000 / n_images  # report per full epoch
    return [{"benchmark": f"MLP epoch, batch {batch_size}", "minidl_s": medians["minidl"] * scale,
             "torch_s": medians["torch"] * scale, "ratio": medians["minidl"] / medians["torch"],
             "minidl_img_per_s": n_images / medians["minidl"]}]


STARTUP = """
import time
start = time.perf_counter()
import numpy as np, minidl
from minidl import nn, optim
model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
opt = optim.Adam(model.parameters())
loss = nn.CrossEntropyLoss()(model(minidl.randn(64, 1, 28, 28)), minidl.tensor(np.zeros(64, dtype=np.int64)))
loss.backward(); opt.step()
print(time.perf_counter() - start)
"""


def startup_rows():
    """Seconds from a fresh interpreter to one finished training step, cold and warm Numba cache."""
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold cache", "warm cache"):
            out = subprocess.run([sys.executable, "-c", STARTUP], env=env, capture_output=True,
                                 text=True, check=True)
            rows.append({"benchmark": f"import + first MLP step, {label}",
                         "seconds": float(out.stdout.strip().splitlines()[-1])})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=["mlp", "startup", "conv", "rnn", "tree"])
    parser.add_argument("--quick", action="store_true", help="fewer images and repeats")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cuda: the conv section on the GPU (the other sections are cpu only)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not minidl.cuda.is_available():
        parser.error("--device cuda: minidl.cuda.is_available() is False (no NVIDIA GPU or driver)")
    sections = args.only or (["conv"] if args.device == "cuda" else ["startup", "mlp", "conv", "rnn", "tree"])
    repeats = 3 if args.quick else 5
    print(f"minidl {minidl.__version__}, numba {numba.__version__} ({numba.get_num_threads()} threads, "
          f"{numba.config.THREADING_LAYER} layer), numpy {np.__version__}")
    started = time.perf_counter()
    if "startup" in sections:
        print_table(startup_rows(), "Start-up")
    if "mlp" in sections:
        print_table(mlp_epoch_rows(10_000 if args.quick else 60_000, repeats), "MLP training (Fashion-MNIST)")
    for name in ("conv", "rnn", "tree"):
        if name in sections:
            run_section(name, args.quick, **({"device": args.device} if name == "conv" else {}))
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


def run_section(name, quick, **options):
    """Sections written beside this file: bench_conv.py, bench_rnn.py, bench_tree.py."""
    try:
        module = __import__(f"bench_{name}")
    except ImportError as error:
        print(f"\n{name}: skipped ({error})")
        return
    module.main_section(quick=quick, **options)


if __name__ == "__main__":
    main()
