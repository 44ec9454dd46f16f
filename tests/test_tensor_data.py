"""``Tensor.data`` as PyTorch's: a detached Tensor sharing the array, with its own version
counter; ``t.data = other`` replaces the storage. Compared with torch on cpu; the same rules on
cuda (the simulator where no GPU is present) and meta."""
import numpy as np
import pytest

import minidl

torch = pytest.importorskip("torch")

W0 = np.array([[0.5], [-1.0], [0.25]])
B0 = np.array([0.1])
X = np.random.default_rng(7).standard_normal((8, 3))
Y = X @ np.array([[1.5], [0.5], [-2.0]]) + 0.3


def test_data_is_a_detached_tensor_sharing_the_array(device):
    w = minidl.nn.Parameter(minidl.ones(2, 3, device=device))
    d = w.data
    assert isinstance(d, minidl.Tensor) and not isinstance(d, minidl.nn.Parameter)
    assert d.array is w.array and d.device == w.device and (d.shape, d.dtype) == (w.shape, w.dtype)
    assert not d.requires_grad and d.is_leaf and d.grad_fn is None and d.grad is None
    t = torch.nn.Parameter(torch.ones(2, 3))
    assert t.data.data_ptr() == t.data_ptr() and not t.data.requires_grad and t.data.is_leaf
    y = w * 2
    assert y.data.array is y.array and not y.data.requires_grad and y.requires_grad


def test_in_place_through_data_changes_the_original_without_the_version_check():
    def run(lib):
        w = lib.tensor(W0[:, 0], requires_grad=True)
        loss = (w * w).sum()  # saves w
        w.data.mul_(2)
        w.data.add_(lib.ones(3), alpha=0.5)
        version = w._version
        loss.backward()  # legal: .data bypasses the version counter; the gradient sees the new values
        return w, version
    (ours, our_version), (theirs, their_version) = run(minidl), run(torch)
    assert our_version == their_version == 0
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy())
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy())
    np.testing.assert_allclose(ours.grad.numpy(), 2 * (2 * W0[:, 0] + 0.5))


def test_detach_shares_the_version_counter_unlike_data():
    for lib in (minidl, torch):
        w = lib.tensor(W0[:, 0], requires_grad=True)
        loss = (w * w).sum()
        w.detach().mul_(2)
        assert w._version == 1
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            loss.backward()


def test_leaf_in_place_is_refused_but_allowed_through_data():
    w, t = minidl.nn.Linear(3, 2).weight, torch.nn.Linear(3, 2).weight
    for p in (w, t):
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            p.uniform_(-0.1, 0.1)
        p.data.uniform_(-0.1, 0.1)
        p.data.fill_(0.5)
        assert p.requires_grad and float(abs(p.detach() - 0.5).max()) == 0


def test_setter_replaces_the_storage_as_torch():
    for lib in (minidl, torch):
        p = lib.nn.Parameter(lib.ones(2, 3))
        p.grad = lib.zeros(2, 3)
        other = lib.zeros(4, dtype=lib.float64)
        p.data = other  # shape and dtype may change; requires_grad and grad stay
        assert tuple(p.shape) == (4,) and p.dtype == other.dtype and p.requires_grad and p.is_leaf
        assert tuple(p.grad.shape) == (2, 3)
        other.add_(3)  # p shares other's storage now
        assert p.tolist() == [3.0] * 4
    p = minidl.nn.Parameter(minidl.ones(2))
    p.data = np.arange(3.0)  # an array is taken as the new storage on p's device
    assert p.tolist() == [0.0, 1.0, 2.0] and p.dtype == np.float64 and p.requires_grad


def test_max_of_outputs_data_as_the_tutorials():
    def run(lib):
        model = lib.nn.Linear(3, 4)
        model.weight.data.copy_(lib.tensor(np.arange(12.0).reshape(4, 3) % 5 - 2))
        model.bias.data.zero_()
        outputs = model(lib.tensor(X[:5], dtype=lib.float32))
        _, predicted = lib.max(outputs.data, 1)
        return predicted, outputs.data
    (ours, our_data), (theirs, their_data) = run(minidl), run(torch)
    assert ours.tolist() == theirs.tolist() and not our_data.requires_grad
    np.testing.assert_allclose(our_data, their_data.numpy(), rtol=1e-6)  # numpy reads a cpu tensor


@pytest.mark.parametrize("form", ["scaled grad", "alpha"])
def test_manual_sgd_through_data_follows_torch(form, device):
    def run(lib, device):
        w = lib.tensor(W0, requires_grad=True, device=device)
        b = lib.tensor(B0, requires_grad=True, device=device)
        x, y = lib.tensor(X, device=device), lib.tensor(Y, device=device)
        losses = []
        for _ in range(6):
            loss = ((x @ w + b - y) ** 2).mean()
            loss.backward()
            for param in (w, b):
                if form == "alpha":
                    param.data.add_(param.grad, alpha=-0.1)
                else:
                    param.data.add_(-0.1 * param.grad)
                param.grad.zero_()
            losses.append(loss.item())
        return losses, w.detach().cpu().numpy(), b.detach().cpu().numpy()
    ours, theirs = run(minidl, device), run(torch, "cpu")
    assert ours[0][-1] < 0.5 * ours[0][0]
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-10)


def test_numpy_reads_cpu_tensors_but_not_ones_that_require_grad():
    p = minidl.nn.Parameter(minidl.ones(3))
    assert np.shares_memory(np.asarray(p.data), p.array)
    np.testing.assert_array_equal(p.data, [1, 1, 1])
    with pytest.raises(RuntimeError, match="requires grad"):
        np.asarray(p)
    with pytest.raises(RuntimeError, match="requires grad"):
        np.asarray(torch.nn.Parameter(torch.ones(3)))


@pytest.mark.cuda
@pytest.mark.skipif(not minidl.cuda.is_available(), reason="CUDA is not available")
def test_cuda_data_stays_on_the_device():
    p = minidl.nn.Parameter(minidl.ones(3, device="cuda"))
    p.data.mul_(3)
    assert p.data.device == "cuda" and type(p.array).__name__ == "CudaArray"
    assert p.detach().cpu().tolist() == [3.0] * 3
    with pytest.raises(TypeError, match="cannot become a numpy array implicitly"):
        np.asarray(p.data)  # torch too refuses numpy() of a cuda tensor
    p.data = minidl.zeros(2)  # as torch, the new storage's device comes with it
    assert p.device == "cpu" and p.tolist() == [0.0, 0.0]


def test_meta_data_shares_the_meta_array():
    with minidl.device("meta"):
        w = minidl.nn.Linear(3, 2).weight
    d = w.data
    assert d.device == "meta" and d.array is w.array and not d.requires_grad
    d.uniform_(-0.1, 0.1)
    d.add_(1.0)
    assert w.device == "meta" and w.shape == (2, 3) and w._version == 0
    w.data = minidl.zeros(5, device="meta")
    assert w.shape == (5,) and w.device == "meta" and w.requires_grad

