"""The cuda device: every op, loss and optimizer on "cuda" equals the cpu result (float32, 1e-4),
gradients too; moving tensors and modules; mixing devices; training; the data loader.

Without a GPU these run in numba's CUDA simulator (tests/conftest.py sets
NUMBA_ENABLE_CUDASIM=1 when no NVIDIA driver is present), so shapes are tiny.
"""
import subprocess
import sys

import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl import nn, optim

pytestmark = pytest.mark.skipif(not minidl.cuda.is_available(), reason="CUDA is not available")

RTOL, ATOL = 1e-4, 1e-5


def _host(x):
    if isinstance(x, minidl.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _close(actual, expected, what=""):
    actual, expected = _host(actual), _host(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, err_msg=what)


def _on_both(fn, inputs, grad=True):
    """Run ``fn`` on cpu tensors and on cuda tensors of the same inputs; compare the outputs
    and (for float inputs) the gradients of sum(out * r), r a fixed random weighting."""
    results = {}
    for device in ("cpu", "cuda"):
        tensors = [minidl.tensor(a, device=device,
                                 requires_grad=grad and np.issubdtype(a.dtype, np.floating))
                   for a in inputs]
        out = fn(*tensors)
        assert out.device == device
        if device == "cuda":
            assert type(out.array).__name__ == "CudaArray"
        grads = None
        if grad and out.requires_grad:
            weights = np.random.default_rng(7).standard_normal(out.shape).astype(out.dtype)
            (out * minidl.tensor(weights, device=device)).sum().backward()
            grads = [t.grad for t in tensors]
        results[device] = (out, grads)
    (cpu_out, cpu_grads), (gpu_out, gpu_grads) = results["cpu"], results["cuda"]
    _close(gpu_out, cpu_out, "forward")
    if cpu_grads is not None:
        for i, (g_gpu, g_cpu) in enumerate(zip(gpu_grads, cpu_grads)):
            assert (g_gpu is None) == (g_cpu is None), f"gradient of input {i}"
            if g_cpu is not None:
                assert g_gpu.device == "cuda"
                _close(g_gpu, g_cpu, f"gradient of input {i}")
    return gpu_out


def _rand(*shape, low=None):
    x = np.random.default_rng(sum(shape) + len(shape)).standard_normal(shape).astype(np.float32)
    return np.abs(x) + low if low is not None else x


# ---------------------------------------------------------------- elementwise and reductions

UNARY = {
    "neg": (lambda x: -x, {}),
    "exp": (lambda x: x.exp(), {}),
    "log": (lambda x: x.log(), {"low": 0.1}),
    "sqrt": (lambda x: x.sqrt(), {"low": 0.1}),
    "abs": (lambda x: x.abs(), {}),
    "relu": (F.relu, {}),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.1), {}),
    "sigmoid": (F.sigmoid, {}),
    "tanh": (F.tanh, {}),
    "clip": (lambda x: x.clip(-0.5, 0.4), {}),
    "clip_low": (lambda x: x.clip(min=0.0), {}),
    "softmax": (lambda x: F.softmax(x, dim=-1), {}),
    "softmax_dim0": (lambda x: F.softmax(x, dim=0), {}),
    "log_softmax": (lambda x: F.log_softmax(x, dim=1), {}),
    "pow_scalar": (lambda x: x ** 2, {}),
    "rpow": (lambda x: 2.0 ** x, {}),
    "scalar_arith": (lambda x: (1 - x) * 0.5 + 3 / (x * x + 1), {}),
    "sum": (lambda x: x.sum(), {}),
    "sum_dim0": (lambda x: x.sum(0), {}),
    "sum_keepdim": (lambda x: x.sum(1, keepdim=True), {}),
    "mean": (lambda x: x.mean(), {}),
    "mean_dim": (lambda x: x.mean(dim=1), {}),
    "max": (lambda x: x.max(), {}),
    "max_dim": (lambda x: x.max(dim=0, keepdim=True).values, {}),
    "reshape": (lambda x: x.reshape(4, 3) * 2, {}),
    "flatten": (lambda x: x.flatten() + 1, {}),
    "permute": (lambda x: x.permute(1, 0) * 3, {}),
    "T_reshape": (lambda x: x.T.reshape(-1) * 1, {}),
    "unsqueeze_squeeze": (lambda x: x.unsqueeze(1).squeeze(1) * 2, {}),
    "slice": (lambda x: x[1:, ::2] * 2, {}),
    "int_index": (lambda x: x[1] * 2, {}),
    "negative_step": (lambda x: x[::-1, 1:3] * 2, {}),
    "gather_rows": (lambda x: x[np.array([2, 0, 2])] * 1, {}),
    "gather_pairs": (lambda x: x[np.array([0, 1, 2]), np.array([3, 0, 3])] * 1, {}),
    "gather_after_slice": (lambda x: x[:, np.array([1, 1, 3])] * 1, {}),
    "cast_double": (lambda x: x.double() * 2, {}),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_ops_match_cpu(name):
    fn, options = UNARY[name]
    _on_both(fn, [_rand(3, 4, **options)])


