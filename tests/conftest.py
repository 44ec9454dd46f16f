"""Shared test set-up: a fixed seed per test, PyTorch as an optional oracle, and tiny
Fashion-MNIST/MNIST IDX files in a data search path of the test's own."""
import os
import shutil

# CUDA tests run everywhere: with no NVIDIA driver on this machine, numba's CUDA simulator
# stands in for the GPU. Set before numba is first imported (numba.config reads it then).
if not (os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi")):
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import minidl  # noqa: E402
from minidl.data import fashion_mnist as fm  # noqa: E402
from minidl.data import write_idx  # noqa: E402

N_IMAGES = 5  # images in a split written by write_split


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


def write_split(directory, rng, train=True, gz=True, n=N_IMAGES):
    """(images, labels) of n random 28x28 uint8 images, written as the IDX files of the train or
    test split (``.gz`` names or the plain ones); image 0 starts with pixels 0, 255."""
    os.makedirs(directory, exist_ok=True)
    images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    labels = rng.integers(0, 10, n).astype(np.uint8)
    image_name, label_name = fm.FILES["train" if train else "test"]
    write_idx(os.path.join(directory, image_name if gz else image_name[:-3]), images)
    write_idx(os.path.join(directory, label_name if gz else label_name[:-3]), labels)
    return images, labels


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """tmp_path, with no MINIDL_DATA, an empty user cache, and no system directory."""
    monkeypatch.delenv("MINIDL_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(fm, "SYSTEM_DIR", str(tmp_path / "no-such-system-dir"))
    return tmp_path
