"""Model definitions used by the scripts; ``MODELS[name]()`` builds one for 28x28 grey images."""
from . import mlp

MODELS = {
    "mlp": mlp.build,
}
