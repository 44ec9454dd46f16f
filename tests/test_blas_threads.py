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
