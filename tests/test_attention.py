"""Scaled dot-product attention and MultiheadAttention: PyTorch parity of outputs and every
gradient (masks of both kinds, causal, batch_first both ways, kdim/vdim, weights copied through
state_dict both ways), float64 gradchecks, errors, and the cuda twin."""
import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl import nn
from minidl.utils import gradcheck
from conftest import assert_close

TOL64 = {"rtol": 1e-10, "atol": 1e-11}


def _pair(rng, shape, torch):
    x = rng.standard_normal(shape)
    return minidl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)


@pytest.mark.parametrize("case", ["plain", "bool", "float", "causal", "scale", "masked_row", "cross"])
def test_sdpa_matches_torch(rng, case):
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    queries = 3 if case == "cross" else 4
    (mq, tq), (mk, tk), (mv, tv) = (_pair(rng, s, torch) for s in [(2, 2, queries, 5), (2, 2, 4, 5), (2, 2, 4, 3)])
    options = {}
    if case in ("bool", "masked_row", "cross"):
        mask = rng.random((queries, 4)) > 0.3
        mask[:, 0] = True  # every query keeps a key ...
        if case == "masked_row":
            mask[1] = False  # ... but this one: its output and gradients are zeros
        options["attn_mask"] = mask
    if case == "float":
        options["attn_mask"] = rng.standard_normal((2, 1, 4, 4))
    if case == "causal":
        options["is_causal"] = True
    if case == "scale":
        options["scale"] = 0.3
    theirs = {k: torch.tensor(v) if k == "attn_mask" else v for k, v in options.items()}
    out, expected = F.scaled_dot_product_attention(mq, mk, mv, **options), \
        tF.scaled_dot_product_attention(tq, tk, tv, **theirs)
    upstream = rng.standard_normal(expected.shape)
    out.backward(upstream)
    expected.backward(torch.tensor(upstream))
    assert_close(out, expected, what="out", **TOL64)
    for name, ours, their in (("dq", mq, tq), ("dk", mk, tk), ("dv", mv, tv)):
        assert_close(ours.grad, their.grad, what=name, **TOL64)


def test_sdpa_float32_and_mask_gradient(rng):
    torch = pytest.importorskip("torch")
    q, k, v = (rng.standard_normal((3, 4, 6)).astype(np.float32) for _ in range(3))
    mask = rng.standard_normal((4, 4)).astype(np.float32)
    ours = [minidl.tensor(a, requires_grad=True) for a in (q, k, v, mask)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (q, k, v, mask)]
    out = F.scaled_dot_product_attention(*ours[:3], attn_mask=ours[3])
    expected = torch.nn.functional.scaled_dot_product_attention(*theirs[:3], attn_mask=theirs[3])
    assert out.dtype == np.float32
    out.sum().backward()
    expected.sum().backward()
    assert_close(out, expected, what="out")
    for ours_t, their_t in zip(ours, theirs):
        assert_close(ours_t.grad, their_t.grad, what="grad", atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
def test_batched_matmul_in_shares_matches_numpy(rng, dtype, transpose_a, transpose_b):
    """40 heads of 96 x 80 by 80 x 72: past 2^19 elements, so the heads run in shares."""
    from minidl.kernels.cpu import attention, tasks
    heads, m, k, n = 40, 96, 80, 72
    a = rng.standard_normal((heads, k, m) if transpose_a else (heads, m, k)).astype(dtype)
    b = rng.standard_normal((heads, n, k) if transpose_b else (heads, k, n)).astype(dtype)
    assert a.size + b.size + heads * m * n >= tasks.PARALLEL_MIN_WORK
    out = attention.batched_matmul(a, b, transpose_a, transpose_b)
    expected = np.matmul(np.swapaxes(a, 1, 2) if transpose_a else a, np.swapaxes(b, 1, 2) if transpose_b else b)
    assert out.shape == (heads, m, n) and out.dtype == dtype
    np.testing.assert_allclose(out, expected, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-4 if dtype == np.float32 else 1e-12)


def test_sdpa_in_shares_matches_torch(rng):
    """32 heads of 128 queries and keys: every product and the scores past 2^19 elements."""
    torch = pytest.importorskip("torch")
    (mq, tq), (mk, tk), (mv, tv) = (_pair(rng, (4, 8, 128, 32), torch) for _ in range(3))
    out = F.scaled_dot_product_attention(mq, mk, mv, is_causal=True)
    expected = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
    upstream = rng.standard_normal(tuple(expected.shape))
    out.backward(upstream)
    expected.backward(torch.tensor(upstream))
    assert_close(out, expected, what="out", **TOL64)
    for name, ours, their in (("dq", mq, tq), ("dk", mk, tk), ("dv", mv, tv)):
        assert_close(ours.grad, their.grad, what=name, **TOL64)


def test_sdpa_gradcheck(rng):
    q, k, v = (minidl.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True) for _ in range(3))
    mask = minidl.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    assert gradcheck(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m), [q, k, v, mask])
    assert gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), [q, k, v])


