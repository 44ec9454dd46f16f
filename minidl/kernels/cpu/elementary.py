"""exp, tanh, sigmoid and row reductions for kernels, in forms LLVM vectorises.

Numba calls libm for np.exp and np.tanh one element at a time (~5-15 ns each, no SIMD without
Intel's SVML), which costs more than the rest of a softmax or an RNN step. For float32 these
functions are polynomials or rational functions of the argument, with comparisons (not
branches) for the edge cases, so a loop over them becomes SIMD code; float64 (gradient
checks) keeps libm's np.exp and np.tanh. Call them inside ``@njit`` code only.

    exp(x)     = 2^n p(r),  n = round(x log2 e),  r = x - n ln 2 (two-part ln 2, Cody-Waite),
                 p Cephes' degree-7 expf polynomial (about 1 ulp); 0 below -87.3 as expf, and
                 +inf above 88.37 (expf overflows only at 88.72): meant for softmax's x <= 0
    tanh(x)    = x P(x^2) / Q(x^2), Eigen's rational fit (within 5 ulp), +-1 outside +-7.99
    sigmoid(x) = 1/2 + 1/2 tanh(x / 2), as in the notes (absolute error below 3e-7)

Their polynomials are evaluated with fused multiply-adds (fastmath "contract" only, nothing
that changes NaN or inf): half the instructions, exp over 256k floats 139 -> 87 us and tanh
78 -> 66 us on one Zen4 core; exp's worst error stays 1.0 ulp, tanh's goes 6.5 -> 4.4 ulp.

Reductions over a row, which LLVM keeps scalar when written plainly (it may not reorder float
additions, and a float max must keep NaN's semantics):
    row_max(row)  compares the bit patterns as signed integers, after flipping the magnitude bits
                  of negative numbers (an order-preserving map, so an integer max, which is SIMD)
    row_sum(row)  sums in float64 with reassociation allowed (``fastmath={"reassoc"}``, nothing
                  else: NaN and inf keep their meaning), so the additions run in SIMD lanes; the
                  order depends only on the length, so results are deterministic.
"""
import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic, overload

# Python's ZeroDivisionError check on every division stops LLVM from vectorising the loops.
NO_ZERO_DIVISION_CHECK = {"error_model": "numpy"}
_POLYNOMIAL = {**NO_ZERO_DIVISION_CHECK, "fastmath": {"contract"}}  # exp and tanh: FMA, see above
_F = np.float32
_HALF = _F(0.5)
_TANH_CLAMP = _F(7.99881172180175781)
_TANH_NUMERATOR = tuple(_F(c) for c in (
    4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08,
    -8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16))
_TANH_DENOMINATOR = tuple(_F(c) for c in (
    4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06))
_EXP_LOW, _EXP_HIGH = _F(-87.33654), _F(88.37)  # below: 0 (as expf); above: 2^n past 2^127
_LOG2E, _LN2_HIGH, _LN2_LOW = _F(1.44269504088896341), _F(0.693359375), _F(-2.12194440e-4)
_EXP_POLY = tuple(_F(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                                  1.6666665459e-1, 5.0000001201e-1))


def exp(x):
    return np.exp(x)


def one_plus_erf(x):
    return 1.0 + math.erf(x)


def tanh(x):
    return np.tanh(x)


def sigmoid(x):
    return 0.5 + 0.5 * np.tanh(0.5 * x)


@intrinsic
def _float_from_bits(typingctx, bits):
    """The float of the same width whose IEEE-754 bit pattern is the integer ``bits`` (a bitcast)."""
    float_type = {32: types.float32, 64: types.float64}[bits.bitwidth]

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(float_type))
    return float_type(bits), codegen


@overload(exp, jit_options=_POLYNOMIAL)
def _exp_typed(x):
    if x != types.float32:
        return lambda x: np.exp(x)
    c5, c4, c3, c2, c1, c0 = _EXP_POLY

    def polynomial(x):
        clamped = _EXP_HIGH if x > _EXP_HIGH else x
        n = np.floor(clamped * _LOG2E + _HALF)
        r = clamped - n * _LN2_HIGH - n * _LN2_LOW
        p = (((((c5 * r + c4) * r + c3) * r + c2) * r + c1) * r + c0) * r * r + r + _F(1.0)
        scale = _float_from_bits(np.int32((np.int32(max(n, _F(-127.0))) + np.int32(127)) << 23))
        value = np.inf if x > _EXP_HIGH else p * scale
        return _F(0.0) if x < _EXP_LOW else value  # NaN fails every test and stays NaN
    return polynomial


@overload(tanh, jit_options=_POLYNOMIAL)
def _tanh_typed(x):
    if x != types.float32:
        return lambda x: np.tanh(x)
    a1, a3, a5, a7, a9, a11, a13 = _TANH_NUMERATOR
    b0, b2, b4, b6 = _TANH_DENOMINATOR

    def rational(x):
        x = _TANH_CLAMP if x > _TANH_CLAMP else x  # comparisons, not min/max: they vectorise; NaN stays NaN
        x = -_TANH_CLAMP if x < -_TANH_CLAMP else x
        x2 = x * x
        p = ((((((a13 * x2 + a11) * x2 + a9) * x2 + a7) * x2 + a5) * x2 + a3) * x2 + a1) * x
        q = ((b6 * x2 + b4) * x2 + b2) * x2 + b0
        return p / q
    return rational


