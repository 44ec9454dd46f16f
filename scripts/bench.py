"""minidl next to PyTorch (and scikit-learn for trees), in one process, as time ratios.

    python scripts/bench.py                 # every section
    python scripts/bench.py --only mlp      # one section: mlp, startup, conv, rnn, tree, transformer
    python scripts/bench.py --only distributed  # scripts/bench_distributed.py (mpiexec; not in the default)
    python scripts/bench.py --quick         # fewer images and repeats
    python scripts/bench.py --alone         # every timed row also with each library alone in processes
                                            # of its own, the two libraries' in turn (GEMM peak, % of
                                            # it and memory are always shown)
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
from minidl import blas_threads  # noqa: E402
from bench_common import measuring_ways, print_table, time_contestants, torch_twin  # noqa: E402


def mlp_epoch_rows(n_images, repeats, batch_size=64, alone=False):
    """Seconds per epoch of MLP 784-256-128-10 with Adam, minidl and PyTorch, same data and order."""
    medians = time_contestants(mlp_epoch_steps, (n_images, batch_size), ("minidl", "torch"), repeats, alone)
    scale = 60_000 / n_images  # report per full epoch
    return [{"benchmark": f"MLP epoch, batch {batch_size}", "minidl_s": medians["minidl"] * scale,
             "torch_s": medians["torch"] * scale, "ratio": medians["minidl"] / medians["torch"],
             "minidl_img_per_s": n_images / medians["minidl"]}]


def mlp_epoch_steps(n_images, batch_size, only=None):
    """{contestant: one pass over the first ``n_images`` training images} for ``mlp_epoch_rows``."""
    import torch
    from minidl import nn, optim
    from minidl.data import FashionMNIST
    from models.mlp import MLP

    torch.set_num_threads(numba.get_num_threads())
    data = FashionMNIST(train=True)
    images, labels = data.data[:n_images], data.targets[:n_images]
    order = np.random.default_rng(0).permutation(len(images))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]

    minidl.manual_seed(0)
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

    steps = {"minidl": minidl_epoch, "torch": torch_epoch}
    return steps if only is None else {only: steps[only]}


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


TRANSFORMER_ROWS = {  # which: (name, repeats factor, warm-up calls)
    "layer": ("TransformerEncoderLayer d{d_model} h{heads} ({batch}, {seq})", 1, 1),
    "norm": ("LayerNorm({d_model}) on ({batch}, {seq}, {d_model})", 10, 3)}


def transformer_rows(repeats, batch=32, seq=128, d_model=256, heads=4, alone=False):
    """Forward + backward of a TransformerEncoderLayer (dropout 0, batch_first) and of a LayerNorm
    over the same activations, minidl and PyTorch on the same weights and inputs. The LayerNorm
    step (0.5 ms) gets 10x the repeats after 3 warm-up calls: in a fresh process both libraries'
    first 5-10 calls took 1.2-3x their steady time, which a median of 5 after one warm-up showed."""
    rows = []
    for which, (name, factor, warmup) in TRANSFORMER_ROWS.items():
        medians = time_contestants(transformer_steps, (which, batch, seq, d_model, heads), ("minidl", "torch"),
                                   repeats * factor, alone, warmup=warmup)
        rows.append({"benchmark": name.format(batch=batch, seq=seq, d_model=d_model, heads=heads) + ", fwd+bwd",
                     "minidl_s": medians["minidl"], "torch_s": medians["torch"],
                     "ratio": medians["minidl"] / medians["torch"]})
    return rows


def transformer_steps(which, batch, seq, d_model, heads, only=None):
    """{contestant: step} for one of ``transformer_rows``' rows ("layer" or "norm")."""
    import torch
    from minidl import nn

    torch.set_num_threads(numba.get_num_threads())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, seq, d_model)).astype(np.float32)
    upstream = rng.standard_normal(x.shape).astype(np.float32)
    minidl.manual_seed(0)
    if which == "layer":
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=4 * d_model, dropout=0.0,
                                           batch_first=True)
        t_layer = torch.nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=4 * d_model, dropout=0.0,
                                                   batch_first=True)
        t_layer.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    else:
        layer, t_layer = nn.LayerNorm(d_model), torch.nn.LayerNorm(d_model)
    return _module_steps(layer, t_layer, x, upstream, only)


