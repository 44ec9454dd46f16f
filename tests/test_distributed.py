"""minidl.distributed, DistributedDataParallel, DistributedSampler, SyncBatchNorm, fit_forest.

The multi-process tests launch ``mpiexec -n k python worker.py`` on this machine's loopback
(each rank writes its results to a json file) and skip when mpi4py or mpiexec is missing. The
sampler and the errors before initialisation are tested in this process, without MPI.
"""
import importlib.util
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import minidl
import minidl.distributed as dist
from minidl import nn
from minidl.data import DataLoader, DistributedSampler, TensorDataset
from minidl.nn.parallel import DistributedDataParallel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the mpiexec beside this Python (the mpich wheel's) matches the MPI library mpi4py loads
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
TIMEOUT = 120


def run_world(tmp_path, ranks, script):
    """Run ``script`` as ``mpiexec -n ranks`` (one thread per rank) in ``tmp_path``; returns
    (exit status, output, {rank: the dict it wrote to result_<rank>.json})."""
    if importlib.util.find_spec("mpi4py") is None or MPIEXEC is None:
        pytest.skip("needs mpi4py and mpiexec (pip install 'minidl[distributed]')")
    worker = tmp_path / "worker.py"
    worker.write_text(textwrap.dedent(script))
    env = dict(os.environ, PYTHONPATH=REPO, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", NUMBA_CACHE_DIR=os.environ.get(
                   "NUMBA_CACHE_DIR", os.path.join(REPO, ".numba_cache")))
    process = subprocess.Popen([MPIEXEC, "-n", str(ranks), sys.executable, str(worker)], cwd=tmp_path,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # mpiexec and every rank it started
        output, _ = process.communicate()
        pytest.fail(f"mpiexec -n {ranks} did not finish within {TIMEOUT} s:\n{output}")
    results = {}
    for rank in range(ranks):
        path = tmp_path / f"result_{rank}.json"
        if path.exists():
            results[rank] = json.loads(path.read_text())
    return process.returncode, output, results


PRELUDE = """
import json
import numpy as np
import minidl
import minidl.distributed as dist
from minidl import nn, optim

def report(**values):
    with open(f"result_{dist.get_rank()}.json", "w") as file:
        json.dump(values, file)

dist.init_process_group()
rank, world = dist.get_rank(), dist.get_world_size()
"""


def test_ddp_two_ranks_of_32_equal_one_process_of_64(tmp_path):
    """10 steps of SGD with momentum (plain backward, buckets of a few parameters) and of Adam
    (each rank's 32 in two micro-batches of 16, the first under no_sync) from different initial
    weights on the ranks: the same parameters as one process on the batches of 64."""
    status, output, results = run_world(tmp_path, 2, PRELUDE + """
from minidl.nn.parallel import DistributedDataParallel as DDP

data = np.random.default_rng(0)
X, Y = data.standard_normal((640, 8)), data.integers(0, 3, 640)

def model(seed):
    minidl.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3)).double()

def train(net, opt, shards, micro):
    first_grad = None
    for step in range(10):
        lo = step * 64 + (rank if shards > 1 else 0) * 64 // shards
        xs = np.array_split(X[lo:lo + 64 // shards], micro)
        ys = np.array_split(Y[lo:lo + 64 // shards], micro)
        for m, (x, y) in enumerate(zip(xs, ys)):
            loss = nn.functional.cross_entropy(net(minidl.tensor(x)), minidl.tensor(y)) * (1.0 / micro)
            if m < micro - 1:
                with net.no_sync():
                    loss.backward()
            else:
                loss.backward()
        if first_grad is None:
            first_grad = next(net.parameters()).grad.array.copy()
        opt.step()
        opt.zero_grad()
    return [p.data for p in net.parameters()], first_grad

def worst(a, b):
    return max(float(np.max(np.abs(x - y) / (np.abs(y) + 1e-300))) for x, y in zip(a, b))

out = {}
for name, make_opt, micro, cap in (("sgd", lambda p: optim.SGD(p, lr=0.1, momentum=0.9), 1, 0.0003),
                                   ("adam", lambda p: optim.Adam(p, lr=0.01), 2, 25)):
    net = DDP(model(seed=1 + rank), bucket_cap_mb=cap)
    got, grad = train(net, make_opt(net.parameters()), 2, micro)
    reference = model(seed=1)
    want, want_grad = train(reference, make_opt(reference.parameters()), 1, 1)
    out[name] = dict(params=worst(got, want), first_grad=worst([grad], [want_grad]),
                     buckets=len(net._reducer.buckets))
report(**out, keys=list(net.state_dict())[:2])
""")
    assert status == 0, output
    assert sorted(results) == [0, 1], output
    for rank, result in results.items():
        assert result["keys"] == ["module.0.weight", "module.0.bias"]
        assert result["sgd"]["buckets"] > 1 and result["adam"]["buckets"] == 1
        for name in ("sgd", "adam"):
            assert result[name]["first_grad"] < 1e-9, (rank, name, result)
            assert result[name]["params"] < 1e-9, (rank, name, result)


def test_collectives_sampler_sync_batchnorm_and_forest_on_three_ranks(tmp_path):
    status, output, results = run_world(tmp_path, 3, PRELUDE + """
from minidl.data import DataLoader, DistributedSampler, TensorDataset
from minidl.tree import RandomForestClassifier

t = minidl.tensor(np.array([1.0, 2.0]) * (rank + 1), dtype=minidl.float64)
dist.all_reduce(t)
total = t.tolist()
dist.all_reduce(t, op=dist.ReduceOp.MAX)
b = minidl.tensor(np.full(3, rank, dtype=np.int64))
dist.broadcast(b, src=2)
parts = [minidl.zeros(2) for _ in range(world)]
dist.all_gather(parts, minidl.tensor([rank, 10.0 * rank]))
dist.barrier()

# DistributedSampler with the group's rank and size: 10 samples over 3 ranks (padded to 12)
loader = DataLoader(TensorDataset(np.arange(10)), batch_size=2, sampler=DistributedSampler(
    TensorDataset(np.arange(10)), seed=3))
mine = [int(i) for (batch,) in loader for i in batch.tolist()]
shards = dist.all_gather_object([None] * world, mine)

# SyncBatchNorm on uneven local batches (3, 5, 4) equals BatchNorm2d on the concatenated 12
data = np.random.default_rng(5)
x_all = data.standard_normal((12, 3, 2, 2)) * 3 + 1
w_all = data.standard_normal((12, 3, 2, 2))
lo, hi = (0, 3, 8, 12)[rank], (0, 3, 8, 12)[rank + 1]
def run(layer, x, w):
    x = minidl.tensor(x, requires_grad=True)
    y = layer(x)
    (y * minidl.tensor(w)).sum().backward()
    return layer, x, y.detach().data
sync, xs, ys = run(nn.SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(nn.BatchNorm2d(3).double())),
                   x_all[lo:hi], w_all[lo:hi])
whole, xw, yw = run(nn.BatchNorm2d(3).double(), x_all, w_all)
sync = sync[0]
dg, db = sync.weight.grad.detach(), sync.bias.grad.detach()
dist.all_reduce(dg)
dist.all_reduce(db)
def gap(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
bn = dict(kind=type(sync).__name__, out=gap(ys, yw[lo:hi]), dx=gap(xs.grad.data, xw.grad.array[lo:hi]),
          dg=gap(dg.data, whole.weight.grad.data), db=gap(db.data, whole.bias.grad.data),
          mean=gap(sync.running_mean.data, whole.running_mean.data),
          var=gap(sync.running_var.data, whole.running_var.data))
sync.eval(), whole.eval()
whole_out = whole(minidl.tensor(x_all[lo:hi])).data
bn["eval_out"] = gap(sync(minidl.tensor(x_all[lo:hi])).data, whole_out)

X = data.standard_normal((120, 4))
y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
forest = dist.fit_forest(RandomForestClassifier(n_estimators=7, max_depth=4, random_state=11), X, y)
alone = RandomForestClassifier(n_estimators=7, max_depth=4, random_state=11).fit(X, y)
same_forest = bool(np.array_equal(forest.predict_proba(X), alone.predict_proba(X)))
report(total=total, max=t.tolist(), broadcast=b.tolist(), gathered=[p.tolist() for p in parts],
       shards=shards, bn=bn, trees=len(forest.estimators_), same_forest=same_forest)
""")
    assert status == 0, output
    assert sorted(results) == [0, 1, 2], output
    for result in results.values():
        assert result["total"] == [6.0, 12.0] and result["max"] == [6.0, 12.0]
        assert result["broadcast"] == [2, 2, 2]
        assert result["gathered"] == [[0.0, 0.0], [1.0, 10.0], [2.0, 20.0]]
        shards = result["shards"]
        assert shards == [list(DistributedSampler(range(10), 3, r, seed=3)) for r in range(3)]
        assert [len(s) for s in shards] == [4, 4, 4] and set(sum(shards, [])) == set(range(10))
        assert result["bn"]["kind"] == "SyncBatchNorm"
        for key in ("out", "dx", "dg", "db", "mean", "var", "eval_out"):
            assert result["bn"][key] < 1e-12, (key, result["bn"])
        assert result["trees"] == 7 and result["same_forest"]


def test_a_rank_that_raises_ends_the_job_with_its_error(tmp_path):
    start = time.monotonic()
    status, output, _ = run_world(tmp_path, 2, PRELUDE + """
if rank == 1:
    raise ValueError("rank one fails on purpose")
dist.barrier()  # rank 0 would wait here forever without the abort
""")
    assert status != 0
    assert "rank one fails on purpose" in output and "aborting all 2 ranks" in output
    assert time.monotonic() - start < TIMEOUT


def test_mismatched_models_fail_on_every_rank_naming_the_difference(tmp_path):
    status, output, results = run_world(tmp_path, 2, PRELUDE + """
from minidl.nn.parallel import DistributedDataParallel as DDP
try:
    DDP(nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2 + rank)))
    report(error=None)
except RuntimeError as error:
    report(error=str(error))
""")
    assert status == 0, output
    assert sorted(results) == [0, 1], output
    for result in results.values():
        assert "rank 0 has parameter '1.weight' of shape (2, 8)" in result["error"]
        assert "rank 1 has parameter '1.weight' of shape (3, 8)" in result["error"]


# ---------------------------------------------------------------- Trainer

# written beside the worker: the same model, data and loaders in the world and in this process
TRAINER_SETUP = """
import numpy as np
import minidl
from minidl import nn, optim
from minidl.data import DataLoader, DistributedSampler, TensorDataset

data = np.random.default_rng(0)
X, Y = data.standard_normal((96, 6)), data.integers(0, 3, 96)
X_VAL, Y_VAL = data.standard_normal((31, 6)), data.integers(0, 3, 31)

# SGD with momentum and StepLR on a float64 MLP; global batch 32 from a DistributedSampler (one
# replica: the whole shuffle); validation on the uneven shards rank::replicas of 31 samples
def make_trainer(replicas=1, rank=0, wrap=None, callbacks=(), progress=False):
    minidl.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    model = wrap(model) if wrap else model
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    trainer = minidl.Trainer(model, opt, nn.CrossEntropyLoss(), callbacks=callbacks,
                             scheduler=optim.lr_scheduler.StepLR(opt, 1, gamma=0.9), progress=progress)
    train = TensorDataset(X, Y)
    train = DataLoader(train, 32 // replicas, sampler=DistributedSampler(train, replicas, rank, seed=3))
    val = DataLoader(TensorDataset(X_VAL[rank::replicas], Y_VAL[rank::replicas]), 8)
    return trainer, train, val

def weights(trainer):
    return np.concatenate([p.array.ravel() for p in trainer._plain_model().parameters()]).tolist()
"""


def relative_gap(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / (np.abs(b) + 1e-300)))


