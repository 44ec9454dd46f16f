"""Whole-array passes (kernels/cpu/arrays): gradient sums in place and copies, big host arrays in
shares on the pool, the rest through NumPy, the same results either way."""
import numpy as np
import pytest

import minidl
from minidl.kernels.cpu import arrays

BIG = arrays.SHARES_FROM + 1001  # past the threshold, not a multiple of anything


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_add_into_in_shares_equals_numpy(rng, dtype):
    total, grad = rng.standard_normal((2, BIG)).astype(dtype)
    expected = total + grad
    out = arrays.add_into(total, grad)
    assert out is total
    np.testing.assert_array_equal(total, expected)


@pytest.mark.parametrize("case", ["overlap", "strided", "dtypes", "small", "broadcast"])
def test_add_into_falls_back_to_numpy(rng, case):
    base = rng.standard_normal(2 * BIG).astype(np.float32)
    if case == "overlap":  # the same memory, shifted by one element
        total, grad = base[1:BIG + 1], base[:BIG]
    elif case == "strided":
        total, grad = base[::2].copy()[: BIG // 2], base[1::2][: BIG // 2]
    elif case == "dtypes":
        total, grad = base[:BIG].astype(np.float64), base[BIG:2 * BIG]
    elif case == "small":
        total, grad = base[:10].copy(), base[10:20]
    else:
        total, grad = base[:BIG].reshape(-1, 1).repeat(2, axis=1), base[BIG:2 * BIG].reshape(-1, 1)
    expected = total.copy()
    expected += grad  # what NumPy does, overlap and broadcasting included
    arrays.add_into(total, grad)
    np.testing.assert_array_equal(total, expected)


def test_a_big_leaf_accumulates_its_grad_over_backward_calls(rng):
    x = minidl.tensor(rng.standard_normal(BIG).astype(np.float32), requires_grad=True)
    weights = rng.standard_normal(BIG).astype(np.float32)
    for _ in range(3):
        (x * minidl.tensor(weights)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * weights, rtol=1e-6)


def test_a_big_tensor_used_several_times_sums_its_gradients(rng):
    x = minidl.tensor(rng.standard_normal(BIG).astype(np.float32), requires_grad=True)
    y = x * 2.0
    (y * y + y * 3.0 + y).sum().backward()  # four gradients reach y: from the third on, in place
    np.testing.assert_allclose(x.grad.numpy(), 2 * (2 * y.detach().numpy() + 4.0), rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_copy_of_in_shares_equals_the_array(dtype):
    array = np.arange(7 * (BIG // 7 + 3), dtype=dtype).reshape(7, -1) * 3 + 1  # no freed temporary holds these
    out = arrays.copy_of(array)
    assert out.dtype == array.dtype and out.shape == array.shape and not np.shares_memory(out, array)
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize("case", ["fortran", "strided", "small"])
def test_copy_of_falls_back_to_numpy(rng, case):
    base = rng.standard_normal((2, BIG)).astype(np.float32)
    array = {"fortran": np.asfortranarray(base), "strided": base[:, ::3], "small": base[:, :10]}[case]
    out = arrays.copy_of(array)
    assert out.flags.f_contiguous == array.flags.f_contiguous and not np.shares_memory(out, array)
    np.testing.assert_array_equal(out, array)


def test_tensor_copies_a_big_array(rng):
    data = rng.standard_normal(BIG).astype(np.float32)
    t = minidl.tensor(data)
    data[0] = 123.0
    assert t.numpy()[0] != 123.0
    np.testing.assert_array_equal(t.numpy()[1:], data[1:])