def conv_transpose_rows(repeats, batch=64, shape=(32, 16, 16), out_channels=16, alone=False):
    """Forward + backward of ConvTranspose2d(3x3, stride 2, padding 1, output_padding 1) (a
    decoder's upsampling step), minidl and PyTorch on the same weights and inputs. Three calls of
    each first: in a fresh process the second call still took 3.6-3.8 ms (minidl) and 4.9 ms
    (PyTorch) against 2.3-2.5 from the fourth on, which a median of 3 after one warm-up showed."""
    medians = time_contestants(conv_transpose_steps, (batch, shape, out_channels), ("minidl", "torch"), repeats,
                               alone, warmup=3)
    return [{"benchmark": f"ConvTranspose2d({shape[0]}, {out_channels}, 3, stride 2) on {(batch,) + shape}, "
                          "fwd+bwd", "minidl_s": medians["minidl"], "torch_s": medians["torch"],
             "ratio": medians["minidl"] / medians["torch"]}]


def conv_transpose_steps(batch, shape, out_channels, only=None):
    """{contestant: step} for ``conv_transpose_rows``."""
    import torch
    from minidl import nn

    torch.set_num_threads(numba.get_num_threads())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + tuple(shape)).astype(np.float32)
    minidl.manual_seed(0)
    layer = nn.ConvTranspose2d(shape[0], out_channels, 3, stride=2, padding=1, output_padding=1)
    t_layer = torch.nn.ConvTranspose2d(shape[0], out_channels, 3, stride=2, padding=1, output_padding=1)
    t_layer.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    upstream = rng.standard_normal((batch, out_channels, 2 * shape[1], 2 * shape[2])).astype(np.float32)
    return _module_steps(layer, t_layer, x, upstream, only)


def _module_steps(layer, t_layer, x, upstream, only=None):
    """{contestant: step}: forward of ``x`` through minidl's ``layer`` or PyTorch's ``t_layer`` (a
    fresh leaf each time), and backward of ``upstream``."""
    import torch
    t_x, t_upstream = torch.from_numpy(x), torch.from_numpy(upstream)

    def ours():
        layer(minidl.tensor(x, requires_grad=True)).backward(upstream)

    def theirs():
        t_layer(t_x.clone().requires_grad_(True)).backward(t_upstream)

    steps = {"minidl": ours, "torch": theirs}
    return steps if only is None else {only: steps[only]}


def blas_cores():
    """The kernels numpy's OpenBLAS runs (OPENBLAS_CORETYPE can force AVX2 kernels on an AVX-512
    CPU, where PyTorch's MKL runs AVX-512 ones: GEMM-bound rows depend on it)."""
    names = [blas_threads.core_name(library) for library in blas_threads.loaded_openblas()]
    forced = os.environ.get("OPENBLAS_CORETYPE")
    return (", ".join(str(name) for name in names) or "none loaded") + (f" (OPENBLAS_CORETYPE={forced})"
                                                                         if forced else "")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append",
                        choices=["mlp", "startup", "conv", "rnn", "tree", "transformer", "distributed"])
    parser.add_argument("--quick", action="store_true", help="fewer images and repeats")
    parser.add_argument("--alone", action="store_true",
                        help="also time each library in processes of its own (all but start-up and tree)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cuda: the conv section on the GPU (the other sections are cpu only)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not minidl.cuda.is_available():
        parser.error("--device cuda: minidl.cuda.is_available() is False (no NVIDIA GPU or driver)")
    sections = args.only or (["conv"] if args.device == "cuda"
                             else ["startup", "mlp", "conv", "rnn", "tree", "transformer"])
    repeats = 3 if args.quick else 5
    print(f"minidl {minidl.__version__}, numba {numba.__version__} ({numba.get_num_threads()} threads, "
          f"{numba.config.THREADING_LAYER} layer), numpy {np.__version__}; OpenBLAS kernels: {blas_cores()}")
    started = time.perf_counter()
    if "startup" in sections:
        print_table(startup_rows(), "Start-up")
    if "mlp" in sections:
        for how, apart in measuring_ways(args.alone):
            print_table(mlp_epoch_rows(10_000 if args.quick else 60_000, repeats, alone=apart),
                        f"MLP training (Fashion-MNIST), {how}")
    for name in ("conv", "rnn", "tree"):
        if name in sections:
            options = {"device": args.device, "alone": args.alone} if name == "conv" else (
                {"alone": args.alone} if name == "rnn" else {})
            run_section(name, args.quick, **options)
    if "conv" in sections and args.device == "cpu":
        for how, apart in measuring_ways(args.alone):
            print_table(conv_transpose_rows(9 if args.quick else 15, alone=apart),
                        f"Transposed convolution, forward + backward, {how}")
    if "transformer" in sections:
        for how, apart in measuring_ways(args.alone):
            print_table(transformer_rows(5 if args.quick else 15, alone=apart),
                        f"Transformer layers, forward + backward, {how}")
    if "distributed" in sections:
        __import__("bench_distributed").main([])
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
