"""PyTorch's Tensor API on minidl (issue 12): each case is one lambda run with ``m = minidl`` and
with ``m = torch`` on the same float64 inputs; forward values, dtypes and gradients must agree,
and minidl's gradients pass a finite-difference check. Then the non-differentiable methods,
the in-place rules, the top-level functions, and the same methods on meta and cuda."""
import numpy as np
import pytest

import minidl
from minidl.utils import gradcheck
from conftest import assert_close

torch = pytest.importorskip("torch")


def _copy(t):
    return t * 1  # a non-leaf copy: in-place methods refuse leaves that require grad


def _in_place(method, *args, **kwargs):
    return lambda m, a, *rest: getattr(_copy(a), method)(*[r(m, rest) if callable(r) else r for r in args],
                                                          **kwargs)


def _second(m, rest):
    return rest[0]


def _setitem(index, value=None):
    def run(m, a, *rest):
        y = _copy(a)
        y[index] = rest[0] if value is None else value
        return y
    return run


def _index(m, rows):
    return m.tensor(rows)


IDX = [[0, 0, 2, 1], [1, 3, 3, 0], [2, 1, 0, 3]]  # (3, 4), repeats within rows
UNIQUE = [[3, 0, 2], [1, 2, 0], [0, 3, 1]]  # (3, 3), one target per column in each row

