"""Tensor ops: values against numpy/PyTorch, float64 gradient checks, and the autograd engine."""
import weakref

import numpy as np
import pytest

import minidl
from minidl.utils import gradcheck
from conftest import assert_close


def leaf(rng, *shape, positive=False, dtype=np.float64):
    data = rng.standard_normal(shape)
    if positive:
        data = np.abs(data) + 0.5
    return minidl.tensor(data.astype(dtype), requires_grad=True)


# ---------------------------------------------------------------- gradient checks (float64)

UNARY = {
    "neg": lambda x: -x,
    "exp": lambda x: x.exp(),
    "log": lambda x: x.log(),
    "sqrt": lambda x: x.sqrt(),
    "abs": lambda x: x.abs(),
    "clip": lambda x: x.clip(-0.5, 0.7),
    "relu": lambda x: x.relu(),
    "sigmoid": lambda x: x.sigmoid(),
    "tanh": lambda x: x.tanh(),
    "softmax0": lambda x: x.softmax(0),
    "softmax1": lambda x: x.softmax(-1),
    "log_softmax": lambda x: x.log_softmax(1),
    "pow_scalar": lambda x: x ** 3,
    "rpow": lambda x: 2.0 ** x,
    "sum_all": lambda x: x.sum(),
    "sum_axis_keep": lambda x: x.sum(1, keepdim=True),
    "mean_axis": lambda x: x.mean(0),
    "mean_axes": lambda x: x.mean((0, 1)),
    "max_all": lambda x: x.max(),
    "max_axis": lambda x: x.max(1).values,
    "reshape": lambda x: x.reshape(4, 3) * minidl.arange(12, dtype=np.float64).reshape(4, 3),
    "transpose": lambda x: x.T @ x,
    "permute": lambda x: x.permute(1, 0) * 2.0,
    "flatten": lambda x: x.flatten() * minidl.arange(12, dtype=np.float64),
    "slice": lambda x: x[1:, ::2],
    "int_index_repeat": lambda x: x[np.array([0, 2, 0])],
    "bool_mask": lambda x: x[x.data > 0],
    "leaky_relu": lambda x: minidl.nn.functional.leaky_relu(x, 0.1),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradcheck(name, rng):
    positive = name in ("log", "sqrt")
    x = leaf(rng, 3, 4, positive=positive)
    if name in ("abs", "relu", "leaky_relu", "clip"):  # keep finite differences off the kinks
        x.array[np.abs(x.array) < 0.05] += 0.2
        x.array[np.abs(x.array - 0.7) < 0.05] += 0.2
        x.array[np.abs(x.array + 0.5) < 0.05] += 0.2
    assert gradcheck(UNARY[name], [x])


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 3, 4), (3, 1))])
def test_binary_broadcast_gradcheck(name, shapes, rng):
    a = leaf(rng, *shapes[0], positive=True)
    b = leaf(rng, *shapes[1], positive=name in ("div", "pow"))
    assert gradcheck(BINARY[name], [a, b])


@pytest.mark.parametrize("shapes", [((3, 4), (4, 5)), ((2, 3, 4), (4, 2)), ((4,), (4, 3)), ((3, 4), (4,)),
                                    ((2, 1, 3, 4), (5, 4, 2))])
def test_matmul_gradcheck(shapes, rng):
    a, b = leaf(rng, *shapes[0]), leaf(rng, *shapes[1])
    assert gradcheck(lambda a, b: a @ b, [a, b])


def test_concatenate_and_stack_gradcheck(rng):
    a, b = leaf(rng, 2, 3), leaf(rng, 4, 3)
    assert gradcheck(lambda a, b: minidl.concatenate([a, b], dim=0) * 3.0, [a, b])
    c, d = leaf(rng, 2, 3), leaf(rng, 2, 3)
    assert gradcheck(lambda c, d: minidl.stack([c, d * c], dim=1), [c, d])


def test_cast_gradient_flows_back_in_the_original_dtype(rng):
    x = minidl.tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)
    (x.double() * 2.0).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.data, 2.0)


# ---------------------------------------------------------------- values against PyTorch