def test_max_ties_share_the_gradient():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], dtype=np.float32)
    _on_both(lambda t: t.max(dim=1).values, [x])


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1),
    "pow": lambda a, b: (a * a + 1) ** b,
}


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)),
                                    ((2, 3, 4), (3, 1))])
@pytest.mark.parametrize("name", sorted(BINARY))
def test_broadcasting_binary_ops_match_cpu(name, shapes):
    _on_both(BINARY[name], [_rand(*shapes[0]), _rand(*shapes[1]) * 0.5])


@pytest.mark.parametrize("shapes", [((3, 5), (5, 2)), ((2, 3, 5), (5, 4)), ((5,), (5, 3)),
                                    ((3, 5), (5,)), ((2, 1, 2, 3), (3, 3, 2))])
def test_matmul_matches_cpu(shapes):
    _on_both(lambda a, b: a @ b, [_rand(*shapes[0]), _rand(*shapes[1])])


def test_matmul_spans_several_tiles():
    _on_both(lambda a, b: a @ b.T, [_rand(9, 6), _rand(7, 6)])


def test_concatenate_and_stack_match_cpu():
    _on_both(lambda a, b: minidl.cat([a, b * 2], dim=1), [_rand(2, 3), _rand(2, 2)])
    _on_both(lambda a, b: minidl.stack([a, b], dim=1), [_rand(2, 3), _rand(2, 3) + 1])


def test_comparisons_argmax_and_indexing_by_cuda_tensor():
    x = _rand(3, 4)
    gpu = minidl.tensor(x, device="cuda")
    np.testing.assert_array_equal((gpu > 0).numpy(), x > 0)
    np.testing.assert_array_equal(gpu.argmax(1).numpy(), x.argmax(1))
    index = minidl.tensor(np.array([2, 1, 2]), device="cuda")
    _close(gpu[index], x[[2, 1, 2]])


def test_repeated_index_gradients_accumulate():
    _on_both(lambda t: t[np.array([0, 2, 0, 0])], [_rand(3, 2)])


# ---------------------------------------------------------------- layers and losses

def test_linear_and_dropout_match_cpu():
    results = []
    for device in ("cpu", "cuda"):
        minidl.manual_seed(3)
        layer = nn.Linear(5, 4).to(device)
        x = minidl.tensor(_rand(3, 2, 5), device=device, requires_grad=True)
        minidl.manual_seed(4)
        out = F.dropout(layer(x), p=0.3, training=True).sum()
        out.backward()
        results.append((out, x.grad, layer.weight.grad, layer.bias.grad))
    for gpu, cpu in zip(results[1], results[0]):
        _close(gpu, cpu)


TARGET = np.array([0, 2, 1, 2])


