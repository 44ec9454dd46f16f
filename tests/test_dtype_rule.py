"""One dtype rule, no silent wrong result (issue 11), and PyTorch's promotion, max(dim) and
in-place semantics (issue 12).

- Float functions (exp, log, sqrt, sigmoid, tanh, softmax, log_softmax, leaky_relu, mean, true
  division, average pooling, dropout) compute bool and integer inputs in float32.
- Layers with float parameters and losses of float predictions raise a TypeError that names the
  layer (or function) and the dtype, for integer, bool and float16 inputs and for non-Tensors.
- Integer-exact ops (relu, max pooling, sum, abs, max) keep integer dtypes, as PyTorch.
"""
import numpy as np
import pytest

import minidl
import minidl.nn as nn
import minidl.nn.functional as F


def _int(*shape, dtype=np.int64, low=0, high=5):
    return minidl.tensor(np.random.default_rng(0).integers(low, high, shape).astype(dtype))


# ---------------------------------------------------------------- float functions promote

def _softmax64(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


PROMOTING = {
    # name: (op on a minidl tensor, float64 reference on the numpy array)
    "sigmoid": (F.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "tanh": (F.tanh, np.tanh),
    "exp": (lambda t: t.exp(), np.exp),
    "log": (lambda t: (t + 1).log(), lambda x: np.log(x + 1)),
    "sqrt": (lambda t: t.sqrt(), np.sqrt),
    "softmax": (lambda t: F.softmax(t, -1), _softmax64),
    "log_softmax": (lambda t: F.log_softmax(t, -1), lambda x: np.log(_softmax64(x))),
    "leaky_relu": (lambda t: F.leaky_relu(t, 0.1), lambda x: np.where(x > 0, x, 0.1 * x)),
    "mean": (lambda t: t.mean(), np.mean),
    "mean_dim": (lambda t: t.mean(1), lambda x: x.mean(1)),
    "div_scalar": (lambda t: t / 3, lambda x: x / 3),
    "rdiv_scalar": (lambda t: 3 / (t + 1), lambda x: 3 / (x + 1)),
    "div_tensor": (lambda t: t / (t + 1), lambda x: x / (x + 1)),
    "avg_pool2d": (lambda t: F.avg_pool2d(t.reshape(1, 1, 4, 6), 2),
                   lambda x: x.reshape(2, 2, 3, 2).mean(axis=(1, 3)).reshape(1, 1, 2, 3)),
    "adaptive_avg_pool2d": (lambda t: F.adaptive_avg_pool2d(t.reshape(1, 1, 4, 6), 1),
                            lambda x: x.mean().reshape(1, 1, 1, 1)),
    "mul_float_scalar": (lambda t: t * 2.5, lambda x: x * 2.5),
    "pow_half": (lambda t: t ** 0.5, np.sqrt),
    "silu": (F.silu, lambda x: x / (1 + np.exp(-x))),
    "elu": (F.elu, lambda x: np.where(x > 0, x, np.expm1(x))),
    "softplus": (F.softplus, lambda x: np.log1p(np.exp(x))),
    "mish": (F.mish, lambda x: x * np.tanh(np.log1p(np.exp(x)))),
    "gelu_tanh": (lambda t: F.gelu(t, "tanh"),
                  lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))),
}


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.int32])
@pytest.mark.parametrize("name", sorted(PROMOTING))
def test_float_functions_compute_integers_in_float32(name, dtype):
    op, reference = PROMOTING[name]
    x = _int(4, 6, dtype=dtype)
    out = op(x)
    assert out.dtype == np.float32, f"{name} on {np.dtype(dtype)} gave {out.dtype}"
    np.testing.assert_allclose(out.numpy(), reference(x.numpy().astype(np.float64)), rtol=1e-6, atol=1e-6)


def test_sigmoid_of_int64_is_not_zero():  # the example
    np.testing.assert_allclose(F.sigmoid(minidl.tensor([-1, 2])).numpy(), [0.26894142, 0.88079708],
                               rtol=1e-6)


def test_bool_inputs_promote_too():
    b = minidl.tensor([True, False])
    assert b.exp().dtype == np.float32
    np.testing.assert_allclose(b.exp().numpy(), [np.e, 1.0], rtol=1e-6)
    assert b.mean().item() == pytest.approx(0.5)


