"""Hostile data files: random mutations of valid IDX (plain and .gz) and CSV files give either a
valid result or a ValueError/OSError naming the file; a gzip bomb fails within a memory bound."""
import gzip
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from minidl.data import Table, load_csv, read_idx, write_idx

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

ARRAYS = [np.arange(24, dtype=np.uint8).reshape(2, 3, 4), np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2),
          np.array([7, -9, 2 ** 30], np.int32), np.zeros((2, 2), np.float64), np.arange(-3, 3, dtype=np.int16)]

CSV = """\
Outlook,Temperature,Windy,Play
Sunny,85,FALSE,no
"Over, cast",83,FALSE,yes
Rainy,,TRUE,no
Sunny,72.5,FALSE,yes
"""

# a mutation: (kind, position as a fraction of the length, payload)
MUTATION = st.tuples(st.sampled_from(["flip", "truncate", "insert", "set"]), st.floats(0, 1),
                     st.binary(min_size=1, max_size=8))
SPECIAL = st.sampled_from([b",", b'"', b"\n", b"\r", b"\x00", b"\xff", b"\xef\xbb\xbf", b" ", b"1e400", b"nan"])


def mutate(data, mutations, header=0):
    """Apply the mutations; ``header`` > 0 aims "set" at the first ``header`` bytes."""
    data = bytearray(data)
    for kind, where, payload in mutations:
        span = min(header, len(data)) if kind == "set" and header else len(data)
        i = min(int(where * span), max(span - 1, 0))
        if kind == "flip" and data:
            data[i] ^= payload[0] or 0xFF
        elif kind == "truncate":
            del data[i:]
        elif kind == "insert":
            data[i:i] = payload
        elif kind == "set" and data:
            data[i] = payload[0]
    return bytes(data)


def check_read(read, path):
    """The reader's result, or None after a ValueError/OSError whose message names the file."""
    try:
        return read(path)
    except (ValueError, OSError) as error:
        assert str(path) in str(error), f"{type(error).__name__} does not name the file: {error}"
        return None


@FUZZ
@given(index=st.integers(0, len(ARRAYS) - 1), mutations=st.lists(MUTATION, min_size=1, max_size=4),
       in_header=st.booleans(), compressed=st.sampled_from(["no", "inside", "outside"]))
def test_mutated_idx_files(tmp_path, index, mutations, in_header, compressed):
    """Mutate the IDX bytes (inside=before gzip) or the gzip bytes themselves (outside)."""
    path = tmp_path / ("m.idx.gz" if compressed != "no" else "m.idx")
    write_idx(tmp_path / "clean.idx", ARRAYS[index])
    raw = (tmp_path / "clean.idx").read_bytes()
    header = 4 + 4 * ARRAYS[index].ndim if in_header else 0
    if compressed == "outside":
        data = mutate(gzip.compress(raw), mutations, header=16 if in_header else 0)
    else:
        data = mutate(raw, mutations, header)
        data = gzip.compress(data) if compressed == "inside" else data
    path.write_bytes(data)
    array = check_read(read_idx, path)
    if array is not None:
        assert isinstance(array, np.ndarray) and array.dtype.isnative
        assert array.nbytes <= len(gzip.decompress(data) if compressed != "no" else data)


@FUZZ
@given(mutations=st.lists(st.one_of(MUTATION, st.tuples(st.just("insert"), st.floats(0, 1), SPECIAL)),
                          min_size=1, max_size=4),
       target=st.sampled_from([None, "Play", 0]), encoding=st.sampled_from(["utf-8", "latin-1"]))
def test_mutated_csv_files(tmp_path, mutations, target, encoding):
    path = tmp_path / "m.csv"
    path.write_bytes(mutate(CSV.encode(), mutations))
    table = check_read(lambda p: load_csv(p, target=target, encoding=encoding), path)
    if table is not None:
        assert isinstance(table, Table)
        assert table.X.shape == (len(table.y), len(table.feature_names))
        assert table.categorical.shape == (len(table.feature_names),)


BOMB = """\
import gzip, resource, sys
from minidl.data import read_idx

def address_space():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))

limit = address_space() + (1 << 30)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
    read_idx(sys.argv[1])
except BaseException as error:
    print(type(error).__name__, error)
else:
    print("no error")
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc")
def test_gzip_bomb_fails_clearly_within_a_memory_bound(tmp_path):
    """Header: 4 uint8 items; the stream inflates to 1 GiB of zeros (64 gzip members of 16 MiB,
    which one decoder reads as one stream). With the address space capped at 1 GiB above the
    child's baseline, reading it must give the reader's ValueError, not a MemoryError."""
    path = tmp_path / "bomb.idx.gz"
    member = gzip.compress(bytes(16 << 20), compresslevel=9)
    with open(path, "wb") as f:
        f.write(gzip.compress(bytes([0, 0, 0x08, 1]) + (4).to_bytes(4, "big")))
        for _ in range(64):
            f.write(member)
    assert path.stat().st_size < 2 << 20
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(BOMB), str(path)], capture_output=True,
                          text=True, timeout=120, env=env, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ValueError"), done.stdout
    assert str(path) in done.stdout and "(4,)" in done.stdout
