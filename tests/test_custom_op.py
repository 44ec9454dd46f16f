"""The worked example of docs/custom_ops.md (models/swish.py): a user's own Function with @njit
and numba.cuda kernels. Its formula against NumPy and PyTorch, gradcheck in float64, training,
the meta device, the example's entry point, and the cuda twin against the cpu kernels (under
numba's CUDA simulator where no GPU is present, see tests/conftest.py)."""
import numpy as np
import pytest

import minidl
from models import swish as example
from models.swish import Swish, swish

no_cuda = pytest.mark.skipif(not minidl.cuda.is_available(), reason="CUDA is not available")


def _reference(x, beta):
    return x / (1 + np.exp(-beta * x))


def test_forward_follows_the_formula_and_keeps_the_dtype():
    x = np.random.default_rng(0).standard_normal((4, 3, 5)).astype(np.float32) * 4
    for beta in (0.0, 0.5, 1.0, 3.0):
        y = swish(minidl.tensor(x), minidl.tensor([beta], dtype=np.float32))
        assert y.dtype == np.float32 and y.shape == x.shape
        np.testing.assert_allclose(y.numpy(), _reference(x, np.float32(beta)), rtol=1e-5, atol=1e-6)
    transposed = minidl.tensor(x).transpose(0, 2)  # not C-contiguous: the Function copies it
    np.testing.assert_allclose(swish(transposed, minidl.tensor([2.0])).numpy(),
                               _reference(x.transpose(2, 1, 0), np.float32(2)), rtol=1e-5, atol=1e-6)


def test_large_inputs_do_not_overflow():
    x = minidl.tensor([-1000.0, -50.0, 0.0, 50.0, 1000.0], dtype=np.float64, requires_grad=True)
    beta = minidl.tensor([1.0], dtype=np.float64, requires_grad=True)
    y = swish(x, beta)
    np.testing.assert_allclose(y.detach().numpy(), [0, -50 * np.exp(-50) / (1 + np.exp(-50)), 0, 50, 1000],
                               atol=1e-12)
    y.sum().backward()
    assert np.all(np.isfinite(x.grad.numpy())) and np.isfinite(beta.grad.item())


def test_gradcheck_float64():
    assert example.check_gradients()
    assert example.check_gradients(shape=(2, 3, 4, 5))


def test_gradients_match_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, upstream = rng.standard_normal((6, 7)), rng.standard_normal((6, 7))
    mx = minidl.tensor(x, requires_grad=True)
    mb = minidl.tensor([1.3], dtype=np.float64, requires_grad=True)
    swish(mx, mb).backward(upstream)
    tx = torch.tensor(x, requires_grad=True)
    tb = torch.tensor([1.3], dtype=torch.float64, requires_grad=True)
    (tx * torch.sigmoid(tb * tx)).backward(torch.tensor(upstream))
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mb.grad.numpy(), tb.grad.numpy(), rtol=1e-10)


def test_beta_must_be_one_number():
    with pytest.raises(ValueError, match=r"swish: beta must have shape \(1,\), got \(2,\)"):
        swish(minidl.randn(3), minidl.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="swish"):
        swish(minidl.tensor([1, 2]), minidl.tensor([1.0]))


def test_training_the_small_model_lowers_the_loss_and_learns_beta():
    losses, model = example.train(steps=120)
    assert losses[-1] < 0.3 * losses[0]
    assert model[1].beta.item() != pytest.approx(1.0, abs=0.05)


def test_layer_on_the_meta_device_and_in_summary():
    with minidl.device("meta"):
        layer = Swish(beta=2.0)
        y = layer(minidl.randn(2, 5))
    assert y.device == "meta" and y.shape == (2, 5)
    assert minidl.summary(example.build(), (2,), batch_size=3, verbose=False).total_params == 83


def test_the_example_runs_as_a_program(capsys):
    example.main(["--steps", "40"])
    out = capsys.readouterr().out
    assert "gradcheck (cpu, float64): True" in out and "loss 0." in out


@pytest.mark.cuda
@no_cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_twin_equals_the_cpu_kernels(dtype):
    rng = np.random.default_rng(2)
    x, upstream = (rng.standard_normal((3, 7)).astype(dtype) * 3 for _ in range(2))
    results = {}
    for device in ("cpu", "cuda"):
        tx = minidl.tensor(x, device=device, requires_grad=True)
        tb = minidl.tensor(np.array([0.8], dtype=dtype), device=device, requires_grad=True)
        y = swish(tx, tb)
        y.backward(minidl.tensor(upstream, device=device))
        assert y.device == device and tx.grad.device == device and tb.grad.device == device
        results[device] = [t.detach().cpu().numpy() for t in (y, tx.grad, tb.grad)]
    for cpu, gpu, name in zip(results["cpu"], results["cuda"], ("y", "dx", "dbeta")):
        assert gpu.dtype == dtype, name
        np.testing.assert_allclose(gpu, cpu, rtol=1e-5 if dtype == np.float32 else 1e-12, err_msg=name)


@pytest.mark.cuda
@no_cuda
def test_the_model_trains_the_same_on_cuda():
    cpu_losses, cpu_model = example.train("cpu", steps=3, n=16, hidden=4)
    gpu_losses, gpu_model = example.train("cuda", steps=3, n=16, hidden=4)
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-5)
    np.testing.assert_allclose(gpu_model[1].beta.detach().cpu().numpy(),
                               cpu_model[1].beta.detach().numpy(), rtol=1e-5)
