"""minidl.memory: glibc keeps freed blocks for reuse unless the user opts out or tunes malloc."""
import sys

import pytest

from minidl import memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_glibc_accepts_the_settings():
    assert memory.keep_freed_memory() is True


@pytest.mark.parametrize("env, expected", [({}, True), ({"MINIDL_KEEP_FREED_MEMORY": "0"}, False),
                                           ({"MALLOC_TRIM_THRESHOLD_": "0"}, False)])
def test_the_user_can_opt_out(monkeypatch, env, expected):
    for name in ("MINIDL_KEEP_FREED_MEMORY", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "platform", "linux")
    assert memory.wanted() is expected