def test_trainer_on_two_ranks_equals_one_process_and_checkpoints_cross_over(tmp_path):
    """Trainer.fit of DDP on 2 ranks x 16 = one process x 32 (weights and every epoch's figures,
    float64); the figures are the same on both ranks; only rank 0 prints; a checkpoint of the
    distributed run (written by ModelCheckpoint on rank 0) resumes in one process, and one of a
    single process resumes on 2 ranks, both giving the weights of 4 epochs straight."""
    (tmp_path / "trainer_setup.py").write_text(TRAINER_SETUP)
    setup = runpy.run_path(str(tmp_path / "trainer_setup.py"))
    single, train, val = setup["make_trainer"]()
    single.fit(train, val, epochs=2)
    single.save_checkpoint(tmp_path / "single_2.npz")
    single.fit(train, val, epochs=2)
    want = setup["weights"](single)

    status, output, results = run_world(tmp_path, 2, PRELUDE + """
import contextlib
from minidl.nn.parallel import DistributedDataParallel as DDP
from minidl.train import ModelCheckpoint
from trainer_setup import make_trainer, weights

with open(f"printed_{rank}.txt", "w") as printed, contextlib.redirect_stdout(printed), \\
        contextlib.redirect_stderr(printed):
    trainer, train, val = make_trainer(world, rank, DDP, [ModelCheckpoint("dist_{epoch}.npz")], True)
    trainer.fit(train, val, epochs=2)
    trainer.fit(train, val, epochs=2)
resumed, train, val = make_trainer(world, rank, DDP)
resumed.load_checkpoint("single_2.npz")
resumed.fit(train, val, epochs=2)
report(history=trainer.history, weights=weights(trainer), resumed=weights(resumed))
""")
    assert status == 0, output
    assert sorted(results) == [0, 1], output
    assert results[0]["history"] == results[1]["history"]  # the same figures, to the bit
    for rank, result in results.items():
        assert relative_gap(result["weights"], want) < 1e-9, rank
        assert relative_gap(result["resumed"], want) < 1e-9, rank
        for name, values in single.history.items():
            assert relative_gap(result["history"][name], values) < 1e-9, (rank, name)
    printed = [(tmp_path / f"printed_{rank}.txt").read_text() for rank in (0, 1)]
    assert printed[1] == ""
    assert "epoch 1/2  loss" in printed[0] and "epoch 4/4  loss" in printed[0]
    assert "batch" in printed[0]  # the bars
    resumed, train, val = setup["make_trainer"]()
    resumed.load_checkpoint(tmp_path / "dist_2.npz")  # keys without module.: into the plain model
    assert resumed.epoch == 2
    resumed.fit(train, val, epochs=2)
    assert relative_gap(setup["weights"](resumed), want) < 1e-9