def test_dropout_of_integers_scales_in_float32():
    x = minidl.tensor(np.full(1000, 7, dtype=np.int64))
    y = F.dropout(x, 0.3).numpy()
    assert y.dtype == np.float32
    assert set(np.unique(y)) <= {0.0, np.float32(7 / 0.7)}


@pytest.mark.parametrize("name", ["sigmoid", "mean", "div_scalar", "avg_pool2d"])
def test_promotion_holds_on_meta(name):
    out = PROMOTING[name][0](minidl.zeros(4, 6, dtype=np.int64, device="meta"))
    assert out.device == "meta" and out.dtype == np.float32


EXACT = {
    "relu": (F.relu, "relu"),
    "max_pool2d": (lambda t: F.max_pool2d(t.reshape(1, 1, 4, 6), 2), "max_pool2d"),
    "sum": (lambda t: t.sum(), "sum"),
    "abs": (lambda t: (t - 2).abs(), "abs"),
    "max": (lambda t: t.max(), "max"),
    "add_int": (lambda t: t + 1, "add"),
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_integer_exact_ops_keep_the_integer_dtype_as_torch(name):
    torch = pytest.importorskip("torch")
    x = _int(4, 6)
    op = EXACT[name][0]
    out = op(x)
    expected = op(torch.tensor(x.numpy()))  # the same expression runs on torch
    assert str(out.dtype) == str(expected.dtype).replace("torch.", "")
    np.testing.assert_array_equal(out.numpy(), expected.numpy())


# ---------------------------------------------------------------- float layers and losses refuse

def _image(dtype, shape=(2, 1, 5, 5)):
    return minidl.tensor(np.full(shape, 200, dtype=dtype))


REFUSING = {
    # name: (layer or function, input maker, the name the message must contain)
    "Conv2d": (lambda: nn.Conv2d(1, 2, 3), lambda d: _image(d), "Conv2d"),
    "Conv1d": (lambda: nn.Conv1d(1, 2, 3), lambda d: _image(d, (2, 1, 5)), "Conv1d"),
    "TiledConv2d": (lambda: nn.TiledConv2d(1, 2, 2, tile_size=2), lambda d: _image(d), "TiledConv2d"),
    "LocallyConnected2d": (lambda: nn.LocallyConnected2d(1, 2, 5, 3), lambda d: _image(d),
                           "LocallyConnected2d"),
    "Linear": (lambda: nn.Linear(4, 3), lambda d: _image(d, (2, 4)), "Linear"),
    "LowRankLinear": (lambda: nn.LowRankLinear(4, 3, rank=2), lambda d: _image(d, (2, 4)), "LowRankLinear"),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(2), lambda d: _image(d, (3, 2)), "BatchNorm1d"),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(1), lambda d: _image(d), "BatchNorm2d"),
    "RNN": (lambda: nn.RNN(3, 4), lambda d: _image(d, (2, 2, 3)), "RNN"),
    "LSTM": (lambda: nn.LSTM(3, 4), lambda d: _image(d, (2, 2, 3)), "LSTM"),
    "GRU": (lambda: nn.GRU(3, 4), lambda d: _image(d, (2, 2, 3)), "GRU"),
    "LSTMCell": (lambda: nn.LSTMCell(3, 4), lambda d: _image(d, (2, 3)), "LSTMCell"),
    "F.conv2d": (lambda: lambda x: F.conv2d(x, minidl.zeros(2, 1, 3, 3)), lambda d: _image(d), "conv2d"),
    "F.linear": (lambda: lambda x: F.linear(x, minidl.zeros(3, 4)), lambda d: _image(d, (2, 4)), "linear"),
    "F.layer_norm": (lambda: lambda x: F.layer_norm(x, 4), lambda d: _image(d, (2, 4)), "layer_norm"),
    "F.group_norm": (lambda: lambda x: F.group_norm(x, 2), lambda d: _image(d, (2, 4)), "group_norm"),
}

