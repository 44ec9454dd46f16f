"""Parameter: a leaf Tensor that a Module registers as learnable."""
from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor with ``requires_grad=True`` that Modules collect in ``parameters()``."""

    def __init__(self, data, requires_grad=True):
        """``data``: an array or Tensor. An array lands on the default device, so inside
        ``with minidl.device("meta"):`` a layer's parameters take no memory."""
        array = data.array if isinstance(data, Tensor) else data
        device = data.device if isinstance(data, Tensor) else None
        super().__init__(array, requires_grad=requires_grad, device=device)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
