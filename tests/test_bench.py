"""The benchmark's PyTorch twins compute the same network as minidl's models (else its ratios
would compare different work), and its timing helper runs each contestant where it says."""
import os
import sys
import time

import numpy as np
import pytest

import minidl

torch = pytest.importorskip("torch")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
from bench_common import ALONE_ROUNDS, time_contestants, torch_twin  # noqa: E402
from models import MODELS  # noqa: E402


@pytest.mark.parametrize("name", ["mlp", "lenet", "fashion_cnn"])
def test_torch_twin_computes_the_same_outputs(name):
    minidl.manual_seed(0)
    model = MODELS[name]().eval()
    twin = torch_twin(model).eval()
    images = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)
    expected = model(minidl.tensor(images)).detach().numpy()
    with torch.no_grad():
        np.testing.assert_allclose(twin(torch.from_numpy(images)).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_torch_twin_refuses_a_layer_it_cannot_translate():
    with pytest.raises(TypeError, match="no PyTorch translation for Tanh"):
        torch_twin(minidl.nn.Sequential(minidl.nn.Tanh()))


def sleeping_steps(seconds, pid_file, only=None):
    """Steps for time_contestants: "short" sleeps ``seconds``, "long" three times that; each
    appends "name pid" to ``pid_file``."""
    def step(name, pause):
        def run():
            time.sleep(pause)
            with open(pid_file, "a") as f:
                f.write(f"{name} {os.getpid()}\n")
        return run
    steps = {"short": step("short", seconds), "long": step("long", 3 * seconds)}
    return steps if only is None else {only: steps[only]}


@pytest.mark.parametrize("alone", [False, True])
def test_time_contestants_times_each_step_in_or_out_of_this_process(tmp_path, alone):
    pid_file = str(tmp_path / "pids")
    medians = time_contestants(sleeping_steps, (0.01, pid_file), ("short", "long"), repeats=3, alone=alone)
    assert set(medians) == {"short", "long"}
    assert 0.01 <= medians["short"] < medians["long"] and medians["long"] >= 0.03
    with open(pid_file) as f:
        calls = [(name, int(pid)) for name, pid in (line.split() for line in f)]
    if not alone:
        assert {pid for _, pid in calls} == {os.getpid()}
        return
    # ALONE_ROUNDS fresh processes per contestant, taken in turn: short, long, short, long
    runs = [calls[0]] + [call for previous, call in zip(calls, calls[1:]) if call != previous]
    assert [name for name, _ in runs] == ["short", "long"] * ALONE_ROUNDS
    assert len({pid for _, pid in runs}) == len(runs) and os.getpid() not in {pid for _, pid in runs}
    per_process = -(-3 // ALONE_ROUNDS) + 1  # its share of the repeats and one warm-up call
    assert len(calls) == len(runs) * per_process