def test_early_stopping_on_rank_0_stops_every_rank(tmp_path):
    """Rank 0's EarlyStopping gives up after 2 epochs, rank 1's never would: both stop after 2
    (rank 1 going on alone would wait forever for rank 0's gradients)."""
    (tmp_path / "trainer_setup.py").write_text(TRAINER_SETUP)
    status, output, results = run_world(tmp_path, 2, PRELUDE + """
from minidl.nn.parallel import DistributedDataParallel as DDP
from minidl.train import EarlyStopping
from trainer_setup import make_trainer

stopping = EarlyStopping("loss", patience=1, min_delta=1e9 if rank == 0 else 0.0)
trainer, train, val = make_trainer(world, rank, DDP, [stopping])
trainer.fit(train, epochs=6)
report(epochs=len(trainer.history["loss"]), stopped=stopping.stopped_epoch)
""")
    assert status == 0, output
    assert results == {0: {"epochs": 2, "stopped": 2}, 1: {"epochs": 2, "stopped": None}}, output


def test_uneven_shards_on_three_ranks(tmp_path):
    """DistributedSampler pads 10 samples to 3 x 4, so every rank runs 2 batches; evaluation
    on shards of 4, 3 and 3 gives the figures of the whole set (sample-weighted); loaders with
    3, 2 and 2 batches are refused on every rank before the epoch, naming the counts."""
    status, output, results = run_world(tmp_path, 3, PRELUDE + """
from minidl.data import DataLoader, DistributedSampler, TensorDataset
from minidl.nn.parallel import DistributedDataParallel as DDP

data = np.random.default_rng(0)
X, Y = data.standard_normal((10, 4)), data.integers(0, 2, 10)
model = DDP(nn.Linear(4, 2).double())
trainer = minidl.Trainer(model, optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(),
                         progress=False)
sampler = DistributedSampler(TensorDataset(X, Y), drop_last=False)
trainer.fit(DataLoader(TensorDataset(X, Y), 2, sampler=sampler), epochs=1)
shard = trainer.evaluate(DataLoader(TensorDataset(X[rank::world], Y[rank::world]), 2))
output = model.module(minidl.tensor(X))
whole = dict(loss=nn.functional.cross_entropy(output, minidl.tensor(Y)).item(),
             accuracy=float(np.mean(output.array.argmax(1) == Y)))
uneven = DataLoader(TensorDataset(X[:6 if rank == 0 else 4], Y[:6 if rank == 0 else 4]), 2)
try:
    trainer.fit(uneven, epochs=1)
    error = None
except RuntimeError as caught:
    error = str(caught)
report(samples=len(sampler), shard=shard, whole=whole, error=error)
""")
    assert status == 0, output
    assert sorted(results) == [0, 1, 2], output
    for result in results.values():
        assert result["samples"] == 4
        for name in ("loss", "accuracy"):
            assert abs(result["shard"][name] - result["whole"][name]) < 1e-12, result
        assert "different numbers of batches (rank 0: 3, rank 1: 2, rank 2: 2)" in result["error"]


