"""Layer and group normalisation: PyTorch parity of outputs and every gradient, float64
gradchecks of the closed-form backward, state_dict names, errors, and the cuda twin."""
import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl import nn
from minidl.utils import gradcheck
from conftest import assert_close


def _set_affine(rng, ours, theirs, torch):
    """Non-trivial affine parameters, the same in both layers."""
    for name in ("weight", "bias"):
        if getattr(theirs, name, None) is not None:
            value = rng.standard_normal(tuple(getattr(theirs, name).shape)).astype(np.float32)
            getattr(ours, name).array[...] = value
            with torch.no_grad():
                getattr(theirs, name).copy_(torch.tensor(value))


@pytest.mark.parametrize("x_shape, normalized_shape, options", [
    ((4, 7, 6), 6, {}),
    ((3, 5, 2, 4), (2, 4), {"eps": 1e-3}),
    ((1100, 160), 160, {"bias": False}),        # past tasks.PARALLEL_MIN_WORK: rows in shares, partial sums
    ((3, 2, 523), 523, {}),                     # rows of two 256-blocks and a tail of 11 (8 chains)
    ((2, 3, 4), (4,), {"elementwise_affine": False}),
])
def test_layer_norm_matches_torch(rng, x_shape, normalized_shape, options):
    torch = pytest.importorskip("torch")
    ours, theirs = nn.LayerNorm(normalized_shape, **options), torch.nn.LayerNorm(normalized_shape, **options)
    _set_affine(rng, ours, theirs, torch)
    x = (3 * rng.standard_normal(x_shape) + 2).astype(np.float32)
    upstream = rng.standard_normal(x_shape).astype(np.float32)
    mx, tx = minidl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, expected = ours(mx), theirs(tx)
    out.backward(upstream)
    expected.backward(torch.tensor(upstream))
    assert out.dtype == np.float32
    assert_close(out, expected, what="y")
    assert_close(mx.grad, tx.grad, what="dx", atol=1e-4)
    for name, param in theirs.named_parameters():
        assert_close(getattr(ours, name).grad, param.grad, what=f"d{name}", atol=1e-4)
    assert list(ours.state_dict()) == list(theirs.state_dict())


@pytest.mark.parametrize("x_shape, groups, options", [
    ((3, 6, 5), 3, {}),
    ((2, 4, 3, 3), 2, {"eps": 1e-3}),
    ((2, 4, 3), 4, {"affine": False}),
    ((2, 6), 1, {}),
    ((16, 8, 48, 48), 4, {}),                  # past tasks.PARALLEL_MIN_WORK: groups in shares, partial sums
])
def test_group_norm_matches_torch(rng, x_shape, groups, options):
    torch = pytest.importorskip("torch")
    channels = x_shape[1]
    ours, theirs = nn.GroupNorm(groups, channels, **options), torch.nn.GroupNorm(groups, channels, **options)
    _set_affine(rng, ours, theirs, torch)
    x = (2 * rng.standard_normal(x_shape) - 1).astype(np.float32)
    upstream = rng.standard_normal(x_shape).astype(np.float32)
    mx, tx = minidl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, expected = ours(mx), theirs(tx)
    out.backward(upstream)
    expected.backward(torch.tensor(upstream))
    assert_close(out, expected, what="y")
    assert_close(mx.grad, tx.grad, what="dx", atol=1e-4)
    for name, param in theirs.named_parameters():
        assert_close(getattr(ours, name).grad, param.grad, what=f"d{name}", atol=1e-4)
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_layer_norm_gradcheck(rng):
    x = minidl.tensor(rng.standard_normal((3, 2, 5)), dtype=minidl.float64, requires_grad=True)
    w = minidl.tensor(rng.standard_normal((2, 5)), dtype=minidl.float64, requires_grad=True)
    b = minidl.tensor(rng.standard_normal((2, 5)), dtype=minidl.float64, requires_grad=True)
    assert gradcheck(lambda x, w, b: F.layer_norm(x, (2, 5), w, b), [x, w, b])
    assert gradcheck(lambda x: F.layer_norm(x, 5, eps=1e-2), [x])
    rows = minidl.tensor(rng.standard_normal((11, 3)), dtype=minidl.float64, requires_grad=True)
    assert gradcheck(lambda x: F.layer_norm(x, 3), [rows])  # a block of 8 rows' statistics, then 3