def test_sdpa_dropout_keeps_rows_unbiased_and_gradcheck(rng):
    q, k, v = (minidl.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True) for _ in range(3))

    def fn(q, k, v):
        minidl.manual_seed(7)  # the same dropout mask on every call
        return F.scaled_dot_product_attention(q, k, v, dropout_p=0.4)
    assert gradcheck(fn, [q, k, v])
    ones = minidl.ones(1, 200, 50, dtype=minidl.float64)
    out = F.scaled_dot_product_attention(ones, ones, ones, dropout_p=0.5).data
    assert abs(out.mean() - 1.0) < 0.05 and (out != 1.0).any()


def test_sdpa_errors():
    with pytest.raises(ValueError, match=r"query \(\*, L, E\).*\(2, 3, 4\), \(2, 3, 5\)"):
        F.scaled_dot_product_attention(minidl.zeros(2, 3, 4), minidl.zeros(2, 3, 5), minidl.zeros(2, 3, 5))
    with pytest.raises(ValueError, match="attn_mask of shape"):
        F.scaled_dot_product_attention(minidl.zeros(2, 3, 4), minidl.zeros(2, 3, 4), minidl.zeros(2, 3, 4),
                                       attn_mask=np.ones((2, 2), bool))


def _copy_from_torch(ours, theirs):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("case", ["self", "self_masks", "float_masks", "cross_kdim", "unbatched", "per_head",
                                  "causal", "no_bias"])
def test_multihead_attention_matches_torch(rng, batch_first, case):
    torch = pytest.importorskip("torch")
    E, H, N, L, S = 6, 2, 3, 4, 5
    kdims = {"kdim": 3, "vdim": 4} if case == "cross_kdim" else {}
    options = dict(batch_first=batch_first, bias=case != "no_bias", **kdims)
    theirs = torch.nn.MultiheadAttention(E, H, **options).double()
    ours = nn.MultiheadAttention(E, H, dtype=np.float64, **options)
    _copy_from_torch(ours, theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())

    def shaped(length, width):
        if case == "unbatched":
            return (length, width)
        return (N, length, width) if batch_first else (length, N, width)
    self_attention = case not in ("cross_kdim",)
    keys = L if self_attention else S
    mq, tq = _pair(rng, shaped(L, E), torch)
    if self_attention:
        inputs_ours, inputs_theirs = (mq, mq, mq), (tq, tq, tq)
    else:
        (mk, tk), (mv, tv) = _pair(rng, shaped(S, 3), torch), _pair(rng, shaped(S, 4), torch)
        inputs_ours, inputs_theirs = (mq, mk, mv), (tq, tk, tv)
    kw = {}
    if case in ("self_masks", "cross_kdim"):
        attn = rng.random((L, keys)) < 0.3
        attn[:, 0] = False
        padding = np.zeros((N, keys), bool)
        padding[1, -2:] = True
        kw = {"attn_mask": attn, "key_padding_mask": padding}
    if case == "float_masks":
        kw = {"attn_mask": rng.standard_normal((N * H, L, keys)), "key_padding_mask": rng.standard_normal((N, keys))}
    if case == "per_head":
        kw = {"average_attn_weights": False}
    if case == "causal":
        kw = {"attn_mask": np.triu(np.ones((L, L), bool), 1), "is_causal": True}
    their_kw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    out, weights = ours(*inputs_ours, **kw)
    expected, expected_weights = theirs(*inputs_theirs, **their_kw)
    upstream = rng.standard_normal(tuple(expected.shape))
    out.backward(upstream)
    expected.backward(torch.tensor(upstream))
    assert_close(out, expected, what="output", **TOL64)
    assert_close(weights, expected_weights, what="weights", **TOL64)
    for tensor_ours, tensor_theirs in zip(inputs_ours, inputs_theirs):
        assert_close(tensor_ours.grad, tensor_theirs.grad, what="input grad", **TOL64)
    ours_params = dict(ours.named_parameters())
    for name, param in theirs.named_parameters():
        assert_close(ours_params[name].grad, param.grad, what=f"d {name}", **TOL64)


