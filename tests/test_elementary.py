"""The kernels' vectorisable exp, tanh, sigmoid, 1 + erf and row reductions against NumPy (and
SciPy) in float64."""
import numpy as np
import pytest
from numba import njit

from minidl.kernels.cpu import elementary

FLOAT32_EPS = np.finfo(np.float32).eps


def _elementwise(name):
    function = getattr(elementary, name)

    @njit
    def apply(x):
        out = np.empty_like(x)
        for i in range(x.size):
            out[i] = function(x[i])
        return out
    return apply


EXACT = {"exp": np.exp, "tanh": np.tanh, "sigmoid": lambda x: 1 / (1 + np.exp(-x))}


@pytest.mark.parametrize("name, low, high, ulps", [("exp", -87.3, 88.3, 1.05), ("tanh", -10, 10, 5)])
def test_float32_exp_and_tanh_are_within_a_few_ulp(name, low, high, ulps):
    x = np.linspace(low, high, 200_001, dtype=np.float32)
    approx = _elementwise(name)(x)
    assert approx.dtype == np.float32
    exact = EXACT[name](x.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    worst = (np.abs(approx - exact) / ulp).max()
    assert worst <= ulps, f"{name}: {worst:.2f} ulp"


def test_float32_sigmoid_is_within_an_ulp_of_one_half():
    """1/2 + 1/2 tanh(x / 2) in float32: absolute error below 3e-7 (relative only near 1)."""
    x = np.linspace(-30, 30, 200_001, dtype=np.float32)
    np.testing.assert_allclose(_elementwise("sigmoid")(x), EXACT["sigmoid"](x.astype(np.float64)), rtol=0, atol=3e-7)


@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid"])
def test_float64_keeps_libm_precision(name):
    x = np.linspace(-20, 20, 1001)
    exact = {"sigmoid": lambda x: 0.5 + 0.5 * np.tanh(0.5 * x)}.get(name, EXACT[name])
    atol = 1e-16 if name == "sigmoid" else 0  # 1/2 + 1/2 tanh cancels near 0: digits of 1/2 remain
    np.testing.assert_allclose(_elementwise(name)(x), exact(x), rtol=5e-16, atol=atol)  # libm vs NumPy: 1 ulp


def test_float32_exp_edges():
    x = np.array([np.nan, -np.inf, -100.0, -87.4, 0.0, 88.5, np.inf], dtype=np.float32)
    out = _elementwise("exp")(x)
    assert np.isnan(out[0])
    np.testing.assert_array_equal(out[1:], [0, 0, 0, 1, np.inf, np.inf])
    assert np.isnan(_elementwise("tanh")(x[:1])[0])


def test_float32_one_plus_erf_keeps_its_relative_accuracy():
    """1 + erf(x) against scipy's erfc (1 + erf(x) = erfc(-x)) in float64: within 7.6e-7 relative
    for |x| <= 4 (values from 1.5e-8 up: no cancellation for negative x), 5e-6 out to where it
    stays a normal float32; the branches meet at |x| = 1; NaN stays NaN, +-inf give 2 and 0."""
    special = pytest.importorskip("scipy.special")
    x = np.concatenate([np.linspace(-9, 9, 400_001), np.nextafter(np.float32([1, -1]), 0), [0.0]]).astype(np.float32)
    approx = _elementwise("one_plus_erf")(x)
    assert approx.dtype == np.float32
    exact = special.erfc(-x.astype(np.float64))
    relative = np.abs(approx - exact) / exact
    near = np.abs(x) <= 4
    assert relative[near].max() < 7.6e-7 and relative[exact > 1.2e-38].max() < 5e-6
    edges = _elementwise("one_plus_erf")(np.array([np.nan, np.inf, -np.inf], dtype=np.float32))
    assert np.isnan(edges[0]) and edges[1] == 2 and edges[2] == 0


def test_float64_one_plus_erf_is_libm():
    import math
    x = np.linspace(-6, 6, 1001)
    np.testing.assert_array_equal(_elementwise("one_plus_erf")(x), [1.0 + math.erf(v) for v in x])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_reductions_match_numpy(dtype):
    """row_max (an integer max over the float bit patterns) and row_sum (float64, SIMD lanes)."""
    @njit
    def reduce(row):
        return elementary.row_max(row), elementary.row_sum(row)

    rng = np.random.default_rng(0)
    specials = np.array([-0.0, 0.0, np.inf, -np.inf, 1e30, -1e-30], dtype=dtype)
    for length in (1, 2, 15, 16, 17, 1000):
        row = (rng.standard_normal(length) * 10.0 ** float(rng.integers(-3, 4))).astype(dtype)
        for values in (row, -np.abs(row), np.concatenate([row, specials[rng.integers(0, 6, 3)]])):
            peak, total = reduce(values)
            assert peak == values.max() and type(peak) is float
            if np.isfinite(values).all():
                np.testing.assert_allclose(total, values.astype(np.float64).sum(), rtol=1e-12, atol=1e-12)
    row = np.array([1.0, -np.nan, 3.0], dtype=dtype)
    assert reduce(row)[0] == 3.0  # a NaN with its sign bit set loses the max ...
    assert np.isnan(reduce(row)[1])  # ... not the sum
    assert np.isnan(reduce(np.abs(row))[0])  # one with it clear wins