def test_group_norm_gradcheck(rng):
    x = minidl.tensor(rng.standard_normal((2, 4, 3)), dtype=minidl.float64, requires_grad=True)
    w = minidl.tensor(rng.standard_normal(4), dtype=minidl.float64, requires_grad=True)
    b = minidl.tensor(rng.standard_normal(4), dtype=minidl.float64, requires_grad=True)
    assert gradcheck(lambda x, w, b: F.group_norm(x, 2, w, b), [x, w, b])


def test_float32_rows_keep_float32_accuracy(rng):
    """Long float32 rows with a large mean: the eight float32 chains per 256-block and the float64
    totals keep y and every gradient within float32 rounding of a float64 evaluation."""
    x = (100 + rng.standard_normal((6, 3000))).astype(np.float32)
    upstream = rng.standard_normal(x.shape).astype(np.float32)
    weight = rng.standard_normal(3000)
    results = []
    for dtype in (minidl.float32, minidl.float64):
        mx = minidl.tensor(x, dtype=dtype, requires_grad=True)
        w = minidl.tensor(weight, dtype=dtype, requires_grad=True)
        out = F.layer_norm(mx, 3000, w)
        out.backward(minidl.tensor(upstream, dtype=dtype))
        results.append([np.asarray(t.data, dtype=np.float64) for t in (out, mx.grad, w.grad)])
    for name, single, double in zip(("y", "dx", "dweight"), *results):
        scale = np.abs(double).max()
        np.testing.assert_allclose(single, double, atol=2e-5 * scale, err_msg=name)


def test_float32_weight_and_bias_gradients_over_many_rows(rng):
    """dweight and dbias sum 100,000 rows: blocks of rows in float32, the blocks in float64 keep
    them within 1e-6 of the float64 sums of the same terms (one float32 running sum drifts ~1e-5)."""
    x = rng.standard_normal((100_000, 4)).astype(np.float32)
    upstream = (1 + 0.1 * rng.standard_normal(x.shape)).astype(np.float32)
    mx = minidl.tensor(x, requires_grad=True)
    layer = nn.LayerNorm(4)
    layer(mx).backward(upstream)
    xh = (x - x.mean(1, keepdims=True, dtype=np.float64)) / np.sqrt(x.var(1, keepdims=True, dtype=np.float64) + 1e-5)
    np.testing.assert_allclose(layer.bias.grad.data, upstream.sum(0, dtype=np.float64), rtol=1e-6)
    np.testing.assert_allclose(layer.weight.grad.data, (upstream * xh).sum(0), rtol=1e-6, atol=1e-3)


def test_float64_stays_float64_and_large_mean_keeps_digits(rng):
    x = 1e4 + rng.standard_normal((4, 16))
    y = F.layer_norm(minidl.tensor(x, dtype=minidl.float64), 16).data
    assert y.dtype == np.float64
    exact = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, exact, atol=1e-9)


def test_errors_name_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"LayerNorm.*\(\*, 4\).*\(2, 3\)"):
        nn.LayerNorm(4)(minidl.zeros(2, 3))
    with pytest.raises(ValueError, match=r"GroupNorm.*\(N, 4, \*\).*\(2, 6\)"):
        nn.GroupNorm(2, 4)(minidl.zeros(2, 6))
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(3, 4)


@pytest.mark.skipif(not minidl.cuda.is_available(), reason="CUDA is not available")
def test_layer_norm_on_cuda_equals_cpu(rng):
    x = rng.standard_normal((3, 5)).astype(np.float32)
    w, b = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    upstream = rng.standard_normal((3, 5)).astype(np.float32)
    results = {}
    for device in ("cpu", "cuda"):
        tensors = [minidl.tensor(a, device=device, requires_grad=True) for a in (x, w, b)]
        out = F.layer_norm(tensors[0], 5, tensors[1], tensors[2])
        out.backward(minidl.tensor(upstream, device=device))
        results[device] = [out.detach().cpu().numpy()] + [t.grad.cpu().numpy() for t in tensors]
    for gpu, cpu in zip(results["cuda"], results["cpu"]):
        assert gpu.dtype == cpu.dtype
        np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-5)
