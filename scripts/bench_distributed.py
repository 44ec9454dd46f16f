"""Data parallelism over MPI on this machine's loopback: what communication costs and hides.

    python scripts/bench_distributed.py            # everything (a few minutes on 2 cores)
    python scripts/bench_distributed.py --only allreduce

Parts, each run as ``mpiexec -n k python scripts/bench_distributed.py --worker PART``:
- allreduce: Allreduce of float32 arrays of 1-64 MB (and of 8 bytes, the latency) on 2 and 3
  ranks; algbw = bytes / t, busbw = 2 (p-1)/p bytes / t (what a ring moves per link, comparable
  across p).
- epoch: MLP epoch time (60,000 synthetic 28x28 images, global batch 64, Adam) and FashionCNN
  time per step (extrapolated to an epoch), 1 rank x 2 threads vs 2 ranks x 1 thread
  (DistributedSampler, DistributedDataParallel); and 1 rank x 1 thread at batch 32, the
  compute of one of the two ranks without communication.
- overlap: on 2 ranks x 1 thread at batch 32 per rank, the backward alone, the backward with
  DDP's bucketed Iallreduces, and the same buckets allreduced after it with blocking calls;
  hidden = 1 - (t_ddp - t_backward) / t_allreduce is the fraction of the communication that
  overlapped the backward. Repeated with MPICH's progress thread (MPIR_CVAR_ASYNC_PROGRESS=1).
- model (with allreduce and epoch): the ring-allreduce model of docs/scaling.md, its
  loopback constants fitted from the 2-rank allreduce, checked against the 3-rank allreduce
  and the 2-rank training step, then extrapolated to 2-64 nodes on 10/25/100 Gbit/s networks.
Figures are medians; the slowest rank counts.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SIZES_MB = (1, 4, 16, 64)
STEPS_CNN = 60


# ---------------------------------------------------------------- workers (inside mpiexec)

def _slowest(comm, seconds):
    from mpi4py import MPI
    return comm.allreduce(seconds, op=MPI.MAX)


def worker_allreduce(comm):
    from mpi4py import MPI
    rows = []
    for nbytes in [8] + [mb * 2 ** 20 for mb in SIZES_MB]:
        array = np.ones(nbytes // 4, dtype=np.float32)
        repeats = 200 if nbytes == 8 else 7
        times = []
        for _ in range(repeats + 2):
            comm.Barrier()
            start = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, array, op=MPI.SUM)
            times.append(_slowest(comm, time.perf_counter() - start))
        rows.append({"bytes": nbytes, "seconds": statistics.median(times[2:])})
    return rows


def _synthetic(n):
    from minidl.data import TensorDataset
    data = np.random.default_rng(0)
    return TensorDataset(data.standard_normal((n, 1, 28, 28)).astype(np.float32),
                         data.integers(0, 10, n))


def _training_setup(comm, name, batch):
    """``batch`` is the global batch: each of the p ranks computes batch / p samples."""
    import minidl
    from minidl import nn, optim
    from minidl.data import DataLoader, DistributedSampler
    from minidl.nn.parallel import DistributedDataParallel
    from models import MODELS
    world = comm.Get_size()
    minidl.manual_seed(0)
    model = MODELS[name]()
    if world > 1:
        model = DistributedDataParallel(model)
    dataset = _synthetic(60000)
    sampler = DistributedSampler(dataset, world, comm.Get_rank(), seed=0)
    loader = DataLoader(dataset, batch // world, sampler=sampler)
    return model, optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss(), loader


def _train(model, opt, loss_fn, batches):
    for x, y in batches:
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()


def worker_epoch(comm, batch):
    import itertools
    out = {}
    for name, steps in (("mlp", None), ("fashion_cnn", STEPS_CNN)):
        model, opt, loss_fn, loader = _training_setup(comm, name, batch)
        _train(model, opt, loss_fn, itertools.islice(loader, 5))  # compile, warm the caches
        comm.Barrier()
        start = time.perf_counter()
        _train(model, opt, loss_fn, loader if steps is None else itertools.islice(loader, steps))
        seconds = _slowest(comm, time.perf_counter() - start)
        done = len(loader) if steps is None else steps
        out[name] = {"step_ms": 1e3 * seconds / done, "epoch_s": seconds * len(loader) / done,
                     "measured_steps": done}
    return out


def worker_overlap(comm):
    import minidl
    from minidl import nn
    from minidl.nn.parallel import DistributedDataParallel
    from models import MODELS
    from mpi4py import MPI
    out = {}
    dataset = _synthetic(32)
    x, y = (minidl.tensor(a) for a in dataset.get_batch(np.arange(32)))
    for name in ("mlp", "fashion_cnn"):
        minidl.manual_seed(0)
        plain = MODELS[name]()
        wrapped = DistributedDataParallel(MODELS[name](), bucket_cap_mb=1)
        loss_fn = nn.CrossEntropyLoss()
        buckets = [bucket.flat for bucket in wrapped._reducer.buckets]

        def backward(model):
            loss = loss_fn(model(x), y)
            comm.Barrier()
            start = time.perf_counter()
            loss.backward()
            seconds = time.perf_counter() - start
            for p in model.parameters():
                p.grad = None
            return seconds

        def blocking():
            comm.Barrier()
            start = time.perf_counter()
            for flat in buckets:
                comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
            return time.perf_counter() - start

        samples = {"backward": [], "ddp": [], "allreduce": []}
        for repeat in range(12):
            for key, run in (("backward", lambda: backward(plain)), ("ddp", lambda: backward(wrapped)),
                             ("allreduce", blocking)):
                seconds = _slowest(comm, run())
                if repeat >= 2:
                    samples[key].append(seconds)
        t = {key: statistics.median(values) for key, values in samples.items()}
        t["hidden"] = min(max(1 - (t["ddp"] - t["backward"]) / t["allreduce"], 0.0), 1.0)
        t["gradient_mb"] = sum(flat.nbytes for flat in buckets) / 2 ** 20
        t["buckets"] = len(buckets)
        out[name] = t
    return out


# (bandwidth in bytes/s, one-way latency in s) of the networks docs/scaling.md tabulates: nominal
# link rates; latencies typical of MPI over TCP on 10 GbE, RoCE on 25 GbE, InfiniBand at 100 Gbit/s
NETWORKS = {"10 Gbit/s": (10e9 / 8, 25e-6), "25 Gbit/s": (25e9 / 8, 8e-6), "100 Gbit/s": (100e9 / 8, 2e-6)}
NODES = (2, 4, 8, 16, 32, 64)


def ring_allreduce_seconds(nbytes, p, bandwidth, latency):
    """2 (p-1)/p * bytes / bandwidth + 2 (p-1) * latency: a ring's reduce-scatter and allgather,
    each p - 1 steps that move bytes / p per link."""
    return 2 * (p - 1) / p * nbytes / bandwidth + 2 * (p - 1) * latency


def scaling_model(report):
    """Fit the loopback (bandwidth, latency) from the 2-rank allreduce, check the model (a
    2-rank step = one rank's compute at batch 32 + the gradients' allreduce), and
    tabulate the weak-scaling efficiency E = t_step / (t_step + t_allreduce) (no overlap) of a
    node that computes a batch of 64 in the measured 1 rank x 2 threads step time."""
    from models import MODELS
    rows2 = {r["bytes"]: r["seconds"] for r in report["allreduce_2"]}
    latency = rows2[8] / 2  # p = 2: 2 (p-1) = 2 latencies
    big = max(rows2)
    bandwidth = big / (rows2[big] - 2 * latency)  # p = 2: 2 (p-1)/p = 1
    checks = [{"what": f"allreduce {r['bytes']} B, 3 ranks", "model ms": 1e3 * ring_allreduce_seconds(
        r["bytes"], 3, bandwidth, latency), "measured ms": 1e3 * r["seconds"]} for r in report["allreduce_3"]]
    tables = {}
    for name in ("mlp", "fashion_cnn"):
        nbytes = 4 * sum(p.numel() for p in MODELS[name]().parameters())
        step = report["epoch"]["1x2"][name]["step_ms"] / 1e3
        half = report["epoch"]["1x1_batch32"][name]["step_ms"] / 1e3  # one rank's compute
        checks.append({"what": f"{name} step, 2 ranks x 1 thread", "model ms": 1e3 * (
            half + ring_allreduce_seconds(nbytes, 2, bandwidth, latency)),
            "measured ms": report["epoch"]["2x1"][name]["step_ms"]})
        tables[name] = [{"network": net, **{f"p={p}": step / (step + ring_allreduce_seconds(nbytes, p, *link))
                                            for p in NODES}} for net, link in NETWORKS.items()]
        tables[name + "_bytes"] = nbytes
    return {"loopback_bandwidth": bandwidth, "loopback_latency": latency, "checks": checks, **tables}


WORKERS = {"allreduce": worker_allreduce, "epoch": worker_epoch, "overlap": worker_overlap}


def run_worker(part, out, batch):
    import minidl.distributed as dist
    dist.init_process_group()
    from minidl.distributed.process_group import communicator
    comm = communicator("bench")
    result = WORKERS[part](comm, batch) if part == "epoch" else WORKERS[part](comm)
    if comm.Get_rank() == 0:
        with open(out, "w") as file:
            json.dump(result, file)
    dist.destroy_process_group()


# ---------------------------------------------------------------- launcher

def launch(part, ranks, threads, extra_env=None, batch=64):
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit("bench_distributed: no mpiexec; pip install 'minidl[distributed]'")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), PYTHONPATH=repo, **(extra_env or {}))
    env.setdefault("NUMBA_CACHE_DIR", os.path.join(repo, ".numba_cache"))
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        subprocess.run([mpiexec, "-n", str(ranks), sys.executable, os.path.abspath(__file__),
                        "--worker", part, "--out", out, "--batch", str(batch)], env=env, check=True, timeout=1800)
        with open(out) as file:
            return json.load(file)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(WORKERS), action="append",
                        help="run only this part (repeatable)")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args.worker, args.out, args.batch)
    from bench_common import print_table
    parts = args.only or sorted(WORKERS)
    report = {}
    if "allreduce" in parts:
        for ranks in (2, 3):
            rows = launch("allreduce", ranks, 1)
            report[f"allreduce_{ranks}"] = rows
            print_table([{"bytes": r["bytes"], "ms": 1e3 * r["seconds"],
                          "algbw GB/s": r["bytes"] / r["seconds"] / 1e9,
                          "busbw GB/s": 2 * (ranks - 1) / ranks * r["bytes"] / r["seconds"] / 1e9}
                         for r in rows], f"Allreduce over loopback, {ranks} ranks x 1 thread")
    if "epoch" in parts:
        one, two, half = launch("epoch", 1, 2), launch("epoch", 2, 1), launch("epoch", 1, 1, batch=32)
        report["epoch"] = {"1x2": one, "2x1": two, "1x1_batch32": half}
        print_table([{"model": name, "1 rank x 2 threads: ms/step": one[name]["step_ms"],
                      "epoch s": one[name]["epoch_s"], "2 ranks x 1 thread: ms/step": two[name]["step_ms"],
                      "epoch s ": two[name]["epoch_s"], "speed-up": one[name]["epoch_s"] / two[name]["epoch_s"],
                      "1 rank x 1 thread, batch 32: ms/step": half[name]["step_ms"]}
                     for name in one], "Training, global batch 64, Adam (synthetic Fashion-MNIST-sized data)")
    if "overlap" in parts:
        for label, env in (("", None), (" with MPIR_CVAR_ASYNC_PROGRESS=1", {"MPIR_CVAR_ASYNC_PROGRESS": "1"})):
            result = launch("overlap", 2, 1, env)
            report["overlap" + ("_async" if env else "")] = result
            print_table([{"model": name, "gradient MB": r["gradient_mb"], "buckets": r["buckets"],
                          "backward ms": 1e3 * r["backward"], "DDP backward ms": 1e3 * r["ddp"],
                          "blocking allreduce ms": 1e3 * r["allreduce"], "hidden": r["hidden"]}
                         for name, r in result.items()],
                        f"Communication hidden behind backward, 2 ranks x 1 thread, batch 32/rank{label}")
    if "allreduce_2" in report and "epoch" in report:
        model = scaling_model(report)
        report["model"] = model
        print(f"\nloopback fitted from 2 ranks: bandwidth {model['loopback_bandwidth'] / 1e9:.2f} GB/s, "
              f"latency {1e6 * model['loopback_latency']:.0f} us")
        print_table(model["checks"], "Ring-allreduce model against measurements")
        for name in ("mlp", "fashion_cnn"):
            print_table(model[name], f"Model: weak-scaling efficiency of {name} ({model[name + '_bytes'] / 2 ** 20:.2f} "
                        "MiB of float32 gradients, batch 64 per node, no overlap)")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(report, file, indent=1)
    return report


if __name__ == "__main__":
    main()
