"""minidl.save / minidl.load (.npz, atomic, no pickles) and save_checkpoint / load_checkpoint."""
import os

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
    assert info == {"epoch": 7, "note": "hi", "score": 0.5}

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
    assert info == {"epoch": None}
    np.testing.assert_array_equal(model2[0].weight.data, model[0].weight.data)
    with pytest.raises(KeyError, match="optimizer"):
        load_checkpoint(tmp_path / "m.npz", model2, optim.SGD(model2.parameters(), lr=0.1))


def test_checkpoint_into_wrong_model_raises(tmp_path):
    save_checkpoint(tmp_path / "m.npz", _model())
    with pytest.raises(RuntimeError):
        load_checkpoint(tmp_path / "m.npz", nn.Sequential(nn.Linear(3, 4)))