def test_forward_and_backward_match_torch(rng):
    torch = pytest.importorskip("torch")
    data_a, data_b = rng.standard_normal((4, 5)), rng.standard_normal((5,))
    a, b = minidl.tensor(data_a, requires_grad=True), minidl.tensor(data_b, requires_grad=True)
    ta = torch.tensor(data_a, requires_grad=True)
    tb = torch.tensor(data_b, requires_grad=True)

    def expression(lib_a, lib_b, row_max):
        y = (lib_a * lib_b).tanh() + (lib_a - lib_b).sigmoid() / (1.0 + lib_b.abs())
        return row_max(y.softmax(1)) + y.log_softmax(1).mean(1) + (y ** 2).sum(0)[:4]

    out = expression(a, b, lambda y: y.max(1).values)
    expected = expression(ta, tb, lambda y: torch.amax(y, 1))
    upstream = rng.standard_normal(out.shape)
    out.backward(upstream)
    expected.backward(torch.tensor(upstream))
    assert_close(out, expected, what="forward")
    assert_close(a.grad, ta.grad, what="grad a")
    assert_close(b.grad, tb.grad, what="grad b")


def test_max_splits_gradient_among_ties_like_torch_amax():
    torch = pytest.importorskip("torch")
    data = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    x = minidl.tensor(data, requires_grad=True)
    tx = torch.tensor(data, requires_grad=True)
    x.max(1).values.sum().backward()
    torch.amax(tx, 1).sum().backward()
    assert_close(x.grad, tx.grad)


# ---------------------------------------------------------------- the engine

def test_deep_chain_does_not_overflow_the_stack():
    x = minidl.tensor(1.0, dtype=np.float64, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001 ** 10_000, rel=1e-9)


def test_tensor_used_twice_gets_both_contributions():
    x = minidl.tensor([2.0, 3.0], dtype=np.float64, requires_grad=True)
    y = x * x + x  # x appears three times
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, 2 * x.data + 1)


def test_sums_of_shared_gradient_arrays_leave_every_other_array_alone(rng):
    """Add's backward hands one array to both inputs, and the seed is the caller's: the sweep
    adds into an array in place only when it made that array itself."""
    a, b = leaf(rng, 3), leaf(rng, 3)
    seed = rng.standard_normal(3)
    kept = seed.copy()
    s = a + b
    t = s + a + a + a  # a's gradient: the seed four times over, summed from shared arrays
    t.backward(seed)
    np.testing.assert_array_equal(seed, kept)
    np.testing.assert_allclose(a.grad.data, 4 * kept)
    np.testing.assert_allclose(b.grad.data, kept)
    x = leaf(rng, 3)
    (x + x[::-1][::-1] + x[1:].sum()).backward(seed)  # the seed itself, then slices, reach x
    np.testing.assert_array_equal(seed, kept)
    np.testing.assert_allclose(x.grad.data, 2 * kept + np.r_[0.0, kept.sum(), kept.sum()])


def test_a_tensor_sliced_many_ways_gets_every_slice_gradient(rng):
    """Slices, integers and advanced indices (repeats accumulate) of one tensor, mixed with
    whole-array uses: the indexed gradients are added into one buffer."""
    x = leaf(rng, 5, 4)
    w = rng.standard_normal((5, 4))
    rows = np.array([0, 2, 2, 4])
    y = ((x[1:4] * 2.0).sum() + (x[:, 0] * x[:, 0]).sum() + x[rows].sum() + (x * w).sum()
         + x[3].sum() + x[..., 1:3].sum())
    y.backward()
    expected = 2.0 * np.isin(np.arange(5), [1, 2, 3])[:, None] * np.ones((5, 4)) + w
    expected[:, 0] += 2 * x.data[:, 0]
    np.add.at(expected, rows, 1.0)
    expected[3] += 1.0
    expected[:, 1:3] += 1.0
    np.testing.assert_allclose(x.grad.data, expected)
    assert gradcheck(lambda x: (x[1:4] * x[rows][:3]).sum() + (x[:, 0] ** 2).sum(), [leaf(rng, 5, 4)])


def test_slices_in_a_time_loop_and_their_dtype():
    """x[t] over a sequence (one buffer, not one full-size array per step) and a float32
    tensor's gradient stays float32."""
    x = minidl.tensor(np.arange(24, dtype=np.float32).reshape(6, 2, 2), requires_grad=True)
    h = x[0]
    for t in range(1, 6):
        h = h * 0.5 + x[t]
    h.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.data, np.broadcast_to(0.5 ** np.arange(5, -1, -1.0)[:, None, None], (6, 2, 2)))


