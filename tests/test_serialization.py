"""minidl.save / minidl.load (.npz, atomic, no pickles) and save_checkpoint / load_checkpoint."""
import json
import os
import signal
import stat
import subprocess
import sys

import numpy as np
import pytest

import minidl
from minidl import nn, optim
from minidl.utils import serialization
from minidl.utils.serialization import load_checkpoint, save_checkpoint


def _arrays(rng):
    return {
        "weight": rng.standard_normal((3, 4)).astype(np.float32),
        "bias": rng.standard_normal(3),
        "counts": rng.integers(0, 100, 5).astype(np.int64),
        "pixels": rng.integers(0, 256, (2, 2)).astype(np.uint8),
        "scalar": np.array(2.5),
        "name": np.array("hello"),
    }


def test_save_load_round_trip(tmp_path, rng):
    arrays = _arrays(rng)
    path = tmp_path / "state.npz"
    minidl.save(arrays, path)
    back = minidl.load(path)
    assert sorted(back) == sorted(arrays)
    for name, value in arrays.items():
        assert back[name].dtype == value.dtype, name
        assert back[name].shape == value.shape, name
        np.testing.assert_array_equal(back[name], value)


def test_save_accepts_tensors_and_creates_directories(tmp_path, rng):
    t = minidl.tensor(rng.standard_normal((2, 3)))
    path = tmp_path / "a" / "b" / "t.npz"
    minidl.save({"t": t}, str(path))
    np.testing.assert_array_equal(minidl.load(str(path))["t"], t.data)


def test_module_state_dict_round_trip(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    minidl.save(model.state_dict(), tmp_path / "m.npz")
    minidl.manual_seed(99)
    other = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert not np.array_equal(other[0].weight.data, model[0].weight.data)
    other.load_state_dict(minidl.load(tmp_path / "m.npz"))
    for (k, a), (k2, b) in zip(model.state_dict().items(), other.state_dict().items()):
        assert k == k2
        np.testing.assert_array_equal(a, b)


def _leftovers(directory, keep):
    return sorted(set(os.listdir(directory)) - set(keep))


def test_save_object_array_raises_and_keeps_old_file(tmp_path, rng):
    path = tmp_path / "state.npz"
    arrays = _arrays(rng)
    minidl.save(arrays, path)
    before = path.read_bytes()
    bad = {"fine": np.zeros(3), "bad": np.array([{"a": 1}, None], dtype=object)}
    with pytest.raises(TypeError, match="bad"):
        minidl.save(bad, path)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path, ["state.npz"]) == []
    np.testing.assert_array_equal(minidl.load(path)["weight"], arrays["weight"])


def test_save_failing_midway_keeps_old_file_and_no_temp(tmp_path, rng, monkeypatch):
    path = tmp_path / "state.npz"
    arrays = _arrays(rng)
    minidl.save(arrays, path)
    before = path.read_bytes()
    real_savez = np.savez

    def savez_then_fail(file, **payload):
        real_savez(file, **payload)        # a whole archive's bytes reach the temporary file...
        file.write(b"half of something")
        raise OSError("disk full")         # ...and then the write fails

    monkeypatch.setattr(serialization.np, "savez", savez_then_fail)
    with pytest.raises(OSError, match="disk full"):
        minidl.save({"weight": np.ones(7)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _leftovers(tmp_path, ["state.npz"]) == []
    np.testing.assert_array_equal(minidl.load(path)["weight"], arrays["weight"])


def test_save_failing_on_new_path_leaves_nothing(tmp_path, monkeypatch):
    def fail(file, **payload):
        file.write(b"PK partial")
        raise RuntimeError("interrupted")

    monkeypatch.setattr(serialization.np, "savez", fail)
    with pytest.raises(RuntimeError):
        minidl.save({"x": np.ones(3)}, tmp_path / "new.npz")
    assert os.listdir(tmp_path) == []


def test_save_replaces_existing_file(tmp_path):
    path = tmp_path / "s.npz"
    minidl.save({"x": np.zeros(2)}, path)
    minidl.save({"y": np.ones(4)}, path)
    back = minidl.load(path)
    assert list(back) == ["y"]
    assert os.listdir(tmp_path) == ["s.npz"]


def test_load_refuses_pickles(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, ok=np.arange(3), obj=np.array([{"run": "code"}, 1], dtype=object))
    # numpy itself can read it when pickles are allowed: the file is fine, the policy is not
    with np.load(path, allow_pickle=True) as archive:
        assert archive["obj"][0] == {"run": "code"}
    with pytest.raises(ValueError):
        minidl.load(path)


# ------------------------------------------------------------ checkpoints

def _model():
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))


