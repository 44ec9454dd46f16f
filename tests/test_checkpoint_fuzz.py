"""Checkpoint loading on hostile files: random mutations of a valid checkpoint load or give a
ValueError/OSError naming the file, never another exception, and a failed load changes nothing;
an entry declaring 1 GiB is refused without being read (checked under an address-space limit)."""
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

import minidl  # noqa: E402
from minidl import nn, optim  # noqa: E402
from minidl.utils.serialization import load_checkpoint, save_checkpoint  # noqa: E402


def _parts(seed):
    minidl.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.2), nn.Linear(4, 2))
    opt = optim.Adam(model.parameters(), lr=0.01 * (seed + 1), amsgrad=True)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    return model, opt, sched


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model, opt, sched = _parts(0)
    x = minidl.tensor(np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32))
    loss = model(x).sum()
    loss.backward()
    opt.step()
    sched.step()
    path = tmp_path_factory.mktemp("fuzz") / "valid.npz"
    save_checkpoint(path, model, opt, sched, epoch=1, step=1, note="fuzz")
    deflated = path.with_name("deflated.npz")      # as np.savez_compressed writes it
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as out:
        for name in source.namelist():
            out.writestr(name, source.read(name))
    return {"stored": path.read_bytes(), "deflated": deflated.read_bytes()}


_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("overwrite"), st.integers(0, 10**6), st.binary(min_size=1, max_size=16)),
)


def _mutate(data, mutations):
    data = bytearray(data)
    for kind, position, value in mutations:
        position %= len(data) + 1
        if kind == "flip" and position < len(data):
            data[position] ^= value
        elif kind == "truncate":
            del data[position:]
        elif kind == "insert":
            data[position:position] = value
        elif kind == "overwrite":
            data[position:position + len(value)] = value
        if not data:
            break
    return bytes(data)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["stored", "deflated"]),
       mutations=st.lists(_mutation, min_size=1, max_size=3))
def test_mutated_checkpoint_loads_or_fails_cleanly(checkpoint, tmp_path, kind, mutations):
    path = tmp_path / "mutated.npz"
    path.write_bytes(_mutate(checkpoint[kind], mutations))
    model, opt, sched = _parts(1)
    weights = {k: v.copy() for k, v in model.state_dict().items()}
    lr, rng = opt.param_groups[0]["lr"], minidl.random.get_rng_state()
    try:
        load_checkpoint(path, model, opt, sched)
    except (ValueError, OSError) as error:
        assert str(path) in str(error), error
        for name, value in model.state_dict().items():
            assert np.array_equal(value, weights[name], equal_nan=True), name
        assert opt.param_groups[0]["lr"] == lr and opt.state == {}
        assert sched.last_epoch == 0
        assert minidl.random.get_rng_state() == rng


HUGE = 1 << 30


def _add_huge_entry(path, name):
    """Append ``name`` to the .npz at ``path``: a uint8 array of 1 GiB of zeros, deflated (~1 MB)."""
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open(name + ".npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "|u1", "fortran_order": False, "shape": (HUGE,)})
            chunk = bytes(1 << 24)
            for _ in range(HUGE // len(chunk)):
                f.write(chunk)


BOUNDED = textwrap.dedent('''
    import resource, sys
    import minidl
    from minidl import nn, optim
    from minidl.utils.serialization import load_checkpoint

    with open("/proc/self/status") as status:
        used = next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmSize:"))
    limit = used + (512 << 20)          # half a GiB above what the process maps now
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    minidl.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.2), nn.Linear(4, 2))
    opt = optim.Adam(model.parameters(), lr=0.01, amsgrad=True)
    for path in sys.argv[1:]:
        try:
            load_checkpoint(path, model, opt)
        except ValueError as error:
            print("REFUSED", path, error)
        else:
            print("LOADED", path)
''')


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc")
def test_entry_declaring_a_gibibyte_is_refused_without_reading_it(tmp_path):
    model, opt, _ = _parts(0)
    base = tmp_path / "base.npz"
    save_checkpoint(base, model, opt)
    extra, as_state = tmp_path / "extra.npz", tmp_path / "state.npz"
    for path in (extra, as_state):
        path.write_bytes(base.read_bytes())
    _add_huge_entry(extra, "junk")                               # an unexpected name
    _add_huge_entry(as_state, "optimizer.state.0.exp_avg")      # an expected name, wrong shape
    assert extra.stat().st_size < 8 << 20
    repo = os.path.dirname(os.path.dirname(os.path.abspath(minidl.__file__)))
    result = subprocess.run([sys.executable, "-c", BOUNDED, str(base), str(extra), str(as_state)],
                            cwd=repo, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"LOADED {base}"
    assert lines[1].startswith(f"REFUSED {extra}") and "'junk' is not part of a checkpoint" in lines[1]
    assert lines[2].startswith(f"REFUSED {as_state}") and "optimizer.state.0.exp_avg" in lines[2]
