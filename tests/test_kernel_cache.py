"""The kernels' on-disk cache goes stale when any file of the kernel package changes
(kernels/cpu/kernel_cache.py), not only the kernel's own file."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import minidl
from minidl.kernels.cpu import kernel_cache, softmax_ce


def test_directory_stamp_follows_every_python_file(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    (tmp_path / "notes.txt").write_text("not a source\n")
    first = kernel_cache.directory_stamp(tmp_path)
    assert kernel_cache.directory_stamp(tmp_path) == first
    (tmp_path / "notes.txt").write_text("still not a source\n")
    assert kernel_cache.directory_stamp(tmp_path) == first
    (tmp_path / "b.py").write_text("y = 3\n")
    changed = kernel_cache.directory_stamp(tmp_path)
    assert changed != first
    (tmp_path / "c.py").write_text("")
    assert kernel_cache.directory_stamp(tmp_path) not in (first, changed)


def test_a_kernel_is_stamped_with_its_whole_package():
    locator = softmax_ce._softmax_rows._cache._impl._locator
    assert isinstance(locator, kernel_cache.LOCATORS)
    assert locator.get_source_stamp() == kernel_cache.directory_stamp(kernel_cache.PACKAGE)


SOFTMAX = ("import numpy as np; from minidl.kernels.cpu import softmax_ce; "
           "print(repr(softmax_ce.softmax_forward(np.linspace(-3, 0, 8, dtype=np.float32)[None])[0].tolist()))")


def test_a_changed_helper_in_another_file_recompiles_the_cached_kernel(tmp_path):
    """softmax_ce's cached kernel inlines elementary.exp: after exp's polynomial changes (in
    elementary.py only) the next process must run the new code, not the cached old one."""
    package = os.path.dirname(minidl.__file__)
    shutil.copytree(package, tmp_path / "minidl", ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, PYTHONPATH=str(tmp_path), NUMBA_CACHE_DIR=str(tmp_path / "cache"))

    def softmax():
        out = subprocess.run([sys.executable, "-c", SOFTMAX], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=300, check=True)
        return np.array(eval(out.stdout.strip().splitlines()[-1]))

    before = softmax()
    assert os.listdir(tmp_path / "cache")  # the kernels were cached
    elementary = tmp_path / "minidl" / "kernels" / "cpu" / "elementary.py"
    source = elementary.read_text()
    assert "(1.9875691500e-4," in source
    elementary.write_text(source.replace("(1.9875691500e-4,", "(1.9875691500e-1,"))  # exp's x^7 term
    after = softmax()
    assert np.allclose(before, after, rtol=1e-3)  # the same function, a worse polynomial
    if not np.any(before != after):
        pytest.fail(f"the cached softmax kernel ran exp's old polynomial: {after.tolist()}")
