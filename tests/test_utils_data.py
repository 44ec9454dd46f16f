"""minidl.utils.data: PyTorch's torch.utils.data path, default collation, Subset, random_split,
ConcatDataset, and the DataLoader's PyTorch keyword arguments."""
from collections import namedtuple

import numpy as np
import pytest

import minidl
from minidl.utils.data import (ConcatDataset, DataLoader, Dataset, Subset, TensorDataset,
                               default_collate, random_split)

torch = pytest.importorskip("torch")
from torch.utils.data import default_collate as torch_collate  # noqa: E402

Pair = namedtuple("Pair", "image label")


def _same(ours, theirs):
    """The same structure, container types (PyTorch gives lists for tuples), dtypes and values."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, minidl.Tensor), type(ours)
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
        np.testing.assert_array_equal(ours.data, theirs.numpy())
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict) and list(ours) == list(theirs)
        for key in theirs:
            _same(ours[key], theirs[key])
    elif isinstance(theirs, (list, tuple)):
        assert isinstance(ours, (list, tuple)) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _same(a, b)
    else:
        assert ours == theirs


@pytest.mark.parametrize("make", [
    lambda i: (np.full((2, 3), i, np.float32), i),                         # image, int label
    lambda i: {"x": np.arange(3) * i, "y": float(i), "name": f"s{i}"},     # dict, float, str
    lambda i: [np.uint8(i), True, (np.float64(i), np.ones(2, np.int32))],  # numpy scalars, nested
    lambda i: np.arange(4, dtype=np.float32) + i,                          # a bare array
])
def test_default_collate_matches_pytorch(make):
    samples = [make(i) for i in range(3)]
    _same(default_collate(samples), torch_collate(samples))


def test_default_collate_stacks_tensor_samples_and_keeps_namedtuples():
    batch = default_collate([Pair(minidl.ones(1, 2, 2) * i, i) for i in range(3)])
    assert isinstance(batch, Pair)
    assert batch.image.shape == (3, 1, 2, 2) and batch.image.dtype == np.float32
    np.testing.assert_array_equal(batch.label.data, [0, 1, 2])
    assert batch.label.dtype == np.int64


def test_default_collate_errors_name_the_fault():
    with pytest.raises(TypeError, match="object"):
        default_collate([object(), object()])
    with pytest.raises(RuntimeError, match="different lengths"):
        default_collate([(1, 2), (1,)])


class Samples(Dataset):
    """Per-sample dataset with a transform that returns Tensors, as vision datasets do."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return minidl.tensor(np.full((1, 2, 2), i, np.float32)), i


def test_loader_batches_tensor_samples_into_tensors():
    (x, y), = list(DataLoader(Samples(), batch_size=10))
    assert isinstance(x, minidl.Tensor) and x.shape == (10, 1, 2, 2)
    np.testing.assert_array_equal(y.data, np.arange(10))


def test_loader_dict_samples_and_collate_fn():
    class Dicts(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return {"x": np.array([i, i], np.float32), "y": i}

    batch = next(iter(DataLoader(Dicts(), batch_size=4)))
    assert set(batch) == {"x", "y"} and batch["x"].shape == (4, 2)
    custom = next(iter(DataLoader(Dicts(), batch_size=2, collate_fn=lambda s: [d["y"] for d in s])))
    assert custom == [0, 1]


def test_loader_accepts_pytorch_keywords():
    ds = TensorDataset(np.arange(12))
    loader = DataLoader(ds, batch_size=4, shuffle=True, num_workers=2, pin_memory=True,
                        persistent_workers=True, generator=np.random.default_rng(3))
    again = DataLoader(ds, batch_size=4, shuffle=True, generator=3)
    first = np.concatenate([b.data for b, in loader])
    np.testing.assert_array_equal(first, np.concatenate([b.data for b, in again]))
    assert sorted(first) == list(range(12))
    with pytest.raises(ValueError, match="num_workers"):
        DataLoader(ds, num_workers=-1)
    with pytest.raises(ValueError, match="seed or generator"):
        DataLoader(ds, seed=1, generator=1)


def test_random_split_counts_fractions_and_reproducibility():
    ds = TensorDataset(np.arange(10))
    a, b = random_split(ds, [7, 3], generator=0)
    assert (len(a), len(b)) == (7, 3)
    values = sorted(int(a[i][0]) for i in range(7)) + sorted(int(b[i][0]) for i in range(3))
    assert sorted(values) == list(range(10))
    parts = random_split(ds, [0.5, 0.3, 0.2])
    assert [len(p) for p in parts] == [5, 3, 2]
    odd = random_split(TensorDataset(np.arange(11)), [0.5, 0.5])   # remainder to the first
    assert [len(p) for p in odd] == [6, 5]
    minidl.manual_seed(4)
    x = [int(s[0]) for s in random_split(ds, [4, 6])[0]]
    minidl.manual_seed(4)
    assert x == [int(s[0]) for s in random_split(ds, [4, 6])[0]]
    with pytest.raises(ValueError, match="sum"):
        random_split(ds, [3, 3])
    with pytest.raises(TypeError, match="generator"):
        random_split(ds, [5, 5], generator="x")


def test_subset_keeps_fast_batches_and_concat_dataset():
    ds = TensorDataset(np.arange(10) * 10, np.arange(10))
    sub = Subset(ds, [9, 0, 4])
    assert hasattr(sub, "get_batch") and not hasattr(Subset(Samples(), [1]), "get_batch")
    (x, y), = list(DataLoader(sub, batch_size=3))
    np.testing.assert_array_equal(x.data, [90, 0, 40])
    cat = ConcatDataset([Subset(ds, [1, 2]), TensorDataset(np.array([7]), np.array([8]))])
    assert len(cat) == 3 and int(cat[2][0]) == 7 and int(cat[-2][0]) == 20
    with pytest.raises(IndexError):
        cat[3]


def test_torch_path_is_minidl_data():
    assert minidl.utils.data.DataLoader is minidl.data.DataLoader