LOSSES = {
    "CrossEntropyLoss": (nn.CrossEntropyLoss, lambda x: minidl.tensor([0, 1]), "cross_entropy"),
    "NLLLoss": (nn.NLLLoss, lambda x: minidl.tensor([0, 1]), "nll_loss"),
    "MSELoss": (nn.MSELoss, lambda x: minidl.zeros(*x.shape), "mse_loss"),
    "L1Loss": (nn.L1Loss, lambda x: minidl.zeros(*x.shape), "l1_loss"),
    "BCELoss": (nn.BCELoss, lambda x: minidl.zeros(*x.shape), "binary_cross_entropy"),
    "BCEWithLogitsLoss": (nn.BCEWithLogitsLoss, lambda x: minidl.zeros(*x.shape),
                          "binary_cross_entropy_with_logits"),
}


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.bool_, np.float16])
@pytest.mark.parametrize("name", sorted(REFUSING))
def test_float_layers_refuse_other_dtypes_naming_layer_and_dtype(name, dtype):
    make, make_input, label = REFUSING[name]
    layer, x = make(), make_input(dtype)
    with pytest.raises(TypeError, match=label) as error:
        layer(x)
    message = str(error.value)
    assert str(np.dtype(dtype)) in message and "x.float()" in message


@pytest.mark.parametrize("dtype", [np.int64, np.uint8])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_refuse_integer_predictions(name, dtype):
    make, make_target, label = LOSSES[name]
    x = minidl.tensor(np.array([[1, 0], [0, 1]], dtype=dtype))
    with pytest.raises(TypeError, match=rf"^{label}: input dtype {np.dtype(dtype)} is not a float type"):
        make()(x, make_target(x))


def test_cross_entropy_of_int64_logits_is_refused_not_truncated():  # the example
    with pytest.raises(TypeError, match="cross_entropy: input dtype int64"):
        F.cross_entropy(minidl.tensor([[1, 3, 0]]), minidl.tensor([0]))


def test_detection_loss_refuses_integer_predictions():
    x = minidl.tensor(np.zeros((1, 2, 2, 6), dtype=np.int64))
    with pytest.raises(TypeError, match="detection_loss: input dtype int64"):
        nn.DetectionLoss(num_classes=1)(x, minidl.zeros(1, 2, 2, 6))


def test_conv2d_on_uint8_image_names_the_fix():
    with pytest.raises(TypeError, match=r"Conv2d\(1, 2.*uint8 is not a float type.*x\.float\(\) / 255"):
        nn.Conv2d(1, 2, 3)(_image(np.uint8))


def test_conv2d_float16_says_what_is_supported():
    with pytest.raises(TypeError, match=r"Conv2d.*float16 is not supported.*float32 or float64"):
        nn.Conv2d(1, 4, 3)(minidl.zeros(1, 1, 5, 5, dtype=np.float16))


def test_batch_norm_refusal_leaves_running_statistics_alone():
    layer = nn.BatchNorm1d(2)
    with pytest.raises(TypeError, match="BatchNorm1d.*int64"):
        layer(minidl.tensor([[1, 2], [3, 5]]))
    np.testing.assert_array_equal(layer.running_mean.numpy(), [0, 0])
    assert int(layer.num_batches_tracked.item()) == 0


def test_refusal_holds_on_meta():
    layer = nn.Conv2d(1, 2, 3).to("meta")
    with pytest.raises(TypeError, match="Conv2d.*uint8"):
        layer(minidl.zeros(1, 1, 5, 5, dtype=np.uint8, device="meta"))


def test_float64_still_runs_everywhere():
    x = minidl.randn(2, 4, dtype=np.float64)
    assert nn.Linear(4, 3).double()(x).dtype == np.float64


# ---------------------------------------------------------------- smaller holes

@pytest.mark.parametrize("arguments, name", [
    ({"kernel_size": 0}, "kernel_size"), ({"stride": 0}, "stride"), ({"in_channels": 0}, "in_channels"),
    ({"out_channels": 0}, "out_channels"), ({"groups": 0}, "groups"), ({"dilation": 0}, "dilation"),
    ({"padding": -1}, "padding"), ({"kernel_size": (3, 0)}, "kernel_size"),
])
def test_conv_arguments_are_checked_at_construction(arguments, name):
    options = {"in_channels": 1, "out_channels": 4, "kernel_size": 3, **arguments}
    for layer in (nn.Conv2d, nn.Conv1d):
        if layer is nn.Conv1d and isinstance(options["kernel_size"], tuple):
            continue
        with pytest.raises(ValueError, match=rf"{layer.__name__}: {name} must be"):
            layer(**options)


def test_tiled_and_local_arguments_are_checked():
    with pytest.raises(ValueError, match="TiledConv2d: tile_size must be >= 1"):
        nn.TiledConv2d(1, 2, 3, tile_size=0)
    with pytest.raises(ValueError, match="LocallyConnected2d: stride must be >= 1"):
        nn.LocallyConnected2d(1, 2, 5, 3, stride=0)


