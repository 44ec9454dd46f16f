"""minidl.blas_threads: OpenBLAS's workers stop spinning soon after a call once minidl is imported."""
import os
import subprocess
import sys

import pytest

from minidl import blas_threads

IDLE_CPU = """
import time, numpy as np
{first}
from minidl import blas_threads
assert blas_threads.loaded_openblas()
a = np.ones((1024, 1024), np.float32)
for _ in range(3):
    {gemm}
busy = time.process_time()
time.sleep(0.2)
print(time.process_time() - busy)
"""


@pytest.mark.parametrize("first, gemm", [
    ("import minidl", "a @ a"),
    ("import numpy; import minidl", "a @ a"),
    ("from scipy.linalg import blas; import minidl", "blas.sgemm(1.0, a, a)"),  # SciPy's own OpenBLAS
])
def test_openblas_threads_stop_spinning_after_a_call(first, gemm):
    """With OpenBLAS's default spin (2^28 cycles) a worker burns about 0.1 s of CPU in the
    0.2 s sleep that follows a threaded GEMM (measured with MINIDL_SHORT_BLAS_SPIN=0); with
    the short spin it sleeps. numpy imported before minidl takes the restart path."""
    if "scipy" in first:
        pytest.importorskip("scipy")
    if (os.cpu_count() or 1) < 2:
        pytest.skip("OpenBLAS runs one thread here: nothing spins")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT", "MINIDL_SHORT_BLAS_SPIN",
                                                            "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", IDLE_CPU.format(first=first, gemm=gemm)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.strip()) < 0.05


@pytest.mark.parametrize("environment, expected", [
    ({}, True),
    ({"OPENBLAS_THREAD_TIMEOUT": "10"}, False),  # the user's setting wins
    ({"MINIDL_SHORT_BLAS_SPIN": "0"}, False),
])
def test_wanted_unless_the_user_chose(monkeypatch, environment, expected):
    for name in ("OPENBLAS_THREAD_TIMEOUT", "MINIDL_SHORT_BLAS_SPIN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert blas_threads.wanted() is expected


SERIAL_KERNEL_BLAS = """
import json
from minidl import blas_threads

def threads():
    counts = {}
    for library in blas_threads.loaded_openblas():
        for name in ("scipy_openblas_get_num_threads", "scipy_openblas_get_num_threads64_",
                     "openblas_get_num_threads", "openblas_get_num_threads64_"):
            if hasattr(library, name):
                counts[library._name] = getattr(library, name)()
                break
    return counts

with blas_threads.serial_kernel_blas() as made:
    inside = threads()
print(json.dumps({"made": made, "inside": inside, "after": threads()}))
"""


def test_scipys_blas_is_single_threaded_inside_and_numpys_is_left_alone():
    """Numba's np.dot calls SciPy's own OpenBLAS; the recurrent kernels need it on one thread
    while they run (they split the batch themselves), and give its threads back after. numpy's
    BLAS keeps its threads for the GEMMs throughout."""
    import json
    scipy = pytest.importorskip("scipy")
    if (os.cpu_count() or 1) < 2:
        pytest.skip("OpenBLAS runs one thread here")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", SERIAL_KERNEL_BLAS], env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    own = os.path.dirname(os.path.abspath(scipy.__file__)) + ".libs"
    scipys = [path for path in report["inside"] if path.startswith(own)]
    if not scipys:
        assert report["made"] is False
        pytest.skip("this SciPy has no OpenBLAS of its own")
    assert report["made"] is True
    for path, count in report["inside"].items():
        assert count == 1 if path in scipys else count > 1
    assert all(report["after"][path] > 1 for path in report["after"])
