"""Numba's on-disk cache of this package's kernels, made stale by a change to any of its files.

Numba stamps a cached kernel with a hash of the kernel's own source file. But a kernel carries
compiled into it what it calls from other files: register_tiles' vector intrinsics inside
register_conv's and register_winograd's kernels, elementary's exp inside softmax_ce's. After a
change to such a helper alone (a ``git pull`` of one file, an edit), Numba would still load the
old machine code from the cache and run it, silently. So every kernel of this package is
stamped with one hash of all its ``*.py`` files: a change to any of them recompiles them all,
once, as a cold cache does.

The stamp comes in through Numba's cache locators (``numba.core.caching``): subclasses of the
three that serve ordinary source files, tried first and declining every file outside this
package, so other code's caching is left as it is.
"""
import functools
import hashlib
import os

from numba.core import caching

PACKAGE = os.path.dirname(os.path.abspath(__file__))


def directory_stamp(directory):
    """A hash of the names and contents of the ``*.py`` files in ``directory``."""
    digest = hashlib.sha256()
    for name in sorted(entry.name for entry in os.scandir(directory) if entry.name.endswith(".py") and entry.is_file()):
        with open(os.path.join(directory, name), "rb") as source:
            digest.update(name.encode() + b"\0" + source.read() + b"\0")
    return digest.digest()


@functools.cache
def _package_stamp():
    """``directory_stamp(PACKAGE)``, once a process: the kernels it stamps are the code this
    process imported, whatever changes on disk after."""
    return directory_stamp(PACKAGE)


class _PackageStamped:
    """A locator mixin: this package's files get ``directory_stamp(PACKAGE)``; others none."""

    def get_source_stamp(self):
        return _package_stamp()

    @classmethod
    def from_function(cls, py_func, py_file):
        if os.path.dirname(os.path.abspath(py_file)) != PACKAGE:
            return None
        return super().from_function(py_func, py_file)


class UserProvidedLocator(_PackageStamped, caching.UserProvidedCacheLocator):
    """NUMBA_CACHE_DIR."""


class InTreeLocator(_PackageStamped, caching.InTreeCacheLocator):
    """__pycache__ beside the sources."""


class UserWideLocator(_PackageStamped, caching.UserWideCacheLocator):
    """The user's cache directory, when the sources' directory is read-only."""


LOCATORS = (UserProvidedLocator, InTreeLocator, UserWideLocator)
caching.CacheImpl._locator_classes[:0] = [locator for locator in LOCATORS
                                          if locator not in caching.CacheImpl._locator_classes]
