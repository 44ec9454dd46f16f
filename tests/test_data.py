"""IDX files, Dataset/TensorDataset/DataLoader, where FashionMNIST finds its files, hostile CSV files."""
import gzip
import hashlib
import os
import re

import numpy as np
import pytest

import minidl
from minidl.data import DataLoader, Dataset, FashionMNIST, TensorDataset, load_csv, read_idx, write_idx
from minidl.data import fashion_mnist as fm
from conftest import N_IMAGES, write_split


# ------------------------------------------------------------ IDX

@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype,shape", [(np.uint8, (5, 28, 28)), (np.float32, (3, 4)),
                                         (np.int32, (7,)), (np.float64, (2, 3, 2))])
def test_idx_round_trip(tmp_path, rng, dtype, shape, suffix):
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        array = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    else:
        array = rng.standard_normal(shape).astype(dtype)
    path = tmp_path / f"data.idx{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype)
    assert back.shape == shape
    np.testing.assert_array_equal(back, array)
    raw = (gzip.open if suffix else open)(path, "rb").read()
    assert raw[:4] == bytes([0, 0, {np.uint8: 0x08, np.float32: 0x0D, np.int32: 0x0C,
                                    np.float64: 0x0E}[dtype], len(shape)])
    # big-endian sizes follow
    assert np.frombuffer(raw[4:4 + 4 * len(shape)], ">u4").tolist() == list(shape)


def test_idx_reads_big_endian_data(tmp_path):
    """A file written by hand, as MNIST's files are: big-endian float32."""
    values = np.array([[1.5, -2.0], [3.25, 1e-3]], dtype=">f4")
    path = tmp_path / "hand.idx"
    path.write_bytes(bytes([0, 0, 0x0D, 2]) + np.array([2, 2], ">u4").tobytes() + values.tobytes())
    back = read_idx(path)
    assert back.dtype == np.float32 and back.dtype.isnative
    np.testing.assert_array_equal(back, values.astype(np.float32))


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(TypeError):
        write_idx(tmp_path / "x.idx", np.zeros(3, dtype=np.complex64))


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_bad_magic_number(tmp_path, suffix):
    path = tmp_path / f"bad.idx{suffix}"
    body = bytes([0, 1, 0x08, 1]) + np.array([3], ">u4").tobytes() + bytes(3)
    if suffix:
        with gzip.open(path, "wb") as f:
            f.write(body)
    else:
        path.write_bytes(body)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_idx(path)
    # an unknown type code is a bad magic number too
    path.unlink()
    write_idx(path, np.zeros(3, np.uint8))
    raw = (gzip.open if suffix else open)(path, "rb").read()
    with (gzip.open if suffix else open)(path, "wb") as f:
        f.write(raw[:2] + bytes([0x07]) + raw[3:])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_idx(path)


def test_idx_truncated_file(tmp_path):
    path = tmp_path / "short.idx"
    write_idx(path, np.arange(20, dtype=np.uint8).reshape(4, 5))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_idx(path)
    # header cut short too
    path.write_bytes(bytes([0, 0, 0x08, 3, 0, 0]))
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_idx(path)