@pytest.mark.parametrize("options", [
    {}, {"reduction": "sum"}, {"reduction": "none"}, {"ignore_index": 2},
    {"label_smoothing": 0.2}, {"weight": np.array([1.0, 2.0, 0.5], dtype=np.float32)},
])
def test_cross_entropy_matches_cpu(options):
    weight = options.get("weight")
    kwargs = {k: v for k, v in options.items() if k != "weight"}

    def loss(x, t):
        w = None if weight is None else minidl.tensor(weight, device=x.device)
        return F.cross_entropy(x, t, weight=w, **kwargs)
    _on_both(loss, [_rand(4, 3), TARGET])


def test_cross_entropy_over_spatial_positions_matches_cpu():
    _on_both(lambda x, t: F.cross_entropy(x, t), [_rand(2, 3, 2), np.array([[0, 2], [1, 1]])])


def test_cross_entropy_bad_target_names_the_class():
    x = minidl.tensor(_rand(2, 3), device="cuda")
    with pytest.raises(IndexError, match="target 5 is out of range"):
        F.cross_entropy(x, minidl.tensor(np.array([0, 5]), device="cuda"))


@pytest.mark.parametrize("name", ["nll_loss", "mse_loss", "l1_loss", "bce", "bce_logits",
                                  "bce_logits_pos_weight"])
def test_other_losses_match_cpu(name):
    x, y = _rand(4, 3), np.random.default_rng(5).random((4, 3)).astype(np.float32)
    if name == "nll_loss":
        _on_both(lambda a, t: F.nll_loss(F.log_softmax(a, dim=1), t), [x, TARGET])
    elif name == "mse_loss":
        _on_both(F.mse_loss, [x, y])
    elif name == "l1_loss":
        _on_both(F.l1_loss, [x, y])
    elif name == "bce":
        _on_both(lambda a, t: F.binary_cross_entropy(F.sigmoid(a), t), [x, y])
    elif name == "bce_logits":
        _on_both(F.binary_cross_entropy_with_logits, [x, y])
    else:
        pos = np.array([1.0, 2.0, 0.5], dtype=np.float32)
        _on_both(lambda a, t: F.binary_cross_entropy_with_logits(
            a, t, pos_weight=minidl.tensor(pos, device=a.device)), [x, y])


# ---------------------------------------------------------------- optimizers

OPTIMIZERS = {
    "sgd": lambda p: optim.SGD(p, lr=0.1),
    "sgd_momentum_wd": lambda p: optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01),
    "sgd_nesterov": lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    "adam": lambda p: optim.Adam(p, lr=0.01),
    "adam_amsgrad_wd": lambda p: optim.Adam(p, lr=0.01, amsgrad=True, weight_decay=0.1),
    "adamw": lambda p: optim.AdamW(p, lr=0.01),
    "adagrad": lambda p: optim.Adagrad(p, lr=0.1, lr_decay=0.01, weight_decay=0.01),
    "rmsprop": lambda p: optim.RMSprop(p, lr=0.01),
    "rmsprop_centered_momentum": lambda p: optim.RMSprop(p, lr=0.01, centered=True, momentum=0.9),
}


def _train_steps(device, make_optimizer, steps=3):
    minidl.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).to(device)
    opt = make_optimizer(model.parameters())
    x = minidl.tensor(_rand(6, 4), device=device)
    y = minidl.tensor(np.array([0, 1, 2, 2, 1, 0]), device=device)
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model, opt, losses


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_steps_match_cpu(name):
    cpu_model, _, cpu_losses = _train_steps("cpu", OPTIMIZERS[name])
    gpu_model, gpu_opt, gpu_losses = _train_steps("cuda", OPTIMIZERS[name])
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=RTOL)
    assert gpu_losses[-1] < gpu_losses[0]
    for (key, p_gpu), p_cpu in zip(gpu_model.named_parameters(), cpu_model.parameters()):
        assert p_gpu.device == "cuda"
        _close(p_gpu, p_cpu, key)
    state = gpu_opt.state_dict()["state"]
    assert all(isinstance(v, (np.ndarray, int, float)) for s in state.values() for v in s.values())


