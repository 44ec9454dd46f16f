"""Shared test set-up: a fixed seed per test, and PyTorch as an optional oracle."""
import os
import shutil

# CUDA tests run everywhere: with no NVIDIA driver on this machine, numba's CUDA simulator
# stands in for the GPU. Set before numba is first imported (numba.config reads it then).
if not (os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi")):
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import minidl  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    minidl.manual_seed(0)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def assert_close(actual, expected, rtol=1e-4, atol=1e-5, what=""):
    """Compare a Tensor/array with a torch tensor/array, reporting the worst difference."""
    actual = np.asarray(actual.array if isinstance(actual, minidl.Tensor) else actual)
    if hasattr(expected, "detach"):
        expected = expected.detach().numpy()
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def _devices():
    cuda_missing = pytest.mark.skipif(not minidl.cuda.is_available(), reason="CUDA is not available")
    return ["cpu", pytest.param("cuda", marks=cuda_missing)]


@pytest.fixture(params=_devices())
def device(request):
    """Run a test once per device: "cpu", and "cuda" (real GPU, or the CUDA simulator where no
    NVIDIA driver is present; skipped when numba-cuda is missing)."""
    return request.param