# name: (fn(m, *tensors), input shapes, positive inputs)
CASES = {
    "sort": (lambda m, x: x.sort(1).values, [(3, 4)], False),
    "sort_descending": (lambda m, x: x.sort(dim=0, descending=True)[0], [(3, 4)], False),
    "topk": (lambda m, x: x.topk(2, dim=1).values, [(3, 4)], False),
    "topk_smallest": (lambda m, x: x.topk(2, 0, largest=False)[0], [(3, 4)], False),
    "std": (lambda m, x: x.std(1), [(3, 4)], False),
    "std_biased_keepdim": (lambda m, x: x.std(0, unbiased=False, keepdim=True), [(3, 4)], False),
    "var_all": (lambda m, x: x.var(), [(3, 4)], False),
    "var_correction": (lambda m, x: x.var(dim=1, correction=0), [(3, 4)], False),
    "pow": (lambda m, x: x.pow(3), [(3, 4)], False),
    "mm": (lambda m, a, b: a.mm(b), [(3, 4), (4, 2)], False),
    "t": (lambda m, x: x.t(), [(3, 4)], False),
    "view_as": (lambda m, a, b: a.view_as(b), [(3, 4), (2, 6)], False),
    "narrow": (lambda m, x: x.narrow(1, 1, 2), [(3, 4)], False),
    "clone": (lambda m, x: x.clone(), [(3, 4)], False),
    "split": (lambda m, x: m.cat([p * (i + 1) for i, p in enumerate(x.split(3, dim=1))], 1), [(2, 7)], False),
    "split_sections": (lambda m, x: x.split([1, 2], 0)[1], [(3, 4)], False),
    "chunk": (lambda m, x: m.cat([p * (i + 1) for i, p in enumerate(x.chunk(3, 1))], 1), [(2, 7)], False),
    "expand": (lambda m, x: x.expand(2, 3, 4), [(3, 1)], False),
    "expand_keep": (lambda m, x: x.expand(-1, 4), [(3, 1)], False),
    "expand_as": (lambda m, a, b: a.expand_as(b) * b, [(1, 4), (3, 4)], False),
    "repeat": (lambda m, x: x.repeat(2, 1, 3), [(3, 4)], False),
    "squeeze": (lambda m, x: x.squeeze(1), [(3, 1, 4)], False),
    "squeeze_other_size": (lambda m, x: x.squeeze(0), [(3, 1, 4)], False),
    "unsqueeze": (lambda m, x: x.unsqueeze(-1), [(3, 4)], False),
    "masked_fill": (lambda m, x: x.masked_fill(x > 0, 0.5), [(3, 4)], False),
    "masked_fill_broadcast": (lambda m, x: x.masked_fill(m.tensor([True, False, True, False]), -1.0),
                              [(3, 4)], False),
    "gather": (lambda m, x: x.gather(1, _index(m, IDX)), [(3, 4)], False),
    "gather_dim0": (lambda m, x: x.gather(0, _index(m, [[2, 0], [2, 1]])), [(3, 4)], False),
    "scatter": (lambda m, a, b: a.scatter(1, _index(m, UNIQUE), b), [(3, 4), (3, 3)], False),
    "scatter_value": (lambda m, x: x.scatter(0, _index(m, [[2, 0, 1, 0]]), 2.5), [(3, 4)], False),
    "scatter_add": (lambda m, a, b: a.scatter_add(1, _index(m, IDX), b), [(3, 4), (3, 4)], False),
    "cumsum": (lambda m, x: x.cumsum(1), [(3, 4)], False),
    "cumsum_dim0": (lambda m, x: x.cumsum(dim=0), [(3, 4)], False),
    "tril": (lambda m, x: x.tril() + m.tril(x, -1) * 2 + x.tril(diagonal=2) * 3, [(3, 4)], False),
    "triu_batched": (lambda m, x: x.triu(1) + m.triu(x, diagonal=-1) * 2, [(2, 3, 4)], False),
    "sin": (lambda m, x: m.sin(x) + x.sin(), [(3, 4)], False),
    "cos": (lambda m, x: m.cos(x) * x.cos(), [(3, 4)], False),
    "maximum": (lambda m, a, b: m.maximum(a, b), [(3, 4), (4,)], False),
    "max_of_two": (lambda m, a, b: m.max(a, b) + m.min(a, b) * 2, [(3, 4), (3, 4)], False),
    "where": (lambda m, a, b: m.where(a > 0, a, b), [(3, 4), (4,)], False),
    "where_scalar": (lambda m, x: m.where(x > 0, x, 0.0), [(3, 4)], False),
    # in place, on a non-leaf copy
    "add_alpha": (_in_place("add_", _second, alpha=2.0), [(3, 4), (4,)], False),
    "sub_alpha": (_in_place("sub_", _second, alpha=0.5), [(3, 4), (3, 4)], False),
    "mul_": (_in_place("mul_", _second), [(3, 4), (3, 1)], False),
    "div_": (_in_place("div_", _second), [(3, 4), (4,)], True),
    "clamp_": (_in_place("clamp_", -0.5, 0.5), [(3, 4)], False),
    "zero_": (lambda m, x: _copy(x).zero_() + x, [(3, 4)], False),
    "fill_": (_in_place("fill_", 2.0), [(3, 4)], False),
    "copy_": (_in_place("copy_", _second), [(3, 4), (4,)], False),
    "masked_fill_": (lambda m, x: _copy(x).masked_fill_(x > 0, 1.0), [(3, 4)], False),
    "scatter_": (lambda m, a, b: _copy(a).scatter_(1, _index(m, UNIQUE), b), [(3, 4), (3, 3)], False),
    "setitem_slice": (_setitem((slice(1, None), slice(None, 2))), [(3, 4), (2, 2)], False),
    "setitem_broadcast": (_setitem(1), [(3, 4), (4,)], False),
    "setitem_scalar": (_setitem((0, 2), 7.0), [(3, 4)], False),
    # top-level functions
    "fn_max_dim": (lambda m, x: m.max(x, 1).values + m.min(x, dim=1)[0], [(3, 4)], False),
    "fn_sum_mean": (lambda m, x: m.sum(x, 1) + m.mean(x, dim=1, keepdim=False), [(3, 4)], False),
    "fn_elementwise": (lambda m, x: m.exp(x) + m.log(x) + m.sqrt(x) + m.abs(x) + m.tanh(x)
                       + m.sigmoid(x) + m.relu(x), [(3, 4)], True),
    "fn_softmax": (lambda m, x: m.softmax(x, 1) * m.softmax(x, dim=0), [(3, 4)], False),
    "fn_flatten_matmul": (lambda m, a, b: m.matmul(m.flatten(a, 1), b), [(2, 2, 3), (6, 2)], False),
    "fn_clamp": (lambda m, x: m.clamp(x, min=-0.5) + m.clamp(x, -0.3, 0.3), [(3, 4)], False),
}