def test_idx_truncated_gzip_file(tmp_path):
    """A download cut short: the .gz file itself ends early."""
    path = tmp_path / "short.idx.gz"
    write_idx(path, np.random.default_rng(0).integers(0, 256, (20, 28, 28)).astype(np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_idx(path)


def test_idx_gzip_content_truncated(tmp_path):
    """A valid gzip stream whose IDX payload is short."""
    path = tmp_path / "short.idx.gz"
    write_idx(tmp_path / "full.idx", np.zeros((4, 5), np.uint8))
    with gzip.open(path, "wb") as f:
        f.write((tmp_path / "full.idx").read_bytes()[:-1])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_idx(path)


def _gzip_bomb(path, n_zero_bytes):
    """A .gz whose IDX header promises 4 uint8 items but which inflates to n_zero_bytes more."""
    block = bytes(1 << 20)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(bytes([0, 0, 0x08, 1]) + (4).to_bytes(4, "big"))
        for _ in range(n_zero_bytes >> 20):
            f.write(block)


def test_idx_gzip_bomb_reads_only_what_the_header_promises(tmp_path):
    import tracemalloc
    path = tmp_path / "bomb.idx.gz"
    _gzip_bomb(path, 32 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=re.escape(str(path)) + r".*shape \(4,\) \(4 bytes"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20   # not the 32 MiB the stream inflates to


def test_idx_header_with_absurd_dimensions(tmp_path):
    path = tmp_path / "huge.idx"
    dims = [2 ** 32 - 1] * 3
    path.write_bytes(bytes([0, 0, 0x0E, 3]) + np.array(dims, ">u4").tobytes() + bytes(16))
    # the byte count is exact, not wrapped around int64
    with pytest.raises(ValueError, match=re.escape(f"{path}: header says shape {tuple(dims)} "
                                                   f"({(2 ** 32 - 1) ** 3 * 8} bytes of data), file holds 16")):
        read_idx(path)
    path.write_bytes(bytes([0, 0, 0x08, 40]) + np.ones(40, ">u4").tobytes() + bytes(1))
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*40 dimensions"):
        read_idx(path)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_bytes_path(tmp_path, suffix):
    path = tmp_path / f"data.idx{suffix}"
    write_idx(path, np.arange(6, dtype=np.int16).reshape(2, 3))
    np.testing.assert_array_equal(read_idx(os.fsencode(path)), np.arange(6).reshape(2, 3))
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match=re.escape(f"{path}")):
        read_idx(os.fsencode(path))


# ------------------------------------------------------------ datasets and the loader

def test_tensor_dataset_lengths_must_match():
    with pytest.raises(ValueError, match="length"):
        TensorDataset(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(ValueError):
        TensorDataset()


def test_tensor_dataset_accepts_tensors_and_indexes_rows():
    x = np.arange(12.0).reshape(6, 2)
    ds = TensorDataset(minidl.tensor(x), np.arange(6) * 10)
    assert len(ds) == 6
    xi, yi = ds[4]
    np.testing.assert_array_equal(xi, x[4])
    assert yi == 40


def test_dataloader_batches_and_last_partial_batch():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10, dtype=np.int64)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    assert len(loader) == 3
    batches = list(loader)
    assert len(batches) == 3
    assert [tuple(b[0].shape) for b in batches] == [(4, 2), (4, 2), (2, 2)]
    assert [tuple(b[1].shape) for b in batches] == [(4,), (4,), (2,)]
    assert all(isinstance(t, minidl.Tensor) for b in batches for t in b)
    assert batches[0][0].dtype == np.float32 and batches[0][1].dtype == np.int64
    np.testing.assert_array_equal(np.concatenate([b[1].data for b in batches]), y)
    np.testing.assert_array_equal(np.concatenate([b[0].data for b in batches]), x)


def test_dataloader_drop_last():
    ds = TensorDataset(np.arange(10))
    loader = DataLoader(ds, batch_size=4, drop_last=True)
    assert len(loader) == 2
    batches = [b[0].data for b in loader]
    assert [len(b) for b in batches] == [4, 4]
    # exact multiple: drop_last changes nothing
    assert len(DataLoader(ds, batch_size=5, drop_last=True)) == 2
    assert len(DataLoader(ds, batch_size=5)) == 2
    assert len(DataLoader(ds, batch_size=11)) == 1
    assert len(DataLoader(ds, batch_size=11, drop_last=True)) == 0
    assert list(DataLoader(ds, batch_size=11, drop_last=True)) == []


def test_dataloader_rejects_bad_batch_size():
    with pytest.raises(ValueError):
        DataLoader(TensorDataset(np.arange(3)), batch_size=0)


def _epoch(loader):
    return np.concatenate([b[0].data for b in loader])


def test_dataloader_shuffle_seeded():
    ds = TensorDataset(np.arange(23))
    a = DataLoader(ds, batch_size=5, shuffle=True, seed=7)
    b = DataLoader(ds, batch_size=5, shuffle=True, seed=7)
    epochs_a = [_epoch(a) for _ in range(3)]
    epochs_b = [_epoch(b) for _ in range(3)]
    for ea, eb in zip(epochs_a, epochs_b):
        np.testing.assert_array_equal(ea, eb)           # same seed, same orders
        assert sorted(ea.tolist()) == list(range(23))   # every index exactly once
    assert not np.array_equal(epochs_a[0], epochs_a[1])  # a new order each epoch
    assert not np.array_equal(epochs_a[1], epochs_a[2])
    assert not np.array_equal(epochs_a[0], np.arange(23))
    c = DataLoader(ds, batch_size=5, shuffle=True, seed=8)
    assert not np.array_equal(_epoch(c), epochs_a[0])


def test_dataloader_shuffle_without_seed_uses_minidl_generator():
    ds = TensorDataset(np.arange(30))
    minidl.manual_seed(5)
    first = _epoch(DataLoader(ds, batch_size=4, shuffle=True))
    minidl.manual_seed(5)
    again = _epoch(DataLoader(ds, batch_size=4, shuffle=True))
    np.testing.assert_array_equal(first, again)
    assert sorted(first.tolist()) == list(range(30))
    assert not np.array_equal(first, np.arange(30))


def test_dataloader_without_shuffle_keeps_order():
    ds = TensorDataset(np.arange(9))
    loader = DataLoader(ds, batch_size=2)
    np.testing.assert_array_equal(_epoch(loader), np.arange(9))
    np.testing.assert_array_equal(_epoch(loader), np.arange(9))


class PerSample(Dataset):
    """Only __len__ and __getitem__: the loader must stack samples itself."""

    def __init__(self, n):
        self.n = n
        self.calls = 0

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        self.calls += 1
        return np.full((2, 3), index, dtype=np.float32), np.int64(index * 2)


def test_dataloader_per_sample_dataset():
    ds = PerSample(7)
    assert not hasattr(ds, "get_batch")
    batches = list(DataLoader(ds, batch_size=3))
    assert [tuple(b[0].shape) for b in batches] == [(3, 2, 3), (3, 2, 3), (1, 2, 3)]
    assert ds.calls == 7
    x = np.concatenate([b[0].data for b in batches])
    y = np.concatenate([b[1].data for b in batches])
    np.testing.assert_array_equal(x[:, 0, 0], np.arange(7))
    np.testing.assert_array_equal(y, np.arange(7) * 2)
    assert x.dtype == np.float32 and y.dtype == np.int64


def test_dataloader_per_sample_shuffled_matches_pairs():
    batches = list(DataLoader(PerSample(10), batch_size=4, shuffle=True, seed=1))
    x = np.concatenate([b[0].data for b in batches])
    y = np.concatenate([b[1].data for b in batches])
    np.testing.assert_array_equal(y, x[:, 0, 0] * 2)    # fields stay paired
    assert sorted(y.tolist()) == list(range(0, 20, 2))


def test_dataloader_single_field_samples():
    class Plain(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.array([i, -i])

    batches = list(DataLoader(Plain(), batch_size=2))  # a bare sample collates to a Tensor, as in torch
    assert all(isinstance(b, minidl.Tensor) for b in batches)
    np.testing.assert_array_equal(batches[0].data, [[0, 0], [1, -1]])


# ------------------------------------------------------------ Fashion-MNIST

def _check_loaded(ds, images, labels):
    assert len(ds) == N_IMAGES
    assert ds.data.shape == (N_IMAGES, 1, 28, 28)
    assert ds.data.dtype == np.float32
    assert ds.data.min() == 0.0 and ds.data.max() == 1.0
    np.testing.assert_allclose(ds.data[:, 0], images / 255.0, rtol=1e-6)
    assert ds.targets.dtype == np.int64
    np.testing.assert_array_equal(ds.targets, labels)
    x, y = ds[2]
    assert x.shape == (1, 28, 28) and y == labels[2]


def test_fashion_mnist_root(isolated, rng):
    images, labels = write_split(isolated / "root", rng)
    ds = FashionMNIST(root=str(isolated / "root"), download=False)
    _check_loaded(ds, images, labels)
    assert ds.train


def test_fashion_mnist_test_split_and_uncompressed(isolated, rng):
    images, labels = write_split(isolated / "root", rng, train=False, gz=False)
    ds = FashionMNIST(root=str(isolated / "root"), train=False, download=False)
    _check_loaded(ds, images, labels)
    assert not ds.train
    with pytest.raises(FileNotFoundError):     # the train split is not there
        FashionMNIST(root=str(isolated / "root"), train=True, download=False)


def test_fashion_mnist_normalize(isolated, rng):
    images, _ = write_split(isolated / "root", rng)
    ds = FashionMNIST(root=str(isolated / "root"), download=False, normalize=True)
    np.testing.assert_allclose(ds.data[:, 0], (images / 255.0 - fm.MEAN) / fm.STD, rtol=1e-5,
                               atol=1e-6)
    assert ds.data.dtype == np.float32


def test_fashion_mnist_env_var(isolated, rng, monkeypatch):
    images, labels = write_split(isolated / "env", rng)
    monkeypatch.setenv("MINIDL_DATA", str(isolated / "env"))
    _check_loaded(FashionMNIST(download=False), images, labels)


def test_fashion_mnist_root_beats_env_var(isolated, rng, monkeypatch):
    write_split(isolated / "env", rng)
    images, labels = write_split(isolated / "root", rng)
    monkeypatch.setenv("MINIDL_DATA", str(isolated / "env"))
    _check_loaded(FashionMNIST(root=str(isolated / "root"), download=False), images, labels)


def test_fashion_mnist_user_cache(isolated, rng):
    cache = isolated / "xdg" / "minidl" / "fashion-mnist"
    assert fm.user_cache_dir() == str(cache)
    images, labels = write_split(cache, rng)
    _check_loaded(FashionMNIST(download=False), images, labels)


def test_fashion_mnist_system_dir(isolated, rng, monkeypatch):
    images, labels = write_split(isolated / "system", rng)
    monkeypatch.setattr(fm, "SYSTEM_DIR", str(isolated / "system"))
    _check_loaded(FashionMNIST(download=False), images, labels)


def test_fashion_mnist_missing_without_download(isolated):
    with pytest.raises(FileNotFoundError) as info:
        FashionMNIST(download=False)
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "MINIDL_DATA" in message
    assert "download=False" in message
    assert fm.user_cache_dir() in message
    assert not os.path.exists(fm.user_cache_dir())   # nothing was created


def test_fashion_mnist_rejects_mismatched_files(isolated, rng):
    root = isolated / "root"
    write_split(root, rng)
    write_idx(root / fm.FILES["train"][1], np.zeros(N_IMAGES + 1, np.uint8))
    with pytest.raises(ValueError, match="expected"):
        FashionMNIST(root=str(root), download=False)


@pytest.mark.parametrize("which,array,shape", [
    ("labels", np.zeros((N_IMAGES, 1), np.uint8), f"({N_IMAGES}, 1)"),
    ("images", np.zeros((N_IMAGES, 32, 32), np.uint8), f"({N_IMAGES}, 32, 32)"),
    ("images", np.zeros((N_IMAGES, 28 * 28), np.uint8), f"({N_IMAGES}, 784)"),
])
def test_fashion_mnist_rejects_wrong_shapes(isolated, rng, which, array, shape):
    root = isolated / "root"
    write_split(root, rng)
    name = fm.FILES["train"][which == "labels"]
    write_idx(root / name, array)
    with pytest.raises(ValueError, match=re.escape(f"{root / name} holds {which} of shape {shape}")):
        FashionMNIST(root=str(root), download=False)


def test_fashion_mnist_rejects_labels_out_of_range(isolated, rng):
    root = isolated / "root"
    write_split(root, rng)
    name = fm.FILES["train"][1]
    write_idx(root / name, np.full(N_IMAGES, 10, np.uint8))
    with pytest.raises(ValueError, match=re.escape(str(root / name)) + ".*0..9"):
        FashionMNIST(root=str(root), download=False)


def _md5(path):
    return hashlib.md5(open(path, "rb").read()).hexdigest()


def test_download_checks_md5(isolated, rng):
    src, dest = isolated / "mirror", isolated / "dest"
    write_split(src, rng)
    names = list(fm.FILES["train"])
    sums = {name: _md5(src / name) for name in names}
    fm.download(str(dest), names, mirror="file://" + str(src) + "/", checksums=sums,
                progress=False)
    assert sorted(os.listdir(dest)) == sorted(names)
    for name in names:
        assert (dest / name).read_bytes() == (src / name).read_bytes()


def test_download_wrong_md5_leaves_nothing(isolated, rng):
    src, dest = isolated / "mirror", isolated / "dest"
    write_split(src, rng)
    name = fm.FILES["train"][0]
    with pytest.raises(OSError, match="MD5"):
        fm.download(str(dest), [name], mirror="file://" + str(src) + "/",
                    checksums={name: "0" * 32}, progress=False)
    assert os.listdir(dest) == []   # neither the file nor a temporary file


def test_download_missing_file_leaves_nothing(isolated):
    (isolated / "mirror").mkdir()
    dest = isolated / "dest"
    name = fm.FILES["train"][0]
    with pytest.raises(OSError):
        fm.download(str(dest), [name], mirror="file://" + str(isolated / "mirror") + "/",
                    checksums={name: "0" * 32}, progress=False)
    assert os.listdir(dest) == []


def test_resolve_downloads_into_env_dir(isolated, rng, monkeypatch):
    src = isolated / "mirror"
    images, labels = write_split(src, rng)
    for name in fm.FILES["train"]:
        monkeypatch.setitem(fm.MD5, name, _md5(src / name))
    monkeypatch.setenv("MINIDL_DATA", str(isolated / "env"))
    paths = fm.resolve(train=True, mirror="file://" + str(src) + "/")
    assert paths == tuple(str(isolated / "env" / n) for n in fm.FILES["train"])
    np.testing.assert_array_equal(read_idx(paths[0]), images)


def test_resolve_failed_download_raises_file_not_found(isolated):
    (isolated / "mirror").mkdir()
    mirror = "file://" + str(isolated / "mirror") + "/"
    with pytest.raises(FileNotFoundError) as info:
        fm.resolve(train=True, mirror=mirror)
    assert "download from " + mirror in str(info.value)
    assert "apt-get install dataset-fashion-mnist" in str(info.value)


# ------------------------------------------------------------ CSV (load_csv)

def _csv(tmp_path, data, name="data.csv"):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def test_csv_huge_whole_number_target_stays_float(tmp_path):
    path = _csv(tmp_path, "a,y\n1,1e20\n2,3\n3,-4e300\n")
    y = load_csv(path).y
    assert y.dtype == np.float64 and list(y) == [1e20, 3.0, -4e300]
    assert load_csv(_csv(tmp_path, "a,y\n1,9007199254740992\n2,3\n")).y.dtype == np.int64  # 2**53


def test_csv_trailing_delimiter_column_is_dropped(tmp_path):
    X, y, names = load_csv(_csv(tmp_path, "a,b,y,\n1,2,0,\n3,4,1,\n"))
    assert names == ["a", "b"] and list(y) == [0, 1]
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    path = _csv(tmp_path, "a,,y\n1,2,0\n3,4,1\n", "unnamed.csv")
    with pytest.raises(ValueError, match=re.escape(f"{path} column 2 has no name")):
        load_csv(path)


def test_csv_duplicate_column_names(tmp_path):
    path = _csv(tmp_path, "a,y,y\n1,2,3\n")
    with pytest.raises(ValueError, match=re.escape(f"{path} has two columns named 'y' (columns 2 and 3)")):
        load_csv(path, target="y")


def test_csv_empty_cell_is_missing_as_nan_in_every_column(tmp_path):
    table = load_csv(_csv(tmp_path, "colour,size,y\nred,1,0\n,,1\n  ,3,1\n"))
    assert list(table.categorical) == [True, False]
    assert table.X[0, 0] == "red"
    assert all(isinstance(v, float) and np.isnan(v) for v in (table.X[1, 0], table.X[2, 0], table.X[1, 1]))
    path = _csv(tmp_path, "a,y\n1,no\n2,\n", "no_target.csv")
    with pytest.raises(ValueError, match=re.escape(f"{path} line 3: the target 'y' (column 2) is empty")):
        load_csv(path)


def test_csv_field_over_the_csv_limit_names_file_and_line(tmp_path):
    path = _csv(tmp_path, "a,y\n1,2\n3,4\n" + "x" * 200_000 + ",5\n")
    with pytest.raises(ValueError, match=re.escape(f"{path} line 4: field larger than field limit")):
        load_csv(path)


def test_csv_encoding(tmp_path):
    path = _csv(tmp_path, "name,y\nZürich,1\nCafé,0\n".encode("latin-1"))
    with pytest.raises(ValueError, match=re.escape(f"{path} line 2 ") + ".*encoding='latin-1'"):
        load_csv(path)
    assert list(load_csv(path, encoding="latin-1").X[:, 0]) == ["Zürich", "Café"]
    with pytest.raises(ValueError, match="encoding='no-such-codec'"):
        load_csv(path, encoding="no-such-codec")


def test_csv_utf8_byte_order_mark_is_dropped(tmp_path):
    _, _, names = load_csv(_csv(tmp_path, "\ufeffa,b,y\n1,2,3\n".encode("utf-8")))
    assert names == ["a", "b"]