# 1 + erf(x) (the normal CDF's 2 Phi(x sqrt 2), GELU's), fitted here by least squares on
# Chebyshev nodes in float64 against math.erf and scipy.special.erfcx:
#     |x| < 1:  1 + x P(x^2),  P of degree 6 (abs. error of erf 1.2e-9)
#     |x| >= 1: e^(-x^2) Q(1 / |x|) for x < 0 (= erfc(|x|), with its relative accuracy: no
#               cancellation in 1 + erf for negative x) and 2 - e^(-x^2) Q(1 / x) for x > 0,
#               Q of degree 11 on 1 / |x| in (0, 1] (erfcx to 2.6e-7 relative, out to any x)
_ERF_NEAR = tuple(_F(c) for c in (
    7.8825004435e-05, -8.0188590141e-04, 5.1893128126e-03, -2.6854329538e-02, 1.1283597492e-01,
    -3.7612626908e-01, 1.1283791659e+00))
_ERFCX_FAR = tuple(_F(c) for c in (
    -6.5675160216e-02, 3.4151415886e-01, -6.8425445025e-01, 5.2484594588e-01, 2.7317063801e-01,
    -9.1340400944e-01, 7.1824158497e-01, -5.4302826986e-02, -2.7645055209e-01, -2.9741826992e-04,
    5.6419567373e-01, -2.0602706633e-08))


@overload(one_plus_erf, jit_options=_POLYNOMIAL)
def _one_plus_erf_typed(x):
    if x != types.float32:
        return lambda x: 1.0 + math.erf(x)
    p6, p5, p4, p3, p2, p1, p0 = _ERF_NEAR
    q11, q10, q9, q8, q7, q6, q5, q4, q3, q2, q1, q0 = _ERFCX_FAR

    def piecewise(x):
        s = x * x
        near = _F(1.0) + x * ((((((p6 * s + p5) * s + p4) * s + p3) * s + p2) * s + p1) * s + p0)
        t = _F(1.0) / abs(x)  # inf at 0, where ``near`` is taken
        q = (((((((((((q11 * t + q10) * t + q9) * t + q8) * t + q7) * t + q6) * t + q5) * t + q4) * t
                  + q3) * t + q2) * t + q1) * t + q0)
        tail = exp(-s) * q
        far = tail if x < _F(0.0) else _F(2.0) - tail
        return near if abs(x) < _F(1.0) else far  # NaN takes ``far`` and stays NaN
    return piecewise


@overload(sigmoid, jit_options=NO_ZERO_DIVISION_CHECK)
def _sigmoid_typed(x):
    if x != types.float32:
        return lambda x: 0.5 + 0.5 * np.tanh(0.5 * x)
    return lambda x: _HALF + _HALF * tanh(_HALF * x)


def row_max(row):
    return np.max(row)


@overload(row_max, jit_options=NO_ZERO_DIVISION_CHECK)
def _row_max_typed(row):
    """max_k row[k] of a 1-d C-contiguous float array. For IEEE floats, key(b) = b ^ 0x7f..f when
    the sign bit of b is set (else b) orders like the floats (-0.0 just below +0.0); a NaN
    with its sign bit clear wins (as past +inf), one with it set loses: callers that sum
    e^(x - max) see it there either way."""
    bits = {types.float32: np.int32, types.float64: np.int64}[row.dtype]
    sign_shift = bits(8 * np.dtype(bits).itemsize - 1)
    magnitude = bits(np.iinfo(bits).max)

    def impl(row):
        keys = row.view(bits)
        best = bits(keys[0] ^ ((keys[0] >> sign_shift) & magnitude))  # bits(): Numba widens int32 math
        for k in range(1, keys.size):
            key = bits(keys[k] ^ ((keys[k] >> sign_shift) & magnitude))
            best = key if key > best else best
        return _float_from_bits(bits(best ^ ((best >> sign_shift) & magnitude)))  # its own inverse
    return impl


@njit(cache=True, fastmath={"reassoc"}, **NO_ZERO_DIVISION_CHECK)
def row_sum(row):
    """sum_k row[k] in float64."""
    total = 0.0
    for k in range(row.size):
        total += row[k]
    return total


@njit(cache=True, fastmath={"reassoc"}, **NO_ZERO_DIVISION_CHECK)
def row_dot(a, b):
    """sum_k a[k] b[k] in float64 (the same reassociation as ``row_sum``)."""
    total = 0.0
    for k in range(a.size):
        total += np.float64(a[k]) * b[k]
    return total


@njit(inline="always")
def rounded_like(array, value):
    """``value`` rounded to ``array``'s dtype, so that the loops it enters stay in float32 for
    float32 data. (Through the dtype: a 1-element array to store it in cost 18 ns a call.)"""
    return array.dtype.type(value)


@njit(inline="always")
def shifted_exponentials(row, out):
    """out[k] = e^(row[k] - m), m = max(row): returns (m, sum_k out[k] in float64)."""
    peak = row_max(row)
    for k in range(row.size):
        out[k] = exp(row[k] - peak)
    return peak, row_sum(out)