def _inputs(shapes, positive, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape) for shape in shapes]
    return [np.abs(a) + 0.5 for a in arrays] if positive else arrays


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_and_backward_match_torch(name):
    fn, shapes, positive = CASES[name]
    arrays = _inputs(shapes, positive, seed=len(name))
    ours_in = [minidl.tensor(a, requires_grad=True) for a in arrays]
    theirs_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    ours, theirs = fn(minidl, *ours_in), fn(torch, *theirs_in)
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", ""), name
    assert_close(ours, theirs, rtol=1e-10, atol=1e-12, what=f"{name} forward")
    weights = np.random.default_rng(3).standard_normal(tuple(theirs.shape))
    (ours * minidl.tensor(weights)).sum().backward()
    (theirs * torch.tensor(weights)).sum().backward()
    for i, (a, b) in enumerate(zip(ours_in, theirs_in)):
        expected = np.zeros(a.shape) if b.grad is None else b.grad
        actual = np.zeros(a.shape) if a.grad is None else a.grad
        assert_close(actual, expected, rtol=1e-10, atol=1e-12, what=f"{name} grad of input {i}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck(name):
    fn, shapes, positive = CASES[name]
    inputs = [minidl.tensor(a, requires_grad=True) for a in _inputs(shapes, positive, seed=len(name))]
    assert gradcheck(lambda *t: fn(minidl, *t), inputs)


# ---------------------------------------------------------------- results without gradients

def _ties():
    return np.array([[3, 1, 3, 2, 1], [0, 0, 5, 5, 0]], dtype=np.float32)


# name: fn(m, x) on x = _ties() (float32 with ties); results compared with torch's, dtype too
VALUES = {
    "sort_indices_stable": lambda m, x: x.sort(dim=1, stable=True).indices,
    "sort_descending_stable": lambda m, x: x.sort(dim=1, descending=True, stable=True)[1],
    "argsort": lambda m, x: x.argsort(dim=0, stable=True),
    "topk_indices": lambda m, x: x.topk(1, dim=0).indices,
    "eq": lambda m, x: x.eq(3), "ne": lambda m, x: x.ne(x[0]), "lt": lambda m, x: x.lt(2),
    "le": lambda m, x: x.le(1), "gt": lambda m, x: x.gt(0), "ge": lambda m, x: x.ge(x[1]),
    "any": lambda m, x: (x > 4).any(1), "all": lambda m, x: (x > 0).all(), "any_keep": lambda m, x: x.any(0, True),
    "cumsum_int": lambda m, x: x.long().cumsum(1), "cumsum_bool": lambda m, x: (x > 0).cumsum(0),
    "int": lambda m, x: x.int(), "bool": lambda m, x: x.bool(), "half": lambda m, x: x.half(),
    "double": lambda m, x: x.double(), "type_cast": lambda m, x: x.type(m.int64),
    "type_name_cast": lambda m, x: x.type("torch.DoubleTensor"),
    "new_zeros": lambda m, x: x.new_zeros(2, 3), "new_ones": lambda m, x: x.new_ones((2,)),
    "new_full": lambda m, x: x.new_full((2, 2), 7), "new_tensor": lambda m, x: x.new_tensor([1, 2]),
    "masked_fill_int": lambda m, x: x.long().masked_fill(x > 2, 9),
    "promote_int_float": lambda m, x: x.long() + m.ones(5, dtype=m.float64),
    "full_int": lambda m, x: m.full((2, 3), 4), "full_float": lambda m, x: m.full((2,), 1.5),
    "full_bool": lambda m, x: m.full((2,), True), "eye": lambda m, x: m.eye(3, 2),
    "linspace": lambda m, x: m.linspace(-1, 1, 5), "argmax": lambda m, x: m.argmax(x, dim=1),
    "float_tensor": lambda m, x: m.FloatTensor([1, 2]), "long_tensor": lambda m, x: m.LongTensor([[1], [2]]),
    "float_tensor_shape": lambda m, x: m.FloatTensor(2, 3).zero_(),
    "scatter_int": lambda m, x: x.long().scatter(1, m.tensor([[0], [4]]), 7),
}


@pytest.mark.parametrize("name", sorted(VALUES))
def test_values_match_torch(name):
    ours, theirs = VALUES[name](minidl, minidl.tensor(_ties())), VALUES[name](torch, torch.tensor(_ties()))
    assert str(ours.dtype).replace("bool_", "bool") == str(theirs.dtype).replace("torch.", ""), name
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=name)


