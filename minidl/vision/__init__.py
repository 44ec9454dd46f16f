"""torchvision's paths for minidl: ``from minidl.vision import datasets, transforms``
(``torchvision.datasets`` -> ``minidl.vision.datasets``, ``torchvision.transforms`` ->
``minidl.vision.transforms``, ``torchvision.utils`` -> ``minidl.vision.utils``). Images are
numpy uint8 arrays (H, W) or (H, W, C): there is no PIL here."""
from . import datasets, transforms, utils

__all__ = ["datasets", "transforms", "utils"]