def test_a_non_finite_loss_on_one_rank_ends_every_rank(tmp_path):
    (tmp_path / "trainer_setup.py").write_text(TRAINER_SETUP)
    status, output, _ = run_world(tmp_path, 2, PRELUDE + """
from minidl.nn.parallel import DistributedDataParallel as DDP
import trainer_setup

if rank == 1:
    trainer_setup.X[:] = np.nan
trainer, train, val = trainer_setup.make_trainer(world, rank, DDP)
trainer.fit(train, epochs=1)
""")
    assert status != 0, output
    assert "FloatingPointError: Trainer: the loss became nan" in output, output
    assert "aborting all 2 ranks" in output, output


def test_train_fashion_distributed_prints_once(tmp_path):
    from test_plot import _tiny_fashion
    _tiny_fashion(str(tmp_path))
    status, output, _ = run_world(tmp_path, 2, f"""
import runpy, sys
sys.argv = ["train_fashion.py", "--distributed", "--data", ".", "--epochs", "2", "--batch-size", "10",
            "--no-progress", "--checkpoint", "last.npz"]
runpy.run_path({os.path.join(REPO, "scripts", "train_fashion.py")!r}, run_name="__main__")
""")
    assert status == 0, output
    assert output.count("test accuracy") == 1 and output.count("DistributedDataParallel(") == 1, output
    assert "2 ranks x 5 images a step" in output
    assert (tmp_path / "last.npz").exists()