class _Tripled(minidl.Function):
    """y = x; dx = 3 dy, as a new array (``made`` keeps a weak reference to it) or, with
    ``keep_base``, as a view of an array that ``kept`` holds."""
    made, kept = None, []

    @staticmethod
    def forward(ctx, x, keep_base=False):
        ctx.keep_base = keep_base
        return x.copy()

    @staticmethod
    def backward(ctx, grad):
        if ctx.keep_base:
            base = 3 * grad.reshape(-1)
            _Tripled.kept.append(base)
            return base.reshape(grad.shape)
        out = 3 * grad
        _Tripled.made = weakref.ref(out)
        return out


@pytest.mark.skipif(not minidl.function.REFERENCE_COUNTS_KNOWN, reason="leaves copy every gradient here")
def test_a_leaf_takes_a_gradient_no_one_else_holds_without_a_copy():
    x = minidl.tensor(np.ones(4), requires_grad=True)
    _Tripled.apply(x).backward(np.ones(4))
    assert x.grad.array is _Tripled.made()
    _Tripled.apply(x).backward(np.ones(4))  # later backward passes add into it
    np.testing.assert_array_equal(x.grad.data, 6.0)


def test_a_leaf_copies_a_gradient_held_elsewhere():
    """The caller's seed, an array another leaf's gradient also is, and a view of an array
    something else holds are copied, never taken."""
    x = minidl.tensor(np.ones(3), requires_grad=True)
    seed = np.full(3, 2.0)
    (x + 0.0).backward(seed)
    seed[:] = 7.0
    np.testing.assert_array_equal(x.grad.data, 2.0)
    a, b = minidl.tensor(np.ones(3), requires_grad=True), minidl.tensor(np.ones(3), requires_grad=True)
    ((a + b) * 2.0).sum().backward()  # Add hands its one gradient array to a and to b
    assert not np.shares_memory(a.grad.array, b.grad.array)
    a.grad.array += 1.0
    np.testing.assert_array_equal(b.grad.data, 2.0)
    _Tripled.kept.clear()
    y = minidl.tensor(np.ones((2, 2)), requires_grad=True)
    _Tripled.apply(y, keep_base=True).backward(np.ones((2, 2)))
    assert not np.shares_memory(y.grad.array, _Tripled.kept[0])


def test_diamond_graph():
    x = minidl.tensor(1.5, dtype=np.float64, requires_grad=True)
    a = x.exp()
    b = a * 2.0
    c = a.log()
    (b + c).backward()
    assert x.grad.item() == pytest.approx(2 * np.exp(1.5) + 1.0)


def test_gradients_accumulate_across_backward_calls():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.data, [6.0, 6.0])


def test_second_backward_through_freed_graph_raises_and_retain_graph_allows_it():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()
    z = (x * x).sum()
    z.backward(retain_graph=True)
    z.backward()
    np.testing.assert_allclose(x.grad.data, 2 * 2 * x.data + 2 * x.data)


def test_backward_lets_go_of_activations_only_the_graph_holds():
    """Without retain_graph the sweep drops its references as it passes (PyTorch frees its
    graph's buffers too): an intermediate the program no longer holds is freed, one it holds
    is kept, and a second pass through a shared part still raises."""
    x = minidl.randn(4, 3, requires_grad=True)
    hidden, kept = x * 2.0, x + 1.0
    freed = weakref.ref(hidden)
    loss = (hidden.relu() * kept).sum()
    del hidden
    assert freed() is not None  # the graph holds it until backward
    loss.backward()
    assert freed() is None and kept.array is not None
    np.testing.assert_allclose(x.grad.array, 2.0 * (x.array > 0) * (x.array + 1.0) + np.maximum(2.0 * x.array, 0))
    shared = x * x
    first, second = shared.sum(), (shared * 2.0).sum()
    first.backward()
    with pytest.raises(RuntimeError, match="second time"):
        second.backward()


def test_backward_needs_scalar_or_gradient():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2.0).backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        minidl.tensor([1.0]).backward()


def test_non_leaf_has_no_grad_unless_retained():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2.0
    k = (x * 3.0).retain_grad()
    (h.sum() + k.sum()).backward()
    assert h.grad is None
    np.testing.assert_allclose(k.grad.data, [1.0, 1.0])


def test_no_grad_records_nothing_and_restores_state():
    x = minidl.tensor([1.0], requires_grad=True)
    with minidl.no_grad():
        y = x * 2.0
        assert not minidl.is_grad_enabled()
    assert minidl.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None

    @minidl.no_grad()
    def double(t):
        return t * 2.0
    assert not double(x).requires_grad


