"""Parameter: a leaf Tensor that a Module registers as learnable."""
import numpy as np

from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor with ``requires_grad=True`` that Modules collect in ``parameters()``."""

    def __init__(self, data, requires_grad=True):
        array = data.data if isinstance(data, Tensor) else np.asarray(data)
        device = data.device if isinstance(data, Tensor) else "cpu"
        super().__init__(array, requires_grad=requires_grad, device=device)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
