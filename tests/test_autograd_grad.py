"""minidl.autograd.grad against torch.autograd.grad; the accelerator and cuda probes."""
import numpy as np
import pytest

import minidl
import minidl.nn.functional as F

torch = pytest.importorskip("torch")


def _pair(rng, *shape):
    x = rng.standard_normal(shape)
    return minidl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)


def test_grad_matches_torch_and_leaves_grad_untouched(rng):
    (x, tx), (w, tw) = _pair(rng, 3, 4), _pair(rng, 4, 2)
    h, th = (x @ w).tanh(), torch.tanh(tx @ tw)
    loss, tloss = (h * h).sum(), (th * th).sum()
    gx, gh = minidl.autograd.grad(loss, [x, h])
    tgx, tgh = torch.autograd.grad(tloss, [tx, th])
    np.testing.assert_allclose(gx.data, tgx.numpy(), rtol=1e-10)
    np.testing.assert_allclose(gh.data, tgh.numpy(), rtol=1e-10)
    assert x.grad is None and w.grad is None
    assert gx.dtype == np.float64 and not gx.requires_grad


def test_grad_outputs_several_outputs_and_retain_graph(rng):
    (x, tx), = [_pair(rng, 5)]
    g1, g2 = rng.standard_normal(5), rng.standard_normal(())
    y1, y2 = x.exp(), (x * x).sum()
    (grad,) = minidl.autograd.grad([y1, y2], x, grad_outputs=[minidl.tensor(g1),
                                                              minidl.tensor(g2)],
                                   retain_graph=True)
    (tgrad,) = torch.autograd.grad([tx.exp(), (tx * tx).sum()], tx,
                                   grad_outputs=[torch.tensor(g1), torch.tensor(g2)])
    np.testing.assert_allclose(grad.data, tgrad.numpy(), rtol=1e-12)
    (again,) = minidl.autograd.grad(y2, x)      # the graph was kept, and this call frees it
    np.testing.assert_allclose(again.data, 2 * x.data)
    with pytest.raises(RuntimeError, match="second time"):
        minidl.autograd.grad(y2, x)


def test_grad_of_a_network_loss_equals_backward(rng):
    minidl.manual_seed(0)
    net = minidl.nn.Linear(4, 3)
    x, y = minidl.randn(6, 4), minidl.tensor(rng.integers(0, 3, 6))
    grads = minidl.autograd.grad(F.cross_entropy(net(x), y), list(net.parameters()))
    assert all(p.grad is None for p in net.parameters())
    F.cross_entropy(net(x), y).backward()
    for g, p in zip(grads, net.parameters()):
        np.testing.assert_allclose(g.data, p.grad.data, rtol=1e-6)


def test_grad_errors(rng):
    x, _ = _pair(rng, 3)
    unused, _ = _pair(rng, 2)
    with pytest.raises(NotImplementedError, match="create_graph"):
        minidl.autograd.grad((x * x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match=r"inputs\[1\].*not used"):
        minidl.autograd.grad((x * x).sum(), [x, unused])
    gx, gu = minidl.autograd.grad((x * x).sum(), [x, unused], allow_unused=True)
    assert gu is None
    _, zero = minidl.autograd.grad((x * x).sum(), [x, unused], materialize_grads=True)
    np.testing.assert_array_equal(zero.data, np.zeros(2))
    with pytest.raises(RuntimeError, match="scalar outputs"):
        minidl.autograd.grad(x * x, x)
    with pytest.raises(RuntimeError, match="does not require grad"):
        minidl.autograd.grad((x * x).sum(), minidl.ones(3))
    with pytest.raises(TypeError, match="inputs"):
        minidl.autograd.grad((x * x).sum(), [np.ones(3)])


def test_function_alias_and_device_probes():
    assert minidl.autograd.Function is minidl.Function
    assert minidl.accelerator.is_available() == minidl.cuda.is_available()
    expected = minidl.device("cuda") if minidl.cuda.is_available() else None
    assert minidl.accelerator.current_accelerator() == expected
    assert minidl.cuda.device_count() == minidl.accelerator.device_count()
    assert (minidl.cuda.device_count() > 0) == minidl.cuda.is_available()
    assert minidl.device("cpu") == "cpu"
