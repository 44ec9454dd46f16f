"""minidl.vision: torchvision's MNIST/FashionMNIST over tiny IDX files written here, and the
transforms (seeded by minidl's global generator)."""
import hashlib
import os

import numpy as np
import pytest

import minidl
from minidl.data import fashion_mnist as fm
from minidl.utils.data import DataLoader
from minidl.vision import datasets, transforms
from conftest import N_IMAGES, write_split


@pytest.mark.parametrize("cls", [datasets.MNIST, datasets.FashionMNIST])
def test_torchvision_layout_and_samples(isolated, rng, cls):
    images, labels = write_split(isolated / "data" / cls.__name__ / "raw", rng)
    ds = cls(str(isolated / "data"), train=True, transform=transforms.ToTensor(),
             target_transform=lambda t: t + 100)
    assert len(ds) == N_IMAGES and ds.data.dtype == np.uint8 and ds.targets.dtype == np.int64
    x, y = ds[1]
    assert isinstance(x, minidl.Tensor) and x.shape == (1, 28, 28) and x.dtype == np.float32
    np.testing.assert_allclose(x.array[0], images[1] / 255, rtol=1e-6)
    assert y == labels[1] + 100 and isinstance(y, int)
    raw, label = cls(str(isolated / "data"))[0]
    assert raw.dtype == np.uint8 and raw.shape == (28, 28) and label == labels[0]
    xb, yb = next(iter(DataLoader(ds, batch_size=4)))
    assert xb.shape == (4, 1, 28, 28) and yb.dtype == np.int64


def test_mnist_and_fashion_do_not_share_files(isolated, rng):
    """Both use the same file names: each looks in its own root/<Name>/raw first."""
    mnist, _ = write_split(isolated / "MNIST" / "raw", rng, train=False)
    fashion, _ = write_split(isolated / "FashionMNIST" / "raw", rng, train=False)
    np.testing.assert_array_equal(datasets.MNIST(str(isolated), train=False)[0][0], mnist[0])
    np.testing.assert_array_equal(datasets.FashionMNIST(str(isolated), train=False)[0][0],
                                  fashion[0])


def test_files_directly_in_root(isolated, rng):
    images, _ = write_split(isolated / "flat", rng)
    np.testing.assert_array_equal(datasets.MNIST(str(isolated / "flat"))[2][0], images[2])


def test_missing_files_name_the_data_set(isolated):
    with pytest.raises(FileNotFoundError) as info:
        datasets.MNIST(str(isolated / "none"))
    message = str(info.value)
    assert "MNIST files" in message and "download=False" in message
    assert os.path.join("none", "MNIST", "raw") in message
    assert "apt-get" not in message                    # Debian packages only Fashion-MNIST


def test_download_checks_mnist_md5(isolated, rng, monkeypatch):
    mirror = isolated / "mirror"
    write_split(mirror, rng)
    sums = {name: hashlib.md5((mirror / name).read_bytes()).hexdigest()
            for name in fm.FILES["train"]}
    good = datasets.MNIST_SOURCE._replace(mirror=f"file://{mirror}/", checksums=sums)
    monkeypatch.setattr(datasets, "MNIST_SOURCE", good)
    ds = datasets.MNIST(str(isolated / "root"), download=True)
    assert len(ds) == N_IMAGES
    assert sorted(os.listdir(isolated / "root" / "MNIST" / "raw")) == sorted(fm.FILES["train"])
    bad = good._replace(checksums=dict.fromkeys(sums, "0" * 32))
    monkeypatch.setattr(datasets, "MNIST_SOURCE", bad)
    with pytest.raises(FileNotFoundError, match="MD5"):
        datasets.MNIST(str(isolated / "other"), download=True)
    assert not os.listdir(isolated / "other" / "MNIST" / "raw")


# ------------------------------------------------------------ transforms

def test_to_tensor_and_normalize():
    image = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)       # H, W, C
    t = transforms.ToTensor()(image)
    assert t.shape == (3, 2, 2) and t.dtype == np.float32
    np.testing.assert_allclose(t.data, image.transpose(2, 0, 1) / 255, rtol=1e-6)
    floats = np.ones((2, 2), np.float64) * 7
    assert transforms.ToTensor()(floats).dtype == np.float64     # only uint8 is scaled
    n = transforms.Normalize((0.1, 0.2, 0.3), (0.5, 0.5, 2.0))(t)
    expected = (image.transpose(2, 0, 1) / 255 - np.array([0.1, 0.2, 0.3])[:, None, None]) \
        / np.array([0.5, 0.5, 2.0])[:, None, None]
    np.testing.assert_allclose(n.data, expected, rtol=1e-5)
    assert n.dtype == np.float32
    with pytest.raises(ValueError, match="3 channels"):
        transforms.Normalize((0.1, 0.2), (1, 1))(t)
    with pytest.raises(TypeError, match="ToTensor"):
        transforms.Normalize(0.5, 0.5)(image)
    with pytest.raises(ValueError, match="zero"):
        transforms.Normalize(0.5, 0.0)
    with pytest.raises(ValueError, match="shape"):
        transforms.ToTensor()(np.zeros(3, np.uint8))


def test_compose_and_lambda():
    pipeline = transforms.Compose([transforms.ToTensor(), transforms.Lambda(lambda t: t * 2)])
    np.testing.assert_allclose(pipeline(np.full((2, 2), 255, np.uint8)).data, 2.0)


@pytest.mark.parametrize("as_tensor", [False, True])
def test_random_crop_pads_and_is_seeded(as_tensor):
    image = np.arange(16, dtype=np.uint8).reshape(4, 4)
    if as_tensor:
        image = transforms.ToTensor()(image)
    crop = transforms.RandomCrop(4, padding=2)
    minidl.manual_seed(5)
    first = [np.asarray(getattr(crop(image), "data", crop(image))) for _ in range(6)]
    minidl.manual_seed(5)
    second = [np.asarray(getattr(crop(image), "data", crop(image))) for _ in range(6)]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
        assert a.shape == ((1, 4, 4) if as_tensor else (4, 4))
    assert len({a.tobytes() for a in first}) > 1                  # different places
    padded = np.pad(np.asarray(getattr(image, "data", image)),
                    [(0, 0)] * (image.ndim - 2) + [(2, 2), (2, 2)])
    for a in first:                                                # each is a window of padded
        assert any(np.array_equal(a, padded[..., i:i + 4, j:j + 4])
                   for i in range(5) for j in range(5))
    with pytest.raises(ValueError, match="larger"):
        transforms.RandomCrop(6)(np.zeros((4, 4), np.uint8))


def test_random_horizontal_flip_resumes_from_saved_generator():
    image = np.arange(6, dtype=np.uint8).reshape(2, 3)
    flip = transforms.RandomHorizontalFlip(p=0.5)
    minidl.manual_seed(1)
    state = minidl.random.get_rng_state()
    run = [flip(image)[0, 0] for _ in range(20)]
    assert set(run) == {0, 2}                                      # flipped and not
    minidl.random.set_rng_state(state)
    assert [flip(image)[0, 0] for _ in range(20)] == run
    assert transforms.RandomHorizontalFlip(p=1.0)(image)[0].tolist() == [2, 1, 0]
    assert transforms.RandomHorizontalFlip(p=0.0)(image) is image