def test_constants_get_no_gradient_and_detach_cuts_the_graph():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    c = minidl.tensor([5.0, 5.0])
    y = (x * c + x.detach() * 100.0).sum()
    y.backward()
    assert c.grad is None
    np.testing.assert_allclose(x.grad.data, [5.0, 5.0])


# ---------------------------------------------------------------- construction and conversion

def test_dtypes_follow_pytorch_rules():
    assert minidl.tensor([1.0, 2.0]).dtype == np.float32
    assert minidl.tensor([1, 2]).dtype == np.int64
    assert minidl.tensor(np.zeros(2)).dtype == np.float64  # numpy arrays keep their dtype
    assert minidl.tensor([1.0], dtype=minidl.float64).dtype == np.float64
    x = minidl.ones(2, 3)
    assert (x * 2.5).dtype == np.float32  # Python scalars do not promote
    assert minidl.zeros((2, 3)).shape == (2, 3)
    assert minidl.arange(5).tolist() == [0, 1, 2, 3, 4]
    assert minidl.randn(3, 4, dtype=np.float64).dtype == np.float64


def test_tensor_copies_its_data():
    data = np.ones(3, dtype=np.float32)
    t = minidl.tensor(data)
    data[0] = 7
    assert t.array[0] == 1


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(RuntimeError, match="floating-point"):
        minidl.tensor([1, 2], requires_grad=True)


def test_item_numpy_and_len():
    t = minidl.tensor([[3.0]])
    assert t.item() == 3.0
    with pytest.raises(ValueError, match="2 elements"):
        minidl.tensor([1.0, 2.0]).item()
    with pytest.raises(RuntimeError, match="detach"):
        minidl.tensor([1.0], requires_grad=True).numpy()
    assert len(minidl.zeros(4, 2)) == 4


def test_manual_seed_makes_randn_reproducible():
    minidl.manual_seed(7)
    a = minidl.randn(5).numpy().copy()
    minidl.manual_seed(7)
    np.testing.assert_array_equal(a, minidl.randn(5).numpy())


def test_devices():
    assert minidl.tensor([1.0]).device == "cpu"
    assert minidl.device("cpu") == minidl.Device("cpu:0")
    with pytest.raises(ValueError, match="unknown device"):
        minidl.device("tpu")
    if not minidl.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            minidl.device("cuda")


def test_mixed_devices_error_names_both():
    from minidl.function import common_device

    class FakeTensor:
        def __init__(self, device):
            self.device = minidl.Device(device)

    with pytest.raises(RuntimeError, match="cpu and cuda"):
        common_device([FakeTensor("cpu"), FakeTensor("cuda")], "Add")


def test_comparisons_and_argmax_are_outside_the_graph():
    x = minidl.tensor([[1.0, 5.0], [7.0, 2.0]], requires_grad=True)
    assert (x > 2.0).tolist() == [[False, True], [True, False]]
    assert x.argmax(1).tolist() == [1, 0]
    assert not (x > 2.0).requires_grad


def test_repr_shows_grad_fn():
    y = minidl.tensor([1.0], requires_grad=True) * 2.0
    assert "grad_fn=<MulBackward>" in repr(y)


@pytest.mark.parametrize("shape", [(7, 5), (300, 400)])  # serial and parallel kernels
def test_relu_kernel_on_views_keeps_nan_and_masks_the_gradient(shape):
    data = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    data[0, :3] = [np.nan, -0.0, 0.0]
    x = minidl.tensor(data, requires_grad=True)
    y = x.T.relu()  # a transposed (non-contiguous) input
    np.testing.assert_array_equal(y.detach().numpy(), np.maximum(data.T, 0))
    upstream = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    y.backward(upstream)
    np.testing.assert_array_equal(x.grad.numpy(), (upstream * (np.maximum(data.T, 0) > 0)).T)


def test_device_equality_fast_and_parsed():
    cpu = minidl.Device("cpu")
    assert cpu == "cpu" and cpu == minidl.Device("cpu") and cpu == "CPU" and cpu == "cpu:0"
    assert cpu != "meta" and cpu != "cuda" and cpu != minidl.Device("meta")
    assert cpu != "tpu" and cpu != 3 and cpu != None  # noqa: E711  (unparsable, not a device)
    assert minidl.Device("cuda") == "cuda:1" and minidl.Device("meta") == "meta"
