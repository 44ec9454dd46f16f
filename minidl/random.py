"""The random number generator behind randn, layer initialisation, dropout and shuffling.

Its state (``get_rng_state``) is what a checkpoint stores so that a resumed run draws the same
dropout masks and shuffles as an uninterrupted one.
"""
import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Seed minidl's generator, as ``torch.manual_seed`` does; returns the generator."""
    global _generator
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_generator():
    return _generator


def get_rng_state():
    """The state of minidl's generator: numpy's ``bit_generator.state`` dict (JSON-able)."""
    return _generator.bit_generator.state


def set_rng_state(state):
    """Put minidl's generator in ``state`` (from ``get_rng_state``); checked before it is used."""
    global _generator
    _generator = generator_from_state(state)


def generator_from_state(state):
    """A new numpy Generator in ``state``, a PCG64 ``bit_generator.state`` dict.

    The state must be exactly what numpy would report for it (same keys, integers in range):
    it is set on a fresh PCG64 and read back, and any difference raises ValueError.
    """
    if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
        raise ValueError(f"not a PCG64 generator state: {_preview(state)}")
    bit_generator = np.random.PCG64()
    try:
        bit_generator.state = state
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"not a PCG64 generator state ({type(exc).__name__}: {exc}): "
                         f"{_preview(state)}") from exc
    if bit_generator.state != state:
        raise ValueError(f"not a PCG64 generator state (it does not read back unchanged): "
                         f"{_preview(state)}")
    return np.random.Generator(bit_generator)


def _preview(value, limit=200):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
