"""Convolution, pooling and batch norm, forward + backward, minidl next to PyTorch in one process.

    python scripts/bench_conv.py [--quick] [--device cuda] [--alone]

Runs alternate between the libraries (medians, ratio = minidl / PyTorch); PyTorch gets as many
threads as Numba. With --alone the op and epoch rows are measured again with each library in a
process of its own (no second thread pool beside it). Also: the float32 GEMM peak of this
machine (np.matmul 2048^2) and each conv row's GFLOP/s as a share of it; peak resident memory
(VmHWM) of a FashionCNN training step at batch 256 in a fresh process per library, with minidl's
parallel kernel launches per step; the first-call time of the conv kernels in a fresh
interpreter, with a cold and then a warm Numba cache.
"""
import argparse
import copy
import json
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
import minidl.nn.functional as F  # noqa: E402
from bench_common import measuring_ways, print_table, time_contestants, torch_twin  # noqa: E402


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


def sides(device, only=None):
    """The contestants: minidl and PyTorch on ``device``; on cuda also minidl's cpu path, for the
    speed-up of the GPU over it (PyTorch cuda is left out when this torch has no CUDA).
    ``only``: just that contestant (a process of its own, --alone)."""
    import torch
    torch.set_num_threads(numba.get_num_threads())
    if device == "cpu":
        chosen = {"minidl": Side("minidl", "cpu"), "torch": Side("torch", "cpu")}
    else:
        chosen = {"minidl": Side("minidl", "cuda"), "minidl_cpu": Side("minidl", "cpu")}
        if torch.cuda.is_available():
            chosen["torch"] = Side("torch", "cuda")
    return chosen if only is None else {only: chosen[only]}