@pytest.mark.parametrize("layer, shape", [(lambda: nn.Conv2d(2, 3, 3, padding=1), (0, 2, 5, 5)),
                                          (lambda: nn.Conv1d(2, 3, 3), (0, 2, 6))])
def test_conv_on_an_empty_batch_gives_an_empty_output_like_torch(layer, shape):
    torch = pytest.importorskip("torch")
    conv = layer()
    reference = (torch.nn.Conv2d(2, 3, 3, padding=1) if len(shape) == 4 else torch.nn.Conv1d(2, 3, 3))
    x = minidl.zeros(*shape, requires_grad=True)
    y = conv(x)
    assert y.shape == tuple(reference(torch.zeros(*shape)).shape)
    y.sum().backward()
    assert x.grad.shape == shape
    np.testing.assert_array_equal(conv.weight.grad.numpy(), 0)
    np.testing.assert_array_equal(conv.bias.grad.numpy(), 0)


@pytest.mark.parametrize("layer", [nn.RNN, nn.LSTM, nn.GRU])
@pytest.mark.parametrize("batch_first", [False, True])
def test_recurrent_layers_refuse_an_empty_sequence(layer, batch_first):
    shape = (2, 0, 3) if batch_first else (0, 2, 3)
    with pytest.raises(ValueError, match=rf"{layer.__name__}\(3, 4.*sequence of length at least 1.*{shape}"):
        layer(3, 4, batch_first=batch_first)(minidl.zeros(*shape))


def test_linear_on_a_list_raises_type_error_like_torch():
    with pytest.raises(TypeError, match=r"Linear.*argument 'input' must be Tensor, not list"):
        nn.Linear(4, 3)([[1.0] * 4])


def test_load_state_dict_of_a_list_names_the_method_and_type():
    with pytest.raises(TypeError, match="load_state_dict: expected a dict-like state_dict.*got list"):
        nn.Linear(4, 3).load_state_dict([1, 2])


# ---------------------------------------------------------------- issue 12: silent differences

def test_max_and_min_with_dim_return_values_and_indices_like_torch():
    torch = pytest.importorskip("torch")
    data = np.array([[1.0, 5.0, 3.0], [4.0, 2.0, 6.0]], dtype=np.float32)
    x, tx = minidl.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    for name in ("max", "min"):
        for keepdim in (False, True):
            values, indices = getattr(x, name)(dim=1, keepdim=keepdim)
            expected = getattr(tx, name)(dim=1, keepdim=keepdim)
            np.testing.assert_array_equal(values.detach().numpy(), expected.values.detach().numpy())
            np.testing.assert_array_equal(indices.numpy(), expected.indices.numpy())
            assert indices.dtype == np.int64
        result = getattr(x, name)(1)
        assert type(result).__name__ == name and result.values is result[0]
        assert isinstance(getattr(x, name)(), minidl.Tensor)  # no dim: one tensor
    x.min(0).values.sum().backward()
    tx.min(0).values.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())


PROMOTION = [
    (np.float32, np.int64), (np.int64, np.float32), (np.float64, np.int32), (np.int32, np.int64),
    (np.uint8, np.int64), (np.float32, np.float64), (np.bool_, np.int64), (np.bool_, np.float32),
    (np.uint8, np.bool_),
]


@pytest.mark.parametrize("op", ["add", "sub", "mul", "truediv"])
@pytest.mark.parametrize("left, right", PROMOTION)
def test_tensor_tensor_promotion_matches_torch(left, right, op):
    torch = pytest.importorskip("torch")
    if op == "sub" and np.bool_ in (left, right):
        pytest.skip("torch refuses subtraction with a bool tensor")
    a = np.array([1, 2, 3]).astype(left)
    b = np.array([2, 1, 1]).astype(right)
    fn = getattr(__import__("operator"), op)
    out = fn(minidl.tensor(a), minidl.tensor(b))
    expected = fn(torch.tensor(a), torch.tensor(b))
    assert str(out.dtype) == str(expected.dtype).replace("torch.", "")
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32, np.uint8, np.bool_])
@pytest.mark.parametrize("scalar", [2, 2.5, True])
def test_python_scalars_never_widen_a_tensor(dtype, scalar):
    torch = pytest.importorskip("torch")
    a = np.array([1, 0, 1]).astype(dtype)
    out = minidl.tensor(a) * scalar
    expected = torch.tensor(a) * scalar
    assert str(out.dtype) == str(expected.dtype).replace("torch.", "")