def test_optimizer_state_round_trips_onto_cuda():
    model, opt, _ = _train_steps("cuda", OPTIMIZERS["adam"], steps=1)
    saved = opt.state_dict()
    fresh = optim.Adam(model.parameters(), lr=0.01)
    fresh.load_state_dict(saved)
    fresh.step()  # the restored moments are device arrays the cuda kernel can update
    assert type(fresh.state[id(model[0].weight)]["exp_avg"]).__name__ == "CudaArray"


# ---------------------------------------------------------------- devices

def test_tensor_round_trip_and_numpy_copies_back():
    x = _rand(2, 3)
    gpu = minidl.tensor(x, device="cuda")
    assert gpu.device == "cuda" and gpu.to("cuda") is gpu
    back = gpu.cpu()
    assert back.device == "cpu" and isinstance(back.array, np.ndarray)
    np.testing.assert_array_equal(back.numpy(), x)
    np.testing.assert_array_equal(gpu.numpy(), x)
    assert gpu.tolist() == x.tolist()
    assert "device='cuda'" in repr(gpu)
    assert minidl.device("cuda") == "cuda"
    with minidl.device("cuda"):
        assert minidl.zeros(2, 2).device == "cuda"


def test_moving_a_leaf_keeps_requires_grad_and_backward_reaches_it():
    w = minidl.tensor(_rand(3), requires_grad=True).to("cuda")
    assert w.requires_grad and w.is_leaf
    (w * w).sum().backward()
    _close(w.grad, 2 * _rand(3))


def test_implicit_host_conversion_is_refused():
    gpu = minidl.tensor(_rand(2), device="cuda")
    with pytest.raises(TypeError, match="cannot become a numpy array implicitly"):
        np.asarray(gpu.array)


def test_mixing_devices_names_both():
    a = minidl.tensor(_rand(2), device="cpu")
    b = minidl.tensor(_rand(2), device="cuda")
    with pytest.raises(RuntimeError, match="found cpu and cuda"):
        a + b
    with pytest.raises(RuntimeError, match="found cuda and cpu"):
        F.linear(b.reshape(1, 2), minidl.tensor(_rand(3, 2)))


def test_module_to_cuda_and_back_keeps_parameters_and_state_dict():
    minidl.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    params = list(model.parameters())
    model.to("cuda")
    assert list(model.parameters()) == params  # same Parameter objects: optimizers keep working
    assert all(p.device == "cuda" and type(p.array).__name__ == "CudaArray" for p in params)
    state = model.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    for k in before:
        np.testing.assert_array_equal(state[k], before[k])
    model.load_state_dict({k: v * 2 for k, v in before.items()})
    assert all(p.device == "cuda" and type(p.array).__name__ == "CudaArray" for p in params)
    model.to("cpu")
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k] * 2)
    assert all(isinstance(p.array, np.ndarray) for p in params)


def test_import_minidl_does_not_import_numba_cuda():
    code = "import sys, minidl; print('numba.cuda' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- data and training

def _tiny_data():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((10, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    return x, y


def test_dataloader_batches_live_on_cuda():
    x, y = _tiny_data()
    loader = minidl.data.DataLoader(minidl.data.TensorDataset(x, y), batch_size=4, device="cuda")
    batches = list(loader)
    assert len(batches) == 3
    for xb, yb in batches:
        assert xb.device == "cuda" and type(xb.array).__name__ == "CudaArray"
        assert yb.device == "cuda" and yb.dtype == np.int64
        assert xb.to("cuda") is xb  # the trainer's move is free: each batch crosses once
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in batches]), x)


def test_dataset_held_on_the_gpu_is_batched_there():
    x, y = _tiny_data()
    dataset = minidl.data.TensorDataset(minidl.tensor(x, device="cuda"),
                                        minidl.tensor(y, device="cuda"))
    loader = minidl.data.DataLoader(dataset, batch_size=4, shuffle=True, seed=0, device="cuda")
    seen = np.concatenate([xb.numpy() for xb, _ in loader])
    np.testing.assert_array_equal(np.sort(seen, axis=0), np.sort(x, axis=0))