def _train(model, opt, steps, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    x = minidl.tensor(rng.standard_normal((16, 3)).astype(np.float32))
    y = minidl.tensor(rng.integers(0, 2, 16))
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_checkpoint_restores_model_optimizer_and_epoch(tmp_path):
    model = _model()
    opt = optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.9), amsgrad=True)
    sched = optim.StepLR(opt, step_size=1, gamma=0.5)
    _train(model, opt, 3)
    sched.step()
    sched.step()
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, model, opt, sched, epoch=7, note="hi", score=0.5)

    minidl.manual_seed(123)
    model2 = _model()
    opt2 = optim.Adam(model2.parameters())
    sched2 = optim.StepLR(opt2, step_size=1, gamma=0.5)
    info = load_checkpoint(path, model2, opt2, sched2)
    assert info == {"epoch": 7, "step": None, "loaders": {}, "note": "hi", "score": 0.5}

    for (k, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=k)
    group, group2 = opt.param_groups[0], opt2.param_groups[0]
    assert group2["lr"] == group["lr"] == 0.0025
    assert tuple(group2["betas"]) == (0.8, 0.9)
    assert group2["amsgrad"] is True
    assert sched2.last_epoch == 2
    for p, p2 in zip(model.parameters(), model2.parameters()):
        state, state2 = opt.state[id(p)], opt2.state[id(p2)]
        assert state2["step"] == state["step"] == 3
        for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            assert state2[name].dtype == p2.dtype
            np.testing.assert_array_equal(state2[name], state[name], err_msg=name)

    # both go on identically
    _train(model, opt, 2, rng_seed=1)
    _train(model2, opt2, 2, rng_seed=1)
    for a, b in zip(model.parameters(), model2.parameters()):
        np.testing.assert_array_equal(a.data, b.data)


def test_checkpoint_without_optimizer(tmp_path):
    model = _model()
    save_checkpoint(tmp_path / "m.npz", model)
    model2 = _model()
    info = load_checkpoint(tmp_path / "m.npz", model2)
    assert info == {"epoch": None, "step": None, "loaders": {}}
    np.testing.assert_array_equal(model2[0].weight.data, model[0].weight.data)
    with pytest.raises(ValueError, match="no optimizer state"):
        load_checkpoint(tmp_path / "m.npz", model2, optim.SGD(model2.parameters(), lr=0.1))


def test_checkpoint_into_wrong_model_raises(tmp_path):
    save_checkpoint(tmp_path / "m.npz", _model())
    with pytest.raises(ValueError, match="model.2.weight"):
        load_checkpoint(tmp_path / "m.npz", nn.Sequential(nn.Linear(3, 4)))


# ------------------------------------------------------------ loads: all or nothing, clear errors

def _full_checkpoint(tmp_path):
    minidl.manual_seed(0)
    model = _model()
    opt = optim.Adam(model.parameters(), lr=0.01)
    sched = optim.StepLR(opt, step_size=1, gamma=0.5)
    _train(model, opt, 2)
    sched.step()
    path = tmp_path / "full.npz"
    save_checkpoint(path, model, opt, sched, epoch=3, step=6)
    return path


def _target():
    """A fresh model, optimizer and scheduler, and a snapshot to tell whether a load touched them."""
    minidl.manual_seed(1)
    model = _model()
    opt = optim.Adam(model.parameters(), lr=0.5)
    sched = optim.StepLR(opt, step_size=1, gamma=0.5)
    snapshot = ({k: v.copy() for k, v in model.state_dict().items()}, opt.param_groups[0]["lr"],
                sched.last_epoch, minidl.random.get_rng_state())
    return model, opt, sched, snapshot


