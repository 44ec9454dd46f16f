"""The random number generator behind randn, layer initialisation, dropout and shuffling."""
import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Seed minidl's generator, as ``torch.manual_seed`` does; returns the generator."""
    global _generator
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_generator():
    return _generator