def test_trainer_on_cuda_matches_cpu(tmp_path):
    x, y = _tiny_data()
    histories = {}
    for device in ("cpu", "cuda"):
        minidl.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
        trainer = minidl.Trainer(model, optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                                 nn.CrossEntropyLoss(), device=device, progress=False)
        loader = minidl.data.DataLoader(minidl.data.TensorDataset(x, y), batch_size=5,
                                        shuffle=True, seed=1, device=device)
        histories[device] = trainer.fit(loader, loader, epochs=2)
        predictions = trainer.predict(loader)
        assert isinstance(predictions, np.ndarray) and predictions.shape == (10, 3)
        trainer.save_checkpoint(tmp_path / f"{device}.npz")
    for key in histories["cpu"]:
        np.testing.assert_allclose(histories["cuda"][key], histories["cpu"][key], rtol=RTOL,
                                   err_msg=key)
    assert histories["cuda"]["loss"][-1] < histories["cuda"]["loss"][0]
    saved = minidl.utils.serialization.load(tmp_path / "cuda.npz")
    reference = minidl.utils.serialization.load(tmp_path / "cpu.npz")
    for key in reference:
        if key.startswith("model."):
            np.testing.assert_allclose(saved[key], reference[key], rtol=RTOL, atol=ATOL)


def test_a_family_without_cuda_kernels_says_so():
    from minidl.kernels import for_device
    assert for_device("cuda", "softmax_ce").cross_entropy_forward
    with pytest.raises(NotImplementedError, match="the cuda device has no 'no_such_family' kernels"):
        for_device("cuda", "no_such_family")


def test_train_fashion_device_auto_picks_cuda():
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", "train_fashion.py")
    spec = importlib.util.spec_from_file_location("train_fashion", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.parse_args(["--device", "auto"]).device == "cuda"
    assert script.parse_args([]).device == "cpu"
    with pytest.raises(SystemExit):
        script.parse_args(["--device", "tpu"])


def test_cuda_array_reductions_follow_numpy():
    from minidl.kernels.cuda.array import from_host
    x = np.random.default_rng(3).standard_normal((5, 7)).astype(np.float32)
    x_nan = x.copy()
    x_nan[2, 3] = np.nan
    cases = [
        (x, lambda a: a.sum()), (x, lambda a: np.sum(a, axis=0)), (x, lambda a: a.mean(axis=(0, 1))),
        (x, lambda a: np.max(a)), (x, lambda a: a.min(axis=1, keepdims=True)),
        (x, lambda a: np.argmax(a, axis=0)), (x, lambda a: np.argmax(a)),
        (x_nan, lambda a: np.max(a)), (x_nan, lambda a: np.max(a, axis=1)),
        (x, lambda a: (a > 0).sum()), (x, lambda a: (a > 0).sum(axis=1)),
        (x, lambda a: (a > 2).any()), (x, lambda a: (a > -5).all()), (x, lambda a: (a > 0).any(axis=0)),
        (x, lambda a: a.T[1:, ::2].sum(axis=1)), (x.astype(np.float64), lambda a: a.mean(axis=0)),
    ]
    for i, (data, fn) in enumerate(cases):
        expected = np.asarray(fn(data))
        actual = fn(from_host(data)).to_host()
        assert actual.dtype == expected.dtype and actual.shape == expected.shape, i
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6, err_msg=str(i))


def test_cuda_array_indexing_and_assignment_follow_numpy():
    from minidl.kernels.cuda.array import from_host
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    reads = [(1, slice(None), 2), (Ellipsis, None, 1), (slice(None, None, -1), 0),
             (np.array([1, 0, 1]),), (0, np.array([2, -1])), (x > 10,),
             (np.array([[0], [1]]), np.array([0, 2]))]
    for index in reads:
        np.testing.assert_array_equal(from_host(x)[index].to_host(), x[index], err_msg=str(index))
    for index, value in [((0, slice(1, 3)), 7.0), ((Ellipsis, 1), np.arange(3, dtype=np.float32)),
                         ((np.array([0, 1]), np.array([2, 0])), -1.0)]:
        gpu, cpu = from_host(x), x.copy()
        gpu[index] = value
        cpu[index] = value
        np.testing.assert_array_equal(gpu.to_host(), cpu, err_msg=str(index))