def test_multihead_attention_state_dict_to_torch_and_init(rng):
    torch = pytest.importorskip("torch")
    ours = nn.MultiheadAttention(8, 4, kdim=5, vdim=6)
    theirs = torch.nn.MultiheadAttention(8, 4, kdim=5, vdim=6)
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    assert ours.in_proj_weight is None and float(np.abs(ours.in_proj_bias.data).max()) == 0
    x = rng.standard_normal((2, 3, 8)).astype(np.float32)
    kx, vx = rng.standard_normal((4, 3, 5)).astype(np.float32), rng.standard_normal((4, 3, 6)).astype(np.float32)
    out, _ = ours(minidl.tensor(x), minidl.tensor(kx), minidl.tensor(vx), need_weights=False)
    expected, _ = theirs(torch.tensor(x), torch.tensor(kx), torch.tensor(vx))
    assert_close(out, expected, what="output")


def test_multihead_attention_dropout_only_in_training(rng):
    layer = nn.MultiheadAttention(4, 2, dropout=0.5)
    x = minidl.tensor(rng.standard_normal((3, 2, 4)).astype(np.float32))
    a, b = layer(x, x, x)[0].data, layer(x, x, x)[0].data
    assert not np.allclose(a, b)
    layer.eval()
    np.testing.assert_array_equal(layer(x, x, x)[0].data, layer(x, x, x)[0].data)


def test_multihead_attention_errors():
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiheadAttention(6, 4)
    layer = nn.MultiheadAttention(4, 2)
    with pytest.raises(ValueError, match=r"(?s)MultiheadAttention.*\(2, 3, 5\)"):
        layer(minidl.zeros(2, 3, 5), minidl.zeros(2, 3, 5), minidl.zeros(2, 3, 5))
    x = minidl.zeros(3, 2, 4)
    with pytest.raises(ValueError, match=r"(?s)MultiheadAttention.*key_padding_mask.*\(2, 3\)"):
        layer(x, x, x, key_padding_mask=np.zeros((3, 3), bool))


@pytest.mark.skipif(not minidl.cuda.is_available(), reason="CUDA is not available")
@pytest.mark.parametrize("options", [{"is_causal": True}, {"attn_mask": "bool"}])
def test_sdpa_on_cuda_equals_cpu(rng, options):
    q, k, v = (rng.standard_normal((2, 3, 4)).astype(np.float32) for _ in range(3))
    if options.get("attn_mask") == "bool":
        mask = np.ones((3, 3), bool)
        mask[0] = False  # a query with no key: zeros
        mask[1, 2] = False
        options = {"attn_mask": mask}
    upstream = rng.standard_normal((2, 3, 4)).astype(np.float32)
    results = {}
    for device in ("cpu", "cuda"):
        tensors = [minidl.tensor(a, device=device, requires_grad=True) for a in (q, k, v)]
        out = F.scaled_dot_product_attention(*tensors, **options)
        out.backward(minidl.tensor(upstream, device=device))
        results[device] = [out.detach().cpu().numpy()] + [t.grad.cpu().numpy() for t in tensors]
    for gpu, cpu in zip(results["cuda"], results["cpu"]):
        assert gpu.dtype == cpu.dtype
        np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-5)