# ---------------------------------------------------------------- in this process, no MPI

@pytest.mark.parametrize("call", [
    lambda: dist.all_reduce(minidl.zeros(2)), lambda: dist.broadcast(minidl.zeros(2), 0),
    lambda: dist.all_gather([minidl.zeros(2)], minidl.zeros(2)), dist.barrier, dist.get_rank,
    dist.get_world_size, lambda: DistributedDataParallel(nn.Linear(2, 2)),
    lambda: DistributedSampler(list(range(4)))])
def test_collectives_before_init_raise(call):
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="init_process_group"):
        call()


def test_init_outside_mpiexec_names_the_launcher(monkeypatch):
    for name in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="mpiexec -n"):
        dist.init_process_group()
    assert not dist.is_initialized()


@pytest.mark.parametrize("n, replicas, drop_last", [(10, 3, False), (10, 3, True), (12, 3, False),
                                                   (2, 3, False), (11, 4, True)])
def test_distributed_sampler_shards_as_pytorch(n, replicas, drop_last):
    shards = [list(DistributedSampler(range(n), replicas, r, shuffle=True, seed=7, drop_last=drop_last))
              for r in range(replicas)]
    size = n // replicas if drop_last else -(-n // replicas)
    assert all(len(s) == size for s in shards)
    order = list(np.random.default_rng(7).permutation(n))
    expected = (order * (1 + replicas))[:size * replicas]  # padded by repeating from the head
    for r, shard in enumerate(shards):
        assert shard == expected[r::replicas]
    everything = sum(shards, [])
    if drop_last or n % replicas == 0:
        assert len(set(everything)) == len(everything)  # disjoint
    if not drop_last:
        assert set(everything) == set(range(n))  # covering