def test_named_tuples_unpack_like_torch():
    x = minidl.tensor(_ties())
    values, indices = x.sort(1, descending=True)
    assert type(x.sort()).__name__ == "sort" and type(x.topk(2)).__name__ == "topk"
    values, indices = minidl.max(x, 1)
    assert indices.tolist() == [0, 2] and values.tolist() == [3, 5]
    assert x.sort().indices.dtype == np.int64 and not x.sort().indices.requires_grad
    _, predicted = minidl.max(x.data, 1)  # the tutorials' torch.max(outputs.data, 1)
    assert predicted.tolist() == [0, 2]


def test_scalars_size_and_type():
    i, f = minidl.tensor(2), minidl.tensor([0.125])
    assert ["a", "b", "c"][i] == "c" and list(range(i)) == [0, 1] and np.arange(5)[i] == 2
    assert f"{minidl.tensor(0.12345):.3f}" == "0.123" and f"{f:.2f}" == "0.12" and f"{i}" == "2"
    assert int(f * 16) == 2 and float(f) == 0.125 and bool(i) is True
    with pytest.raises(TypeError, match="only integer tensors of a single element"):
        [1, 2][f]
    x = minidl.zeros(2, 3)
    assert x.size() == (2, 3) and isinstance(x.size(), minidl.Size) and x.size(-1) == 3
    assert repr(x.size()) == "minidl.Size([2, 3])" and x.size().numel() == 6 == x.numel() and x.dim() == 2
    assert x.type() == "minidl.FloatTensor" and x.long().type() == "minidl.LongTensor"
    assert x.type(minidl.DoubleTensor).dtype == np.float64
    with pytest.raises(ValueError, match="unknown tensor type 'torch.Fancy'"):
        x.type("torch.Fancy")
    assert x.contiguous() is x


def test_dtype_aliases_and_constructors():
    pairs = {"float": "float32", "double": "float64", "long": "int64", "int": "int32", "half": "float16",
             "float16": "float16", "bool": "bool", "uint8": "uint8", "int8": "int8", "int16": "int16",
             "short": "int16"}
    for name, numpy_name in pairs.items():
        assert np.dtype(getattr(minidl, name)) == np.dtype(numpy_name), name
        assert str(getattr(torch, name)) == "torch." + numpy_name, name
    assert minidl.zeros(2, dtype=minidl.long).dtype == minidl.int64
    assert minidl.get_default_dtype() == minidl.float32
    with pytest.raises(NotImplementedError, match="fixed at float32"):
        minidl.set_default_dtype(minidl.float64)


