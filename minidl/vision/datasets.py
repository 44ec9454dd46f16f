"""torchvision's MNIST and FashionMNIST: ``(root, train=True, download=False, transform=None,
target_transform=None)``; a sample is ``(transform(image), target_transform(label))``.

The image is a uint8 numpy array (28, 28) where torchvision gives a PIL image, so
``transforms.ToTensor()`` turns it into float32 (1, 28, 28) in [0, 1] as there; the label is a
Python int. Files are looked for in ``root/<Name>/raw`` (torchvision's layout), then ``root``
itself, then the user cache (``~/.cache/minidl/mnist`` or ``fashion-mnist``) and, for
Fashion-MNIST, Debian's ``dataset-fashion-mnist``; ``download=True`` fetches what is missing
into ``root/<Name>/raw``, each file checked by MD5 (``minidl.data.fashion_mnist.resolve``).
"""
import numpy as np

from ..data import fashion_mnist
from ..data.dataset import Dataset
from ..data.idx import read_idx
from ..tensor import Tensor

MNIST_SOURCE = fashion_mnist.Source(
    title="MNIST", files=fashion_mnist.FILES, mirror="https://ossci-datasets.s3.amazonaws.com/mnist/",
    checksums={"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
               "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
               "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
               "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
    cache_name="mnist")


class MNIST(Dataset):
    """MNIST's 28x28 digits (60,000 train, 10,000 test); see the module docstring.
    ``data``: uint8 Tensor (N, 28, 28); ``targets``: int64 Tensor (N,), as torchvision."""

    classes = ("0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six",
               "7 - seven", "8 - eight", "9 - nine")

    @staticmethod
    def _source():
        return MNIST_SOURCE

    def __init__(self, root=None, train=True, download=False, transform=None,
                 target_transform=None):
        name = type(self).__name__
        images_path, labels_path = fashion_mnist.resolve(
            root, train, download_missing=download, source=self._source(),
            raw_dir=f"{name}/raw")
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.dtype != np.uint8 or images.ndim != 3:
            raise ValueError(f"{name}: {images_path} holds {images.dtype} of shape "
                             f"{images.shape}; expected uint8 images (N, H, W)")
        if labels.shape != (len(images),) or labels.dtype.kind not in "iu":
            raise ValueError(f"{name}: {labels_path} holds {labels.dtype} labels of shape "
                             f"{labels.shape}; expected ({len(images)},) integers, one per image")
        self.data, self.targets = Tensor(images), Tensor(labels.astype(np.int64))
        self.train, self.transform, self.target_transform = train, transform, target_transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        image, target = self.data.array[index], int(self.targets.array[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target


class FashionMNIST(MNIST):
    """Fashion-MNIST's 28x28 clothing images, in torchvision's form (see the module docstring);
    ``minidl.data.FashionMNIST`` is the same data as ready float arrays."""

    classes = fashion_mnist.CLASSES

    @staticmethod
    def _source():
        return fashion_mnist.fashion_source()
