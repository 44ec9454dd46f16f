"""minidl.from_dlpack and Tensor.__dlpack__: tensors pass to and from numpy and PyTorch without a copy."""
import numpy as np
import pytest

import minidl


def test_numpy_shares_a_tensors_memory():
    t = minidl.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert t.__dlpack_device__() == (1, 0)  # kDLCPU, device 0
    view = np.from_dlpack(t)
    view[1, 2] = -1.0
    assert t.array[1, 2] == -1.0


def test_from_dlpack_shares_a_numpy_arrays_memory():
    array = np.arange(6, dtype=np.float64).reshape(3, 2)
    t = minidl.from_dlpack(array)
    assert t.dtype == np.float64 and t.shape == (3, 2) and t.device == "cpu"
    array[0, 1] = 7.0
    assert t.array[0, 1] == 7.0
    assert (t * 2).array[0, 1] == 14.0


def test_torch_from_dlpack_writes_through_to_the_minidl_tensor():
    torch = pytest.importorskip("torch")
    t = minidl.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    shared = torch.from_dlpack(t)
    assert tuple(shared.shape) == (3, 4) and shared.dtype == torch.float32
    shared[2, 3] = 100.0
    assert t.array[2, 3] == 100.0
    t.array[0, 0] = -5.0
    assert shared[0, 0].item() == -5.0


def test_minidl_from_dlpack_writes_through_to_the_torch_tensor():
    torch = pytest.importorskip("torch")
    source = torch.arange(6, dtype=torch.int64).reshape(2, 3)
    t = minidl.from_dlpack(source)
    assert t.dtype == np.int64 and t.shape == (2, 3)
    source[1, 1] = 42
    assert t.array[1, 1] == 42
    t.array[0, 2] = -3
    assert source[0, 2].item() == -3
    # a transposed (strided) torch view keeps its strides
    strided = minidl.from_dlpack(source.T)
    np.testing.assert_array_equal(strided.data, source.T.numpy())


def test_a_tensor_that_requires_grad_is_not_exported():
    t = minidl.tensor(np.ones(3, np.float32), requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        np.from_dlpack(t)
    np.testing.assert_array_equal(np.from_dlpack(t.detach()), np.ones(3, np.float32))


def test_meta_tensors_have_no_data_to_share():
    with pytest.raises(RuntimeError, match="meta tensor"):
        np.from_dlpack(minidl.zeros(2, 3, device="meta"))


@pytest.mark.skipif(not minidl.cuda.is_available(), reason="CUDA is not available")
def test_cuda_tensors_point_to_the_cuda_array_interface():
    t = minidl.ones(2, device="cuda")
    with pytest.raises(NotImplementedError, match="__cuda_array_interface__"):
        t.__dlpack__()