def gemm_peak(size=2048, repeats=5):
    """This machine's float32 GEMM rate in GFLOP/s: the best of ``repeats`` np.matmul of two
    size x size matrices (2 size^3 flops), on the threads BLAS has."""
    a = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    out = np.empty_like(a)
    np.matmul(a, a, out=out)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, a, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def conv_flops(n, c, o, kernel, out_size, groups=1, passes=3):
    """Multiply-adds x 2 of a convolution: 2 N O C/g kh kw oh ow per pass (forward, dX, dW)."""
    return passes * 2 * n * o * (c // groups) * kernel[0] * kernel[1] * out_size[0] * out_size[1]


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


OP_REPEATS = 10  # op rows take this many times the section's repeats
OP_WARMUP = 10  # calls before the timed ones: in a fresh process both libraries' first 5-10 took up to 3x
OP_NAMES = {"conv": "conv2d ({batch},16,32,32)x(32,16,3,3) pad 1", "pool": "max_pool2d 2x2 ({batch},32,32,32)",
            "bn": "BatchNorm2d train ({batch},32,32,32)", "ce": "cross_entropy ({batch4},1000)"}


def op_rows(device="cpu", repeats=5, batch=64, peak=None, alone=False):
    """Forward + backward (dx and every parameter gradient), float32:
    conv2d (64,16,32,32) x (32,16,3,3) pad 1; max_pool2d 2x2 and BatchNorm2d on (64,32,32,32);
    cross-entropy on (256,1000) logits. ``batch`` shrinks the first axis (for the simulator).
    ``peak`` (GFLOP/s): the conv row also gets each library's GFLOP/s and its % of that peak,
    counting the direct convolution's 2 N O C kh kw oh ow per pass (``conv_flops``): a Winograd
    pass does fewer multiply-adds (minidl's F(2x2, 3x3) tiles 2.25x fewer) and so reads above the
    GEMM peak.
    ``alone``: each (op, library) timed in a process of its own. Medians of OP_REPEATS x
    ``repeats`` calls after OP_WARMUP calls."""
    repeats *= OP_REPEATS  # single calls of 0.3-15 ms: medians of 3 or 5 moved by 50% between runs
    medians = {op: time_contestants(op_step, (op, device, batch), list(sides(device)), repeats, alone,
                                    warmup=OP_WARMUP)
               for op in OP_NAMES}
    rows = []
    for op, times in medians.items():
        row = _ratio_row(f"{OP_NAMES[op].format(batch=batch, batch4=4 * batch)}, fwd+bwd", times, "ms")
        if peak:  # columns in every row (the table takes the first row's keys), figures for conv
            flops = conv_flops(batch, 16, 32, (3, 3), (32, 32))
            for who, seconds in times.items():
                row[f"{who}_GFLOP/s"] = flops / seconds / 1e9 if op == "conv" else "-"
                row[f"{who}_%peak"] = 100 * flops / seconds / 1e9 / peak if op == "conv" else "-"
        rows.append(row)
    return rows


def op_step(op, device="cpu", batch=64, only=None):
    """{contestant: step} of one of ``op_rows``' ops."""
    return op_steps(device, batch, only)[op]


def op_steps(device="cpu", batch=64, only=None):
    """{op: {contestant: step}} for ``op_rows``."""
    import torch
    contestants = sides(device, only)
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
    return steps


def epoch_rows(model_name, batch_size, device="cpu", repeats=5, steps=10, alone=False):
    """Seconds per Fashion-MNIST epoch (60,000 images) of ``models/<model_name>`` trained with
    Adam, from ``steps`` timed batches of random images; PyTorch trains the same network with
    the same starting weights (``torch_twin``). ``alone``: each library in a process of its own."""
    medians = time_contestants(epoch_steps, (model_name, batch_size, device, steps), list(sides(device)),
                               repeats, alone)
    return [_ratio_row(f"{model_name} epoch, batch {batch_size}", medians, "s", 60_000 / (steps * batch_size))]


def epoch_steps(model_name, batch_size, device="cpu", steps=10, only=None):
    """{contestant: ``steps`` Adam training steps on one batch of random images}."""
    import torch
    from minidl import nn, optim
    from models import MODELS

    rng = np.random.default_rng(0)
    images = rng.standard_normal((batch_size, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, batch_size)
    minidl.manual_seed(0)
    reference = MODELS[model_name]()
    runs = {}
    for who, side in sides(device, only).items():
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
    return runs


MEMORY_STEP = """
import json, sys
import numpy as np
library, batch = sys.argv[1], int(sys.argv[2])
sys.path[:0] = sys.argv[3:5]

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024

rng = np.random.default_rng(0)
images = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
labels = rng.integers(0, 10, batch)
if library == "minidl":
    import minidl
    from minidl import nn, optim
    from models import MODELS
    model = MODELS["fashion_cnn"]()
    optimizer, loss_fn = optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss()
    x, y = minidl.tensor(images), minidl.tensor(labels)
else:
    import torch
    import minidl
    from models import MODELS
    from bench_common import torch_twin
    minidl.manual_seed(0)
    model = torch_twin(MODELS["fashion_cnn"]())
    optimizer, loss_fn = torch.optim.Adam(model.parameters(), lr=1e-3), torch.nn.CrossEntropyLoss()
    x, y = torch.from_numpy(images), torch.from_numpy(labels)

def step():
    loss = loss_fn(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

before = status("VmRSS")
step()
step()
result = {"before_step_MB": before, "peak_MB": status("VmHWM")}
if library == "minidl":
    result["launches"] = count_launches(step)
print(json.dumps(result))
"""

COUNT_LAUNCHES = '''
def count_launches(step):
    """Parallel kernels called from Python during one ``step``: every compiled parallel (prange)
    dispatcher found in a minidl module (and each size_dispatched kernel's parallel twin) is
    replaced there by a counting wrapper, and ``tasks.run`` counts the calls it splits over
    more than one thread. Calls made from inside other compiled code (none launch a thread
    pool of their own) and BLAS calls are not counted."""
    import sys
    from numba.core.registry import CPUDispatcher
    from minidl.kernels.cpu import SizeDispatched, tasks
    count = [0]
    run = tasks.run

    def counted_run(kernel, n_tasks, *args, work=None, balance=False, per_share=None):
        count[0] += tasks.shares(n_tasks, work, balance, per_share) > 1
        return run(kernel, n_tasks, *args, work=work, balance=balance, per_share=per_share)

    tasks.run = counted_run

    def counted(kernel):
        def call(*args, **kwargs):
            count[0] += 1
            return kernel(*args, **kwargs)
        return call

    wrappers = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("minidl") and module is not None:
            for attr, value in list(vars(module).items()):
                if isinstance(value, CPUDispatcher) and value.targetoptions.get("parallel"):
                    wrappers.setdefault(id(value), counted(value))
                    setattr(module, attr, wrappers[id(value)])
                elif isinstance(value, SizeDispatched) and id(value) not in wrappers:
                    wrappers[id(value)] = value.parallel = counted(value.parallel)
    step()
    return count[0]
'''


def memory_rows(batch=256):
    """Peak resident memory (VmHWM) of a process that builds FashionCNN and runs two Adam training
    steps at ``batch``, one fresh process per library, beside its resident memory before the first
    step (the torch process also imports minidl, for the model's weights: compare step_peak_MB);
    and minidl's parallel kernel launches in one step."""
    rows = []
    paths = [HERE, os.path.dirname(HERE)]
    for who in ("minidl", "torch"):
        out = subprocess.run([sys.executable, "-c", COUNT_LAUNCHES + MEMORY_STEP, who, str(batch)] + paths,
                             capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"benchmark": f"FashionCNN train step, batch {batch}", "library": who,
                     "rss_before_step_MB": result["before_step_MB"], "peak_rss_MB": result["peak_MB"],
                     "step_peak_MB": result["peak_MB"] - result["before_step_MB"],
                     "parallel_launches_per_step": result.get("launches", "-")})
    return rows


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


def main_section(quick=False, device="cpu", alone=False):
    repeats = 3 if quick else 7
    peak = gemm_peak() if device == "cpu" else None
    if peak:
        print(f"\nfloat32 GEMM peak (np.matmul 2048^2, {numba.get_num_threads()} threads): {peak:.0f} GFLOP/s")
    ways = measuring_ways(alone)
    for how, apart in ways:
        print_table(op_rows(device, repeats, peak=peak, alone=apart),
                    f"Convolution, pooling, batch norm, cross-entropy (float32, {device}), {how}")
    for how, apart in ways:
        epochs = [epoch_rows(name, batch, device, repeats=3 if quick else 5, alone=apart)[0]
                  for name in ("lenet", "fashion_cnn") for batch in (64, 256)]
        print_table(epochs, f"Training epochs (random images, {device}), {how}")
    if device == "cpu":
        print_table(memory_rows(), "Peak resident memory (VmHWM), fresh process per library")
        print_table(compile_rows(), "Kernel compile time (fresh interpreter)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--alone", action="store_true", help="also time each library in its own process")
    args = parser.parse_args()
    if args.device == "cuda" and not minidl.cuda.is_available():
        parser.error("--device cuda: minidl.cuda.is_available() is False (no NVIDIA GPU or driver)")
    print(f"minidl {minidl.__version__}, numba {numba.__version__} ({numba.get_num_threads()} threads, "
          f"{numba.config.THREADING_LAYER} layer)")
    main_section(args.quick, args.device, args.alone)
