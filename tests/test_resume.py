"""Resuming is bit-exact: 4 epochs straight equal 2 epochs + checkpoint + a new process that
loads it + 2 epochs, with dropout, a shuffled loader, StepLR and Adam (issue 11).

The checkpoint must hold every random state training draws from: the loader's own shuffle
generator (seed given) or minidl's global generator (seed=None, which also drives dropout).
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minidl
from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset
from minidl.train import Trainer

SCRIPT = textwrap.dedent('''
    import sys
    import numpy as np
    import minidl
    from minidl import nn, optim
    from minidl.data import DataLoader, TensorDataset
    from minidl.train import Trainer

    mode, loader_seed, checkpoint, out = sys.argv[1:]

    def setup(global_seed, seed):
        minidl.manual_seed(global_seed)   # the only seeding: at the start
        rng = np.random.default_rng(1)
        x = rng.standard_normal((90, 6)).astype(np.float32)
        y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
        model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2))
        opt = optim.Adam(model.parameters(), lr=0.01)
        sched = optim.StepLR(opt, step_size=1, gamma=0.8)
        loader = DataLoader(TensorDataset(x, y), 16, shuffle=True, seed=seed)
        trainer = Trainer(model, opt, nn.CrossEntropyLoss(), scheduler=sched, progress=False)
        return trainer, loader

    seed = None if loader_seed == "none" else int(loader_seed)
    if mode == "reference":
        trainer, loader = setup(0, seed)
        trainer.fit(loader, epochs=4)
        np.savez(out, **trainer.model.state_dict())
        trainer, loader = setup(0, seed)
        trainer.fit(loader, epochs=2)
        trainer.save_checkpoint(checkpoint)
    else:
        # another global seed and loader seed: the checkpoint must put every state back
        trainer, loader = setup(12345, None if seed is None else seed + 1)
        trainer.load_checkpoint(checkpoint)
        trainer.fit(loader, epochs=2)
        assert trainer.epoch == 4
        np.savez(out, **trainer.model.state_dict())
''')


def _run(tmp_path, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(minidl.__file__)))]
        + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    script = tmp_path / "resume_script.py"
    script.write_text(SCRIPT)
    result = subprocess.run([sys.executable, str(script), *map(str, args)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("loader_seed", ["7", "none"])
def test_resume_in_a_new_process_is_bit_exact(tmp_path, loader_seed):
    checkpoint = tmp_path / "epoch2.npz"
    _run(tmp_path, "reference", loader_seed, checkpoint, tmp_path / "straight.npz")
    _run(tmp_path, "resume", loader_seed, checkpoint, tmp_path / "resumed.npz")
    with np.load(tmp_path / "straight.npz") as a, np.load(tmp_path / "resumed.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for name in a.files:
            assert np.array_equal(a[name], b[name]), name


def test_dataloader_state_dict_continues_the_shuffle():
    data = TensorDataset(np.arange(20))
    for seed in (3, None):
        minidl.manual_seed(0)
        loader = DataLoader(data, 5, shuffle=True, seed=seed)
        list(loader)
        state = loader.state_dict()
        global_state = minidl.random.get_rng_state()
        expected = [b[0].array.tolist() for b in loader]

        minidl.manual_seed(99)
        other = DataLoader(data, 5, shuffle=True, seed=None if seed is None else 4)
        other.load_state_dict(state)
        minidl.random.set_rng_state(global_state)
        assert [b[0].array.tolist() for b in other] == expected


@pytest.mark.parametrize("state", [
    None, {}, {"generator": None, "extra": 1}, {"generator": {"bit_generator": "MT19937"}},
    {"generator": {"bit_generator": "PCG64", "state": {"state": -1, "inc": 1},
                   "has_uint32": 0, "uinteger": 0}},
])
def test_dataloader_load_state_dict_refuses_a_bad_state(state):
    loader = DataLoader(TensorDataset(np.arange(4)), 2, shuffle=True, seed=1)
    before = loader.state_dict()
    with pytest.raises(ValueError):
        loader.load_state_dict(state)
    assert loader.state_dict() == before


def test_set_rng_state_refuses_a_bad_state_and_keeps_the_generator():
    minidl.manual_seed(5)
    state = minidl.random.get_rng_state()
    with pytest.raises(ValueError, match="PCG64"):
        minidl.random.set_rng_state({"bit_generator": "PCG64", "state": 3})
    assert minidl.random.get_rng_state() == state


def test_trainer_gives_loaded_loader_states_to_the_next_fit(tmp_path):
    x = np.random.default_rng(0).standard_normal((30, 2)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)

    def trainer_and_loader(seed):
        minidl.manual_seed(seed)
        model = nn.Sequential(nn.Linear(2, 4), nn.Dropout(0.5), nn.Linear(4, 2))
        trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(),
                          progress=False)
        return trainer, DataLoader(TensorDataset(x, y), 7, shuffle=True, seed=seed)

    straight, loader = trainer_and_loader(0)
    straight.fit(loader, epochs=3)
    first, loader = trainer_and_loader(0)
    first.fit(loader, epochs=1)
    first.save_checkpoint(tmp_path / "c.npz")
    resumed, loader = trainer_and_loader(1)
    resumed.load_checkpoint(tmp_path / "c.npz")
    resumed.save_checkpoint(tmp_path / "again.npz")   # before any fit: the loaded states stay
    resumed, loader = trainer_and_loader(2)
    resumed.load_checkpoint(tmp_path / "again.npz")
    resumed.fit(loader, epochs=2)
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert np.array_equal(a.data, b.data)
