"""save_safetensors / load_safetensors: the format, cross-reading with the safetensors package,
weights moving between PyTorch and minidl, and strict loading of damaged files."""
import copy
import json
import os
import struct

import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.utils import load_safetensors, save_safetensors
from minidl.utils.safetensors import MAX_HEADER_BYTES


def _arrays(rng):
    return {
        "weight": rng.standard_normal((3, 4)).astype(np.float32),
        "bias": rng.standard_normal(3),
        "half": rng.standard_normal((2, 2)).astype(np.float16),
        "counts": rng.integers(-100, 100, 5).astype(np.int64),
        "small": rng.integers(-5, 5, 3).astype(np.int8),
        "pixels": rng.integers(0, 256, (2, 2)).astype(np.uint8),
        "mask": np.array([True, False, True]),
        "scalar": np.array(2.5, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


def _assert_same(back, arrays):
    assert list(back) == list(arrays)
    for name, value in arrays.items():
        assert back[name].dtype == value.dtype, name
        assert back[name].shape == value.shape, name
        np.testing.assert_array_equal(back[name], value, err_msg=name)


def test_round_trip_keeps_names_dtypes_shapes_and_metadata(tmp_path, rng):
    arrays = _arrays(rng)
    path = tmp_path / "w.safetensors"
    save_safetensors(arrays, path, metadata={"format": "pt", "note": "minidl"})
    back, metadata = load_safetensors(path, with_metadata=True)
    _assert_same(back, arrays)
    assert metadata == {"format": "pt", "note": "minidl"}
    assert back["weight"].flags.writeable  # a copy, not a view of a read-only buffer


def test_file_layout_follows_the_format(tmp_path):
    path = tmp_path / "w.safetensors"
    save_safetensors({"a": np.arange(3, dtype=np.float32), "b": np.ones((2, 2), np.int32)}, path)
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    assert (8 + length) % 8 == 0
    header = json.loads(raw[8:8 + length])
    assert header["a"] == {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}
    assert header["b"] == {"dtype": "I32", "shape": [2, 2], "data_offsets": [12, 28]}
    assert raw[8 + length:8 + length + 12] == np.arange(3, dtype="<f4").tobytes()
    assert len(raw) == 8 + length + 28


def test_tensors_and_state_dicts_save_and_load_into_a_model(tmp_path):
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    path = tmp_path / "model.safetensors"
    save_safetensors(dict(model.named_parameters()), tmp_path / "params.safetensors")
    save_safetensors(model.state_dict(), path)
    twin = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    twin.load_state_dict(load_safetensors(path))
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert set(load_safetensors(tmp_path / "params.safetensors")) == {n for n, _ in model.named_parameters()}


def test_unsupported_values_are_refused_by_name(tmp_path):
    with pytest.raises(TypeError, match="'names'"):
        save_safetensors({"names": np.array(["a", "b"])}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="metadata"):
        save_safetensors({"a": np.ones(2)}, tmp_path / "x.safetensors", metadata={"epoch": 3})
    assert not os.listdir(tmp_path)  # nothing, not even a temporary file, is left behind


def test_a_failed_save_keeps_the_old_file(tmp_path):
    path = tmp_path / "w.safetensors"
    save_safetensors({"a": np.ones(2, np.float32)}, path)
    with pytest.raises(TypeError):
        save_safetensors({"a": np.zeros(2), "b": np.array([object()])}, path)
    np.testing.assert_array_equal(load_safetensors(path)["a"], np.ones(2, np.float32))
    assert os.listdir(tmp_path) == ["w.safetensors"]


def test_bf16_loads_widened_to_float32(tmp_path):
    values = np.array([1.0, -2.5, 3.140625], dtype=np.float32)
    raw = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    path = tmp_path / "bf16.safetensors"
    _write_raw(path, {"x": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}, raw)
    np.testing.assert_array_equal(load_safetensors(path)["x"], values)


# ---------------------------------------------------------------- damaged files

def _write_raw(path, header, data=b"", length=None):
    text = json.dumps(header).encode() if isinstance(header, dict) else header
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)


GOOD = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "I64", "shape": [1], "data_offsets": [8, 16]}}