def test_distributed_sampler_epochs_and_data_loader():
    sampler = DistributedSampler(range(9), num_replicas=2, rank=1, seed=0)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    unshuffled = DistributedSampler(range(9), num_replicas=2, rank=1, shuffle=False)
    assert list(unshuffled) == [1, 3, 5, 7, 0]
    loader = DataLoader(TensorDataset(np.arange(9) * 10), batch_size=2, sampler=unshuffled)
    assert len(loader) == 3
    assert [b.tolist() for (b,) in loader] == [[10, 30], [50, 70], [0]]
    with pytest.raises(ValueError, match="exclude"):
        DataLoader(TensorDataset(np.arange(9)), sampler=unshuffled, shuffle=True)
    with pytest.raises(ValueError, match="rank"):
        DistributedSampler(range(9), num_replicas=2, rank=2)


def test_sync_batchnorm_without_a_group_is_batchnorm_and_conversion_keeps_parameters():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU())
    before = list(model.named_parameters())
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert converted is model and isinstance(model[1], nn.SyncBatchNorm)
    assert [(n, id(p)) for n, p in model.named_parameters()] == [(n, id(p)) for n, p in before]
    x = minidl.randn(6, 4)
    reference = nn.BatchNorm1d(4)
    assert np.allclose(model[1](x).data, reference(x).data)
    assert np.allclose(model[1].running_var.data, reference.running_var.data)


def test_post_accumulate_grad_hook_runs_once_per_backward_as_each_layer_finishes():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    seen = []
    handles = [p.register_post_accumulate_grad_hook(lambda t, n=n: seen.append((n, t.grad.array.copy())))
               for n, p in model.named_parameters()]
    w = model[0].weight
    (model(minidl.randn(5, 3)).sum() + (w * w).sum()).backward()  # 0.weight is used twice
    names = [n for n, _ in seen]
    assert sorted(names[:2]) == ["2.bias", "2.weight"] and sorted(names[2:]) == ["0.bias", "0.weight"]
    assert np.array_equal(dict(seen)["0.weight"], w.grad.data)  # called once, both uses summed
    for handle in handles:
        handle.remove()
    model(minidl.randn(5, 3)).sum().backward()
    assert len(seen) == 4
    with pytest.raises(RuntimeError, match="leaf"):
        (w * 2).register_post_accumulate_grad_hook(print)