def test_factories_and_predicates():
    array = np.arange(4.0)
    shared = minidl.from_numpy(array)
    array[0] = 9
    assert shared.dtype == np.float64 and shared[0].item() == 9
    shared[1] = 5
    assert array[1] == 5
    minidl.manual_seed(0)
    a = minidl.randint(0, 10, (100,))
    minidl.manual_seed(0)
    assert minidl.equal(a, minidl.randint(10, (100,))) and a.dtype == np.int64
    assert 0 <= a.min().item() and a.max().item() < 10
    assert sorted(minidl.randperm(6).tolist()) == list(range(6))
    x = minidl.randn(3, 4, dtype=minidl.float64)
    assert minidl.randn_like(x).shape == (3, 4) and minidl.rand_like(x).dtype == np.float64
    assert minidl.allclose(x, x + 1e-9) and not minidl.allclose(x, x + 1e-3)
    assert minidl.equal(x, x.clone()) and not minidl.equal(x, x[:2])
    assert minidl.is_tensor(x) and not minidl.is_tensor(x.numpy())
    with minidl.no_grad():
        with minidl.enable_grad():
            assert (minidl.ones(2, requires_grad=True) * 2).requires_grad
        assert not (minidl.ones(2, requires_grad=True) * 2).requires_grad


# ---------------------------------------------------------------- in-place rules

IN_PLACE = {
    "add_": lambda t: t.add_(1), "mul_": lambda t: t.mul_(2), "zero_": lambda t: t.zero_(),
    "fill_": lambda t: t.fill_(3), "copy_": lambda t: t.copy_(minidl.ones(4)),
    "clamp_": lambda t: t.clamp_(0, 1), "uniform_": lambda t: t.uniform_(),
    "normal_": lambda t: t.normal_(), "setitem": lambda t: t.__setitem__(0, 1.0),
    "masked_fill_": lambda t: t.masked_fill_(t > 0, 0.0),
    "scatter_": lambda t: t.scatter_(0, minidl.tensor([1]), 2.0),
}


