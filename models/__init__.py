"""Model definitions used by the scripts; ``MODELS[name]()`` builds one for 28x28 grey images."""
from . import mlp
from . import fashion_cnn, lenet, local_cnn, tiled_cnn

MODELS = {
    "mlp": mlp.build,
    "lenet": lenet.build,
    "fashion_cnn": fashion_cnn.build,
    "tiled_cnn": tiled_cnn.build,
    "local_cnn": local_cnn.build,
}