def _assert_untouched(model, opt, sched, snapshot):
    weights, lr, last_epoch, rng = snapshot
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, weights[name], err_msg=name)
    assert opt.param_groups[0]["lr"] == lr and opt.state == {}
    assert sched.last_epoch == last_epoch
    assert minidl.random.get_rng_state() == rng


def _tampered(tmp_path, source, **changes):
    """A copy of the checkpoint ``source`` with entries replaced (None removes one)."""
    with np.load(source) as archive:
        arrays = {k: archive[k] for k in archive.files}
    for key, value in changes.items():
        key = key.replace("__", ".")
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    path = tmp_path / "tampered.npz"
    np.savez(path, **arrays)
    return path


def test_full_checkpoint_loads(tmp_path):
    path = _full_checkpoint(tmp_path)
    model, opt, sched, _ = _target()
    info = load_checkpoint(path, model, opt, sched)
    assert info["epoch"] == 3 and info["step"] == 6
    assert opt.param_groups[0]["lr"] == 0.005 and sched.last_epoch == 1


def test_model_only_checkpoint_into_trainer_changes_nothing(tmp_path):
    model0 = _model()
    save_checkpoint(tmp_path / "m.npz", model0)
    model, opt, sched, snapshot = _target()
    with pytest.raises(ValueError, match="m.npz.*no optimizer state"):
        load_checkpoint(tmp_path / "m.npz", model, opt, sched)
    _assert_untouched(model, opt, sched, snapshot)


def _groups(**changes):
    group = {"lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0,
             "amsgrad": False, "initial_lr": 0.01, "params": [0, 1, 2, 3]}
    group.update(changes)
    return np.array(json.dumps([group]))


@pytest.mark.parametrize("changes, key", [
    (dict(optimizer__param_groups=_groups(lr="fast")), "optimizer"),
    (dict(optimizer__param_groups=_groups(lr=-1.0)), "optimizer"),
    (dict(optimizer__param_groups=_groups(params=[0, 1, 2])), "optimizer"),
    (dict(optimizer__param_groups=np.array("{not json")), "optimizer.param_groups"),
    (dict(optimizer__param_groups=np.array("[" * 100000 + "]" * 100000)), "optimizer.param_groups"),
    (dict(optimizer__param_groups=np.zeros(3)), "optimizer.param_groups"),
    (dict(scheduler=np.array('{"last_epoch": -3, "base_lrs": [0.01]}')), "scheduler"),
    (dict(scheduler=np.array("nope")), "scheduler"),
    (dict(scheduler=None), "scheduler"),
    (dict(epoch=np.array(-1)), "epoch"),
    (dict(epoch=np.array(2.5)), "epoch"),
    (dict(step=np.array(-5)), "step"),
    (dict(rng=np.array('{"bit_generator": "PCG64"}')), "rng"),
    (dict(**{"loader.train": np.array('{"generator": 5}')}), "loader.train"),
    (dict(**{"optimizer.state.0.step": np.array(-5)}), "optimizer"),
    (dict(**{"optimizer.state.-1.exp_avg": np.zeros(15)}), "optimizer.state.-1.exp_avg"),
    (dict(**{"optimizer.state.9.exp_avg": np.zeros(15)}), "optimizer.state.9.exp_avg"),
    (dict(**{"optimizer.state.0.exp_avg": np.zeros(14)}), "optimizer.state.0.exp_avg"),
    (dict(**{"optimizer.state.0.bogus": np.zeros(15)}), "optimizer"),
    (dict(**{"model.0.weight": np.zeros((5, 3), complex)}), "model.0.weight"),
    (dict(**{"model.0.weight": np.zeros((5, 3), np.int64)}), "model.0.weight"),
    (dict(**{"model.0.weight": np.zeros((3, 5), np.float32)}), "model.0.weight"),
    (dict(**{"model.0.weight": np.array("text")}), "model.0.weight"),
    (dict(**{"model.0.weight": None}), "0.weight"),
    (dict(**{"model.9.weight": np.zeros(2)}), "model.9.weight"),
    (dict(extra=np.zeros(2)), "extra"),
    (dict(**{"meta.x": np.zeros(2)}), "meta.x"),
])
def test_tampered_checkpoint_is_refused_and_changes_nothing(tmp_path, changes, key):
    path = _tampered(tmp_path, _full_checkpoint(tmp_path), **changes)
    model, opt, sched, snapshot = _target()
    with pytest.raises(ValueError) as error:
        load_checkpoint(path, model, opt, sched)
    assert str(path) in str(error.value) and key in str(error.value)
    _assert_untouched(model, opt, sched, snapshot)