@pytest.mark.parametrize("name", sorted(IN_PLACE))
def test_in_place_version_and_leaf_rules(name):
    leaf = minidl.randn(4, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        IN_PLACE[name](leaf)
    y = leaf * 1
    saved = y.sin()  # Sin saved y's value
    assert IN_PLACE[name](y) is y or name == "setitem"
    assert y._version == 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        saved.sum().backward()
    with minidl.no_grad():  # allowed on leaves, written into the array that views share
        view = leaf.detach()
        IN_PLACE[name](leaf)
    np.testing.assert_array_equal(view.numpy(), leaf.detach().numpy())
    assert leaf.is_leaf and leaf.requires_grad and leaf._version == 1


def test_random_fills_follow_the_seed():
    x = minidl.zeros(2000, dtype=minidl.float64)
    minidl.manual_seed(5)
    first = x.uniform_(-2, 3).numpy().copy()
    minidl.manual_seed(5)
    np.testing.assert_array_equal(x.uniform_(-2, 3).numpy(), first)
    assert -2 <= first.min() and first.max() < 3 and abs(first.mean() - 0.5) < 0.1
    x.normal_(1.0, 2.0)
    assert abs(x.mean().item() - 1.0) < 0.2 and abs(x.std().item() - 2.0) < 0.2


def test_clear_errors():
    x = minidl.randn(3, 4)
    for call, message in [
        (lambda: x.gather(1, minidl.tensor([0, 1])), r"gather: index of shape \(2,\) does not fit"),
        (lambda: x.gather(1, x), "index must be an integer tensor"),
        (lambda: x.expand(3, 5), r"cannot expand to \(3, 5\)"),
        (lambda: x.repeat(2), "give at least 2"),
        (lambda: x.split([1, 1], 0), r"sum to 2, but dimension 0 has size 3"),
        (lambda: x.topk(5), "k=5 is out of range"),
        (lambda: x.mm(x[0]), "mm: expected 2-D tensors"),
        (lambda: x.masked_fill(x, 0), "expected a bool mask"),
        (lambda: x.scatter(1, minidl.tensor([[0]]), 1.0, reduce="multiply"), "reduce='multiply'"),
        (lambda: x.narrow(1, 3, 2), "exceeds dimension 1 of size 4"),
    ]:
        with pytest.raises((RuntimeError, TypeError, IndexError, NotImplementedError), match=message):
            call()


# ---------------------------------------------------------------- meta and cuda

# name: fn(x) on a (3, 4) float32 tensor; the same shapes and dtypes on every device
DEVICE_CASES = {
    "sort": lambda x: x.sort(1, descending=True).values, "sort_indices": lambda x: x.sort(0).indices,
    "topk": lambda x: x.topk(2).values, "gather": lambda x: x.gather(1, _device_index(x, IDX)),
    "scatter": lambda x: x.scatter(1, _device_index(x, UNIQUE), x[:, :3] * 2),
    "scatter_add": lambda x: x.scatter_add(1, _device_index(x, IDX), x),
    "expand": lambda x: x[:, :1].expand(2, 3, 4), "repeat": lambda x: x.repeat(2, 1),
    "var": lambda x: x.var(1), "std": lambda x: x.std(0, keepdim=True),
    "compare": lambda x: (x > 0).float() + x.eq(x).float(), "any": lambda x: (x > 0).any(1).float(),
    "masked_fill": lambda x: x.masked_fill(x > 0, 1.0), "where": lambda x: minidl.where(x > 0, x, x * 2),
    "maximum": lambda x: minidl.maximum(x, -x), "sin_cos": lambda x: x.sin() * x.cos(),
    "clone_split": lambda x: x.clone().split(2, 1)[1], "squeeze": lambda x: x[:1].squeeze().unsqueeze(1),
    "promotion": lambda x: x + minidl.tensor([1, 2, 3, 4], device=x.device),
    "setitem": lambda x: _assigned(x), "in_place": lambda x: _copy(x).add_(x, alpha=2).mul_(3).clamp_(-1, 1),
    "copy_fill": lambda x: _copy(x).copy_(x.exp()) + _copy(x).fill_(2.0),
    "tril_triu": lambda x: x.tril(1) + minidl.triu(x, -1) * 2,
}


def _device_index(x, rows):
    return minidl.tensor(rows, device=x.device)


def _assigned(x):
    y = _copy(x)
    y[1:, :2] = x[:2, 2:] * 2
    y[0] = 1.0
    return y


@pytest.mark.parametrize("name", sorted(DEVICE_CASES))
def test_meta_shapes_and_dtypes(name):
    data = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    cpu = DEVICE_CASES[name](minidl.tensor(data, requires_grad=True))
    meta = DEVICE_CASES[name](minidl.tensor(data, device="meta"))
    assert meta.device == "meta" and (meta.shape, meta.dtype) == (cpu.shape, cpu.dtype)


@pytest.mark.cuda
@pytest.mark.skipif(not minidl.cuda.is_available(), reason="CUDA is not available")
@pytest.mark.parametrize("name", ["sort", "topk", "gather", "scatter", "scatter_add", "expand", "repeat",
                                  "var", "masked_fill", "where", "maximum", "setitem", "in_place",
                                  "copy_fill", "promotion", "tril_triu"])
def test_cuda_matches_cpu(name):
    data = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    results = {}
    for device in ("cpu", "cuda"):
        x = minidl.tensor(data, device=device, requires_grad=True)
        out = DEVICE_CASES[name](x)
        assert out.device == device
        w = minidl.tensor(np.random.default_rng(1).standard_normal(out.shape).astype(np.float32), device=device)
        (out * w).sum().backward()
        results[device] = (out.detach().cpu().numpy(), x.grad.cpu().numpy())
    for cuda_value, cpu_value in zip(results["cuda"], results["cpu"]):
        assert cuda_value.dtype == cpu_value.dtype
        np.testing.assert_allclose(cuda_value, cpu_value, rtol=1e-5, atol=1e-6)


@pytest.mark.cuda
@pytest.mark.skipif(not minidl.cuda.is_available(), reason="CUDA is not available")
def test_cuda_cumsum_says_it_is_cpu_only():
    with pytest.raises(NotImplementedError, match="no scan kernel"):
        minidl.ones(3, device="cuda").cumsum(0)
