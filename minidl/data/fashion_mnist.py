"""Fashion-MNIST: 70,000 28x28 grey images of 10 kinds of clothing (60,000 train, 10,000 test).

Where the files are looked for, in order:
  1. ``root`` if given, else the directory in ``$MINIDL_DATA``;
  2. the user cache, ``~/.cache/minidl/fashion-mnist`` (``$XDG_CACHE_HOME`` respected);
  3. Debian's package ``dataset-fashion-mnist``: ``/usr/share/datasets/fashion-mnist``;
  4. a download from the official mirror into (1) or else (2), each file checked by MD5.
``resolve`` and ``download`` serve any data set of IDX files described by a ``Source``
(``minidl.vision.datasets.MNIST`` uses them with MNIST's).
"""
import hashlib
import os
import tempfile
import urllib.request
from typing import NamedTuple

import numpy as np

from .dataset import Dataset
from .idx import read_idx

MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
MEAN, STD = 0.2860, 0.3530  # of the training images' pixels in [0, 1]
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")


class Source(NamedTuple):
    """Where a data set of IDX files comes from: its title (for messages), FILES-like split ->
    (images, labels) names, name -> MD5, download mirror, user cache sub-directory, system
    directory and the Debian package that fills it (None when there is none)."""
    title: str
    files: dict
    checksums: dict
    mirror: str
    cache_name: str
    system_dir: str = None
    system_package: str = None


def fashion_source():
    """Fashion-MNIST's Source, read from this module's globals when called."""
    return Source("Fashion-MNIST", FILES, MD5, MIRROR, "fashion-mnist", SYSTEM_DIR,
                  "dataset-fashion-mnist")


def user_cache_dir(name="fashion-mnist"):
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "minidl", name)


def _find(directory, name):
    """``name`` (gzip) or its uncompressed twin inside ``directory``, or None."""
    for candidate in (name, name[:-3]):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def _md5(path):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(directory, names, mirror=MIRROR, checksums=MD5, progress=True):
    """Fetch ``names`` from ``mirror`` into ``directory``; each file appears only once its MD5
    matches (written to a temporary file first, so a failed download leaves nothing behind)."""
    from tqdm.auto import tqdm
    os.makedirs(directory, exist_ok=True)
    for name in names:
        target = os.path.join(directory, name)
        if os.path.isfile(target):
            continue
        fd, partial = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(mirror + name, timeout=60) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=not progress) as bar:
                    for block in iter(lambda: response.read(1 << 16), b""):
                        out.write(block)
                        bar.update(len(block))
            actual = _md5(partial)
            if actual != checksums[name]:
                raise OSError(f"{name}: MD5 {actual} does not match the expected {checksums[name]}")
            os.replace(partial, target)
        finally:
            if os.path.exists(partial):
                os.remove(partial)


def resolve(root=None, train=True, download_missing=True, mirror=None, source=None,
            raw_dir=None):
    """The paths (images, labels) of the requested split of ``source`` (default Fashion-MNIST),
    found or fetched as the module says. ``raw_dir``: a sub-directory of the explicit root
    looked in first and downloaded into (torchvision's ``root/MNIST/raw``)."""
    source = source or fashion_source()
    mirror = mirror or source.mirror
    names = source.files["train" if train else "test"]
    explicit = root or os.environ.get("MINIDL_DATA")
    nested = os.path.join(explicit, raw_dir) if explicit and raw_dir else None
    cache = user_cache_dir(source.cache_name)
    candidates = [d for d in (nested, explicit, cache, source.system_dir) if d]
    for directory in candidates:
        paths = [_find(directory, name) for name in names]
        if all(paths):
            return tuple(paths)
    destination = nested or explicit or cache
    if download_missing:
        try:
            download(destination, names, mirror=mirror, checksums=source.checksums)
            return tuple(os.path.join(destination, name) for name in names)
        except OSError as error:
            reason = f"the download from {mirror} failed ({error})"
    else:
        reason = "download=False"
    package = (f"  - Debian/Ubuntu: sudo apt-get install {source.system_package}   (installs "
               f"{source.system_dir})\n" if source.system_package else "")
    raise FileNotFoundError(
        f"{source.title} files {', '.join(names)} were not found in {', '.join(candidates)} and "
        f"{reason}. Get them one of these ways:\n{package}"
        f"  - download the four .gz files from {mirror} into {destination}\n"
        f"  - point MINIDL_DATA (or root=) at a directory that holds them")


class FashionMNIST(Dataset):
    """Samples (image float32 (1, 28, 28), label int64); see the module docstring for where the
    files come from. Pixels are in [0, 1], or standardised (x - MEAN) / STD with ``normalize``
    (as torchvision's Normalize((0.2860,), (0.3530,)); it helps optimisers a little)."""

    classes = CLASSES

    def __init__(self, root=None, train=True, download=True, normalize=False):
        images_path, labels_path = resolve(root, train, download_missing=download)
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.shape[1:] != (28, 28):
            raise ValueError(f"FashionMNIST: {images_path} holds images of shape {images.shape}; "
                             "expected (N, 28, 28)")
        if labels.shape != (len(images),):
            raise ValueError(f"FashionMNIST: {labels_path} holds labels of shape {labels.shape}; "
                             f"expected ({len(images)},), one label per image of {images_path}")
        if labels.dtype.kind not in "iu" or (len(labels) and not 0 <= labels.min() <= labels.max() < 10):
            found = f" from {labels.min()} to {labels.max()}" if len(labels) else ""
            raise ValueError(f"FashionMNIST: {labels_path} holds {labels.dtype} labels{found}; "
                             "expected integer labels 0..9")
        self.data = (images.astype(np.float32) / np.float32(255))[:, None, :, :]
        if normalize:
            self.data -= np.float32(MEAN)
            self.data /= np.float32(STD)
        self.targets = labels.astype(np.int64)
        self.train = train

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        return self.data[index], self.targets[index]

    def get_batch(self, indices):
        return self.data[indices], self.targets[indices]