def test_each_device_runs_a_model_and_keeps_arrays_there(device):
    minidl.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4, 2)).to(device)
    x = minidl.randn(5, 3, device=device)
    loss = F.cross_entropy(model(x), minidl.tensor(np.array([0, 1, 1, 0, 1]), device=device))
    loss.backward()
    array_type = np.ndarray if device == "cpu" else type(x.array)
    assert all(isinstance(p.grad.array, array_type) and p.grad.device == device
               for p in model.parameters())
    assert np.isfinite(loss.item())


def test_models_built_under_the_cuda_device_context_train_and_summarize():
    with minidl.device("cuda"):
        model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(),
                              nn.Linear(8, 3))
    assert all(t.device == "cuda" for t in list(model.parameters()) + list(model.buffers()))
    out = model(minidl.randn(2, 1, 4, 4, device="cuda"))
    assert out.shape == (2, 3) and out.device == "cuda"
    assert "Total params: 51" in str(minidl.summary(model, (1, 4, 4)))
    meta = minidl.tensor(_rand(2, 3), device="cuda").to("meta")
    assert meta.device == "meta" and meta.shape == (2, 3)


def test_optimizer_state_follows_a_model_moved_after_a_step():
    def run(move):
        minidl.manual_seed(0)
        model = nn.Linear(3, 2)
        opt = optim.Adam(model.parameters(), lr=0.1)
        x = minidl.tensor(_rand(4, 3))
        for step in range(3):
            if move and step == 1:
                model.to("cuda")
                x = x.to("cuda")
            loss = (model(x) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return [p.detach().cpu().numpy() for p in model.parameters()]
    for moved, stayed in zip(run(True), run(False)):
        _close(moved, stayed)


def test_float64_model_matches_cpu():
    x = _rand(4, 5).astype(np.float64)

    def fn(t):
        minidl.manual_seed(2)
        model = nn.Sequential(nn.Linear(5, 6), nn.Sigmoid(), nn.Linear(6, 3)).to(t.device).double()
        return F.cross_entropy(model(t), minidl.tensor(np.array([0, 2, 1, 1]), device=t.device))
    out = _on_both(fn, [x])
    assert out.dtype == np.float64


def test_integer_and_boolean_ops_match_numpy():
    from minidl.kernels.cuda.array import from_host
    a = np.array([[3, -7, 2], [0, 5, -1]], dtype=np.int64)
    b = np.array([2, 3, -4], dtype=np.int64)
    g, h = from_host(a), from_host(b)
    for name, fn in [("floordiv", lambda p, q: p // q), ("mod", lambda p, q: p % q),
                     ("mul", lambda p, q: p * q), ("truediv", lambda p, q: p / q),
                     ("and", lambda p, q: (p > 0) & (q > 0)), ("or", lambda p, q: (p > 0) | (q < 0)),
                     ("neg", lambda p, q: -p), ("abs", lambda p, q: np.abs(p)), ("sign", lambda p, q: np.sign(p)),
                     ("maximum", lambda p, q: np.maximum(p, q)), ("where", lambda p, q: np.where(p > q, p, -1)),
                     ("float_scalar", lambda p, q: p * 0.5), ("invert", lambda p, q: ~(p > 1))]:
        expected = fn(a, b)
        actual = fn(g, h).to_host()
        assert actual.dtype == expected.dtype, name
        np.testing.assert_array_equal(actual, expected, err_msg=name)


def test_synchronize_then_read_back():
    x = minidl.tensor(np.arange(6, dtype=np.float32), device="cuda")
    y = x * 2.0
    minidl.cuda.synchronize()
    np.testing.assert_array_equal(y.numpy(), np.arange(6, dtype=np.float32) * 2)