def test_damaged_files_give_value_errors_naming_them(tmp_path):
    good = _full_checkpoint(tmp_path)
    data = good.read_bytes()
    cases = {"truncated.npz": data[:len(data) // 2], "text.npz": b"epoch = 3\n" * 20,
             "empty.npz": b""}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    np.save(tmp_path / "array.npy", np.zeros(3))
    cases["array.npy"] = None
    for name in cases:
        path = tmp_path / name
        for load_ in (lambda p: load_checkpoint(p, _model()), minidl.load):
            with pytest.raises(ValueError, match="not an .npz archive") as error:
                load_(path)
            assert str(path) in str(error.value), name
    with pytest.raises(ValueError, match="npy array"):
        minidl.load(tmp_path / "array.npy")
    with pytest.raises(OSError, match="missing.npz"):
        load_checkpoint(tmp_path / "missing.npz", _model())


def test_load_refuses_pickles_naming_file_and_entry(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, ok=np.arange(3), obj=np.array([{"run": "code"}, 1], dtype=object))
    with pytest.raises(ValueError, match="'obj' holds pickled Python objects") as error:
        minidl.load(path)
    assert str(path) in str(error.value)


def test_checkpoint_metadata_must_be_single_values(tmp_path):
    with pytest.raises(TypeError, match="'scores'"):
        save_checkpoint(tmp_path / "c.npz", _model(), scores=[1, 2])
    with pytest.raises(ValueError, match="'loaders'"):
        save_checkpoint(tmp_path / "c.npz", _model(), loaders=1)
    with pytest.raises(ValueError, match="epoch"):
        save_checkpoint(tmp_path / "c.npz", _model(), epoch=2.5)
    assert not os.path.exists(tmp_path / "c.npz")


# ------------------------------------------------------------ saves: leftovers and permissions

KILLED_SAVE = """
import os, signal, sys
import numpy as np
from minidl.utils import serialization

def savez_then_die(file, **payload):
    file.write(b"PK half an archive")
    file.flush()
    os.kill(os.getpid(), signal.SIGKILL)

serialization.np.savez = savez_then_die
serialization.save({"x": np.ones(3)}, sys.argv[1])
"""


def test_temporary_of_a_killed_save_is_removed_by_the_next_save(tmp_path):
    path = tmp_path / "state.npz"
    minidl.save({"x": np.zeros(2)}, path)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(minidl.__file__)))
    result = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(path)], cwd=repo,
                            capture_output=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr
    leftovers = _leftovers(tmp_path, ["state.npz"])
    assert len(leftovers) == 1 and leftovers[0].startswith(".state.npz.tmp-")
    minidl.save({"y": np.zeros(2)}, tmp_path / "other.npz")    # another target: not touched
    assert _leftovers(tmp_path, ["state.npz", "other.npz"]) == leftovers
    minidl.save({"x": np.ones(2)}, path)
    assert _leftovers(tmp_path, ["state.npz", "other.npz"]) == []
    np.testing.assert_array_equal(minidl.load(path)["x"], np.ones(2))


def test_saved_files_get_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        minidl.save({"x": np.zeros(2)}, tmp_path / "a.npz")
        os.umask(0o077)
        save_checkpoint(tmp_path / "b.npz", _model())
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.npz").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "b.npz").st_mode) == 0o600
    os.chmod(tmp_path / "a.npz", 0o640)          # replacing a file keeps its permissions
    minidl.save({"x": np.ones(2)}, tmp_path / "a.npz")
    assert stat.S_IMODE(os.stat(tmp_path / "a.npz").st_mode) == 0o640
