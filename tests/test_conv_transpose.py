"""ConvTranspose1d/2d: PyTorch parity of the output and every gradient, float64 gradcheck,
output_size, errors, meta shapes, and the cuda twin (the conv kernels run backwards)."""
import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl import nn
from minidl.utils.gradcheck import gradcheck

from conftest import assert_close
from test_cuda import _on_both, _rand

torch = pytest.importorskip("torch")

# (in, out, kernel, stride, padding, output_padding, dilation, groups, input spatial)
CASES_2D = [
    (2, 3, 3, 1, 0, 0, 1, 1, (4, 5)),
    (4, 2, 3, 2, 1, 1, 1, 2, (3, 4)),
    (2, 4, (2, 3), (2, 1), (0, 1), 0, (2, 1), 1, (3, 3)),
    (3, 3, 3, 1, 1, 1, 2, 3, (4, 4)),
]
CASES_1D = [
    (2, 3, 3, 2, 1, 1, 1, 1, (5,)),
    (4, 2, 2, 1, 0, 0, 2, 2, (4,)),
]


def _run_both(case, dtype=np.float64, bias=True):
    cin, cout, k, s, p, op, d, g, spatial = case
    dims = len(spatial)
    ks = (k,) * dims if isinstance(k, int) else k
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((2, cin) + spatial), rng.standard_normal((cin, cout // g) + ks),
              rng.standard_normal(cout)]
    arrays = [a.astype(dtype) for a in arrays[:2 + bias]]
    ours = [minidl.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    fn = F.conv_transpose1d if dims == 1 else F.conv_transpose2d
    tfn = torch.nn.functional.conv_transpose1d if dims == 1 else torch.nn.functional.conv_transpose2d
    y = fn(*ours, stride=s, padding=p, output_padding=op, groups=g, dilation=d)
    ty = tfn(*theirs, stride=s, padding=p, output_padding=op, groups=g, dilation=d)
    up = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    (y * minidl.tensor(up)).sum().backward()
    (ty * torch.tensor(up)).sum().backward()
    return y, ty, ours, theirs


@pytest.mark.parametrize("case", CASES_2D + CASES_1D)
def test_matches_torch_output_and_every_gradient(case):
    y, ty, ours, theirs = _run_both(case)
    assert_close(y, ty, 1e-10, 1e-10, "output")
    for i, (a, t) in enumerate(zip(ours, theirs)):
        assert_close(a.grad, t.grad, 1e-10, 1e-10, f"gradient of input {i}")


def test_float32_without_bias_matches_torch():
    y, ty, ours, theirs = _run_both(CASES_2D[1], np.float32, bias=False)
    assert y.dtype == np.float32
    assert_close(y, ty, 1e-4, 1e-5)
    assert_close(ours[1].grad, theirs[1].grad, 1e-4, 1e-4)


# float32 stride-2 layers with one group and 3x3 or 5x5 windows, which run on register_conv's
# phase-plane tiles: every padding below the window, output_padding 0 and 1, odd sizes
TILE_CASES_2D = [
    (32, 16, 3, 2, 1, 1, 1, 1, (16, 16)),   # the bench's layer
    (5, 9, 3, 2, 0, 0, 1, 1, (7, 6)),
    (3, 17, 3, 2, 2, 1, 1, 1, (5, 9)),
    (7, 4, 5, 2, 2, 1, 1, 1, (6, 5)),
    (2, 8, 5, 2, 4, 0, 1, 1, (8, 7)),
]


@pytest.mark.parametrize("case", TILE_CASES_2D)
def test_float32_stride_2_on_the_tiles_matches_torch(case):
    from minidl.kernels.cpu import conv
    cin, cout, k, s = case[:4]
    assert conv._algorithm_for(np.zeros(1, np.float32), np.zeros((cin, cout, k, k), np.float32), (s, s),
                               (case[4],) * 2, (1, 1), 1, (1, 1)) == "register tiles"
    y, ty, ours, theirs = _run_both(case, np.float32)
    assert y.dtype == np.float32
    assert_close(y, ty, 1e-4, 1e-4, "output")
    for i, (a, t) in enumerate(zip(ours, theirs)):
        assert_close(a.grad, t.grad, 1e-4, 1e-4, f"gradient of input {i}")


@pytest.mark.parametrize("case", [CASES_2D[1], CASES_1D[0]])
def test_gradcheck(case):
    cin, cout, k, s, p, op, d, g, spatial = case
    rng = np.random.default_rng(1)
    x = minidl.tensor(rng.standard_normal((1, cin) + spatial), requires_grad=True)
    w = minidl.tensor(rng.standard_normal((cin, cout // g) + (k,) * len(spatial)), requires_grad=True)
    b = minidl.tensor(rng.standard_normal(cout), requires_grad=True)
    fn = F.conv_transpose1d if len(spatial) == 1 else F.conv_transpose2d
    assert gradcheck(lambda x, w, b: fn(x, w, b, s, p, op, g, d), [x, w, b])


def test_module_loads_torch_weights_and_picks_output_padding_from_output_size():
    theirs = torch.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, groups=2)
    ours = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, groups=2)
    assert ours.weight.shape == tuple(theirs.weight.shape)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((1, 4, 3, 3)).astype(np.float32)
    for size in (None, (6, 5), (1, 2, 6, 6)):
        assert_close(ours(minidl.tensor(x), output_size=size),
                     theirs(torch.tensor(x), output_size=size), what=str(size))
    with pytest.raises(ValueError, match=r"ConvTranspose2d.*valid sizes range from \(5, 5\) to \(6, 6\)"):
        ours(minidl.tensor(x), output_size=(7, 5))
    conv1d = nn.ConvTranspose1d(2, 3, 3, stride=2)
    assert conv1d(minidl.randn(1, 2, 4)).shape == (1, 3, 9)
    assert "output_padding" not in repr(conv1d) and "stride=(2,)" in repr(conv1d)


def test_errors_name_the_layer_and_the_shapes():
    with pytest.raises(ValueError, match=r"conv_transpose2d: input of shape \(1, 3, 4, 4\) has 3 channels"):
        F.conv_transpose2d(minidl.randn(1, 3, 4, 4), minidl.randn(2, 2, 3, 3))
    with pytest.raises(ValueError, match="output_padding"):
        nn.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2)
    with pytest.raises(TypeError, match="conv_transpose2d"):
        F.conv_transpose2d(minidl.tensor(np.ones((1, 2, 3, 3), np.int64)), minidl.randn(2, 2, 3, 3))


def test_meta_shapes_and_empty_batch():
    layer = nn.ConvTranspose2d(2, 3, 3, stride=2, output_padding=1)
    with minidl.device("meta"):
        y = layer.to("meta")(minidl.randn(5, 2, 4, 4))
    assert y.shape == (5, 3, 10, 10) and y.device == "meta"
    x = minidl.tensor(np.zeros((0, 2, 4, 4), np.float32), requires_grad=True)
    layer = nn.ConvTranspose2d(2, 3, 3, stride=2, output_padding=1)
    out = layer(x)
    out.sum().backward()
    assert out.shape == (0, 3, 10, 10) and not layer.weight.grad.numpy().any()


@pytest.mark.cuda
@pytest.mark.skipif(not minidl.cuda.is_available(), reason="CUDA is not available")
def test_cuda_matches_cpu():
    _on_both(lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, groups=2),
             [_rand(1, 2, 3, 3), _rand(2, 1, 3, 3), _rand(2)])
    _on_both(lambda x, w: F.conv_transpose1d(x, w, stride=2), [_rand(1, 2, 3), _rand(2, 2, 2)])


@pytest.mark.parametrize("case", [
    (16, 8, 3, 2, 1, 1, 1, (8, 8)),
    (6, 4, (3, 2), (3, 2), (1, 0), (2, 1), 1, (5, 7)),
    (5, 3, 3, 2, 2, 1, 2, (6, 6)),
])
@pytest.mark.parametrize("needs", [(True, True), (True, False), (False, True)])
def test_strided_layers_over_many_images_match_torch(case, needs):
    """Batch 9, shares of images: the cpu's chunked path (float64: float32's 3x3 stride-2 layers
    take the tiles), where dX and dK come from one unfold of dY (conv2d_forward_and_weight_grad),
    or from one of the two calls when one is not needed."""
    from minidl.kernels.cpu import conv
    cin, cout, k, s, p, op, d, spatial = case
    ks, s2, p2, d2 = (pair if isinstance(pair, tuple) else (pair, pair) for pair in (k, s, p, d))
    assert conv._algorithm_for(np.zeros(1), np.zeros((cin, cout) + ks), s2, p2, d2, 1, spatial) == "im2col chunks"
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((9, cin) + spatial), rng.standard_normal((cin, cout) + ks), rng.standard_normal(cout)]
    ours = [minidl.tensor(a, requires_grad=need) for a, need in zip(arrays, needs + (True,))]
    theirs = [torch.tensor(a, requires_grad=need) for a, need in zip(arrays, needs + (True,))]
    y = F.conv_transpose2d(*ours, stride=s, padding=p, output_padding=op, dilation=d)
    ty = torch.nn.functional.conv_transpose2d(*theirs, stride=s, padding=p, output_padding=op, dilation=d)
    up = rng.standard_normal(tuple(ty.shape))
    (y * minidl.tensor(up)).sum().backward()
    (ty * torch.tensor(up)).sum().backward()
    assert_close(y, ty, 1e-10, 1e-10, "output")
    for i, (a, t) in enumerate(zip(ours, theirs)):
        if t.requires_grad:
            assert_close(a.grad, t.grad, 1e-10, 1e-10, f"gradient of input {i}")
        else:
            assert a.grad is None