def test_zero_dim_tensors_do_not_widen_dimensioned_ones():
    x = minidl.tensor(np.ones(3, dtype=np.float32))
    assert (x + minidl.tensor(np.array(2.0))).dtype == np.float32
    assert (minidl.tensor(np.ones(3, dtype=np.int64)) + minidl.tensor(np.array(2.5))).dtype == np.float64


def test_promoted_ops_keep_gradients_in_the_float_dtype():
    w = minidl.tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    (w * minidl.tensor([3, 4])).sum().backward()
    assert w.grad.dtype == np.float32
    np.testing.assert_array_equal(w.grad.numpy(), [3, 4])


def test_promotion_on_meta_matches_cpu():
    a = minidl.zeros(3, device="meta") + minidl.zeros(3, dtype=np.int64, device="meta")
    assert a.dtype == np.float32
    assert (minidl.zeros(3, dtype=np.int64, device="meta") * 2.5).dtype == np.float32


def test_in_place_add_changes_the_same_tensor():
    torch = pytest.importorskip("torch")
    a = minidl.tensor([1.0, 2.0])
    alias, view = a, a.detach()
    a += 1
    a *= minidl.tensor([2, 3])
    a -= 0.5
    a /= 2
    t = torch.tensor([1.0, 2.0])
    t += 1
    t *= torch.tensor([2, 3])
    t -= 0.5
    t /= 2
    assert a is alias
    np.testing.assert_allclose(a.numpy(), t.numpy())
    np.testing.assert_allclose(view.numpy(), t.numpy())  # detach() shares the data
    assert a.dtype == np.float32 and a._version == 4


def test_in_place_on_a_leaf_that_requires_grad_raises_like_torch():
    w = minidl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an "
                                           "in-place operation"):
        w += 1
    with minidl.no_grad():  # the manual SGD step is allowed
        w -= 0.5
    np.testing.assert_array_equal(w.numpy() if not w.requires_grad else w.detach().numpy(), [0.5, 1.5])


def test_in_place_result_must_cast_to_the_tensor_dtype():
    i = minidl.tensor([1, 2])
    with pytest.raises(RuntimeError, match="result type float32 can't be cast to the desired output type int64"):
        i += 2.5
    with pytest.raises(RuntimeError, match="doesn't match the broadcast shape"):
        i += minidl.tensor([[1], [2]])
    np.testing.assert_array_equal(i.numpy(), [1, 2])


def test_in_place_on_a_graph_tensor_records_the_op():
    torch = pytest.importorskip("torch")
    w = minidl.tensor([1.0, 2.0], requires_grad=True)
    tw = torch.tensor([1.0, 2.0], requires_grad=True)
    for lib, leaf in ((minidl, w), (torch, tw)):
        y = leaf * 2
        y *= leaf
        y += 1
        y.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy())


def test_modifying_a_tensor_a_backward_needs_raises_instead_of_a_wrong_gradient():
    w = minidl.tensor([1.0, 2.0], requires_grad=True)
    a = minidl.tensor([3.0, 4.0])
    z = (w * a).sum()
    a += 1  # Mul saved a; its gradient for w would silently use the new values
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.backward()


# ---------------------------------------------------------------- result_dtype's one-look path

_OPERAND_DTYPES = [np.bool_, np.uint8, np.int32, np.int64, np.float16, np.float32, np.float64, np.complex64]


@pytest.mark.parametrize("first", _OPERAND_DTYPES)
def test_result_dtype_one_look_path_agrees_with_the_full_ranking(first):
    """result_dtype answers common operands (an array with others of its dtype, or weak Python
    scalars) in one look; every combination must give what ranking all operands gives."""
    from minidl.function import ranked_result_dtype, result_dtype
    others = ([np.ones(3, dtype=d) for d in _OPERAND_DTYPES] + [np.ones((), dtype=d) for d in _OPERAND_DTYPES]
              + [True, 2, 2.5, 1j])
    for shape in ((3,), ()):
        a = np.ones(shape, dtype=first)
        for b in others:
            for operands in ((a, b), (a, b, b), (a, a, b)):
                assert result_dtype(*operands) == ranked_result_dtype(operands), (a.dtype, shape, b)
