"""Short spin waits for OpenBLAS's threads, so that they leave the cores to Numba's kernels.

After each call, OpenBLAS's worker threads busy-wait for the next one for up to 2^28 cycles
(about 0.1 s). A Numba kernel launched in that time (a CNN step's batch norm, pooling and
direct convolutions all follow GEMMs) shares its cores with the spinning threads. With a spin
of 2^n cycles, training steps on 2 cores measured (ms, medians; MLP and LeNet at batch 64,
FashionCNN at 64, an LSTM 64 -> 128 over 50 steps of 64):

    n          MLP        FashionCNN   LeNet      LSTM
    28         1.29       45.5         6.7        59.0     (OpenBLAS's default)
    17-18      1.37-1.46  25.3-27.9    5.5-6.4    18.7-23.6
    4          1.51-1.97  28.4-31.4    6.0-6.2    21.9

Too short a spin costs a wake-up before every GEMM of a layer-by-layer step; 2^17 cycles
(about 40 us) outlasts the gap between them. ``short_spin()`` sets OPENBLAS_THREAD_TIMEOUT=17
for the OpenBLAS libraries loaded later; those already loaded (numpy's, SciPy's) it makes
re-read their environment and stop their thread pools (``blas_thread_shutdown_``, as OpenBLAS's
own fork handler does), and the next BLAS call starts a pool again with the short spin.
``import minidl`` calls it unless ``OPENBLAS_THREAD_TIMEOUT`` is set or
``MINIDL_SHORT_BLAS_SPIN=0``.

``with serial_kernel_blas():`` makes the OpenBLAS that SciPy ships for itself single-threaded
for a while: only Numba's compiled ``np.dot`` calls it in minidl (the recurrent kernels' step
products), and those kernels split the batch between minidl's own threads instead, each
running the whole time loop on its rows. A step's (64 x 128) x (128 x 512) product is too
small for OpenBLAS to split without waking its thread each time.
"""
import contextlib
import ctypes
import functools
import importlib
import os

TIMEOUT = "17"


def wanted():
    return "OPENBLAS_THREAD_TIMEOUT" not in os.environ and os.environ.get("MINIDL_SHORT_BLAS_SPIN", "1") != "0"


def short_spin():
    """Returns True when every OpenBLAS loaded in this process (numpy's; SciPy's, which Numba's
    compiled ``np.dot`` calls) has, or will have when it loads, the short spin."""
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = TIMEOUT
    restarted = True
    for library in loaded_openblas():
        try:
            restart = library.openblas_read_env, library.blas_thread_shutdown_
        except AttributeError:  # an OpenBLAS without these entry points
            restarted = False
            continue
        for function in restart:
            function.argtypes, function.restype = [], None
            function()
    return restarted


def core_name(library):
    """The kernels an OpenBLAS library runs ("Haswell", "SkylakeX", ...: its CPU's, or
    OPENBLAS_CORETYPE's), or None."""
    for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
        function = getattr(library, name, None)
        if function is not None:
            function.argtypes, function.restype = [], ctypes.c_char_p
            return function().decode()
    return None


def loaded_openblas():
    """The OpenBLAS libraries this process has mapped (Linux's /proc/self/maps)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.rsplit("/", 1)[-1].lower()})
    except OSError:
        return []
    libraries = []
    for path in paths:
        try:
            libraries.append(ctypes.CDLL(path))
        except OSError:
            continue
    return libraries


@contextlib.contextmanager
def serial_kernel_blas():
    """Inside it, the OpenBLAS that SciPy ships for itself (its ``scipy.libs``; Numba's np.dot
    calls it through scipy.linalg.cython_blas) runs on one thread; its thread count is restored
    on the way out. Yields False, changing nothing, when there is no such copy (SciPy on a BLAS
    it shares with numpy, or not on OpenBLAS)."""
    controls = _kernel_blas_threads()
    if controls is None:
        yield False
        return
    get_threads, set_threads = controls
    before = get_threads()
    set_threads(1)
    try:
        yield True
    finally:
        set_threads(before)


def kernel_blas_can_be_serial():
    """Whether ``serial_kernel_blas`` can make the kernels' BLAS single-threaded."""
    return _kernel_blas_threads() is not None


@functools.cache
def _kernel_blas_threads():
    """(get, set) of SciPy's own OpenBLAS's thread count, or None."""
    try:
        import scipy
        importlib.import_module("scipy.linalg.cython_blas")  # loads SciPy's BLAS
    except ImportError:
        return None
    own = os.path.dirname(os.path.abspath(scipy.__file__)) + ".libs" + os.sep
    for library in loaded_openblas():
        if not library._name.startswith(own):
            continue
        for prefix in ("scipy_openblas", "openblas"):
            try:
                get_threads = getattr(library, prefix + "_get_num_threads")
                set_threads = getattr(library, prefix + "_set_num_threads")
            except AttributeError:
                continue
            get_threads.argtypes, get_threads.restype = [], ctypes.c_int
            set_threads.argtypes, set_threads.restype = [ctypes.c_int], None
            return get_threads, set_threads
    return None