@pytest.mark.parametrize("header, data, length, message", [
    (GOOD, bytes(15), None, "truncated"),
    (GOOD, bytes(17), None, "truncated or padded"),
    (GOOD, bytes(16), 10 ** 9, "declares a header"),
    (GOOD, bytes(16), MAX_HEADER_BYTES + 1, "declares a header"),
    (b"[1, 2]", b"", None, "not a JSON object"),
    (b"{\"a\": ", b"", None, "not JSON"),
    (b"\xff\xfe{}", b"", None, "not UTF-8"),
    (b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},'
     b' "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', bytes(8), None, "'a' twice"),
    ({"a": {"dtype": "F7", "shape": [1], "data_offsets": [0, 4]}}, bytes(4), None, "tensor 'a'.*dtype"),
    ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8), None, "tensor 'a'.*needs 12"),
    ({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, bytes(8), None, "tensor 'a'.*shape"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, bytes(8), None, "tensor 'a'.*begin <= end"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12), None, "tensor 'a'.*contiguous"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12), None, "tensor 'b'.*contiguous"),
    ({"a": {"dtype": "F32", "shape": [2]}}, bytes(8), None, "tensor 'a'.*fields"),
    ({"__metadata__": {"epoch": 3}}, b"", None, "__metadata__"),
])
def test_damaged_files_raise_value_errors_naming_the_file(tmp_path, header, data, length, message):
    path = tmp_path / "bad.safetensors"
    _write_raw(path, header, data, length)
    with pytest.raises(ValueError, match=message) as info:
        load_safetensors(path)
    assert str(path) in str(info.value)


def test_every_truncation_of_a_good_file_is_refused(tmp_path, rng):
    path = tmp_path / "good.safetensors"
    save_safetensors({"w": rng.standard_normal((2, 3)).astype(np.float32), "b": np.arange(2)}, path)
    raw = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    for size in range(len(raw)):
        cut.write_bytes(raw[:size])
        with pytest.raises(ValueError, match="cut.safetensors"):
            load_safetensors(cut)


def test_random_bytes_never_crash_the_reader(tmp_path, rng):
    path = tmp_path / "noise.safetensors"
    save_safetensors({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, path)
    raw = bytearray(path.read_bytes())
    for _ in range(200):
        damaged = bytearray(raw)
        for position in rng.integers(0, len(raw), 3):
            damaged[position] = rng.integers(0, 256)
        path.write_bytes(bytes(damaged))
        try:
            load_safetensors(path)
        except ValueError as error:
            assert str(path) in str(error)


# ---------------------------------------------------------------- the safetensors package

def test_files_cross_read_with_the_safetensors_package(tmp_path, rng):
    st = pytest.importorskip("safetensors.numpy")
    arrays = _arrays(rng)
    ours = tmp_path / "ours.safetensors"
    save_safetensors(arrays, ours, metadata={"format": "np"})
    theirs = st.load_file(str(ours))
    assert set(theirs) == set(arrays)
    for name, value in arrays.items():
        assert theirs[name].dtype == value.dtype and theirs[name].shape == value.shape, name
        np.testing.assert_array_equal(theirs[name], value, err_msg=name)
    their_file = tmp_path / "theirs.safetensors"
    st.save_file(arrays, str(their_file), metadata={"format": "np"})
    back, metadata = load_safetensors(their_file, with_metadata=True)
    _assert_same({k: back[k] for k in arrays}, arrays)
    assert metadata == {"format": "np"}


# ---------------------------------------------------------------- PyTorch twins

def _torch_and_minidl_twins(torch):
    tnn = torch.nn
    mlp = (tnn.Sequential(tnn.Flatten(), tnn.Linear(12, 8), tnn.ReLU(), tnn.Linear(8, 3)),
           nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3)))
    cnn = (tnn.Sequential(tnn.Conv2d(1, 4, 3, padding=1), tnn.BatchNorm2d(4), tnn.ReLU(), tnn.MaxPool2d(2),
                          tnn.Flatten(), tnn.Linear(4 * 3 * 3, 5)),
           nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 3 * 3, 5)))
    return [(mlp, (2, 1, 3, 4)), (cnn, (2, 1, 6, 6))]


def _perturb_batch_norm(torch, model):
    """Non-trivial running statistics, so that loading them matters."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            with torch.no_grad():
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-1, 1)


def test_pytorch_weights_load_into_the_minidl_twin_and_back(tmp_path, rng):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    torch.manual_seed(0)
    for (torch_model, model), shape in _torch_and_minidl_twins(torch):
        _perturb_batch_norm(torch, torch_model)
        torch_model.eval()
        model.eval()
        x = rng.standard_normal(shape).astype(np.float32)
        path = tmp_path / "from_torch.safetensors"
        st_torch.save_file(torch_model.state_dict(), str(path))
        model.load_state_dict(load_safetensors(path))
        expected = torch_model(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(model(minidl.tensor(x)).data, expected, rtol=1e-5, atol=1e-5)

        # and back: a fresh PyTorch model takes minidl's file, through both readers
        back = tmp_path / "from_minidl.safetensors"
        save_safetensors(model.state_dict(), back)
        for state in (st_torch.load_file(str(back)),
                      {k: torch.from_numpy(v) for k, v in load_safetensors(back).items()}):
            fresh = copy.deepcopy(torch_model)
            with torch.no_grad():
                for value in fresh.state_dict().values():
                    value.zero_()
            fresh.load_state_dict(state)
            fresh.eval()
            np.testing.assert_allclose(fresh(torch.from_numpy(x)).detach().numpy(), expected,
                                       rtol=1e-6, atol=1e-6)

