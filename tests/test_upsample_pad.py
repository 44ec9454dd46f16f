"""interpolate / Upsample, pad, pixel_shuffle / unshuffle, one_hot, normalize,
cosine_similarity, pairwise_distance and Embedding(max_norm): PyTorch parity of outputs and
every gradient (float64), finite-difference gradchecks, the cuda twin of the interpolation."""
import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl import nn
from minidl.utils.gradcheck import gradcheck

from conftest import assert_close
from test_cuda import _on_both, _rand

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _compare(ours, theirs, arrays, tol=1e-10):
    """ours(*minidl tensors) vs theirs(*torch tensors) on float64 ``arrays``: output and the
    gradient of every input under a random upstream gradient."""
    mine = [minidl.tensor(a, requires_grad=True) for a in arrays]
    ref = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, ty = ours(*mine), theirs(*ref)
    assert_close(y, ty, tol, tol, "output")
    up = np.random.default_rng(5).standard_normal(tuple(ty.shape))
    (y * minidl.tensor(up)).sum().backward()
    (ty * torch.tensor(up)).sum().backward()
    for i, (a, t) in enumerate(zip(mine, ref)):
        assert_close(a.grad, t.grad, tol, tol, f"gradient of input {i}")


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


INTERPOLATE = [  # (input shape, keyword arguments)
    ((2, 2, 3, 4), dict(scale_factor=2)),
    ((1, 2, 5, 4), dict(size=(3, 7))),
    ((1, 1, 4, 6), dict(scale_factor=(1.5, 0.5))),
    ((2, 2, 3, 4), dict(scale_factor=2, mode="bilinear", align_corners=False)),
    ((2, 2, 3, 4), dict(scale_factor=2, mode="bilinear", align_corners=True)),
    ((1, 2, 5, 4), dict(size=(3, 7), mode="bilinear", align_corners=False)),
    ((1, 2, 5, 4), dict(size=(1, 7), mode="bilinear", align_corners=True)),
    ((1, 1, 4, 6), dict(scale_factor=1.7, mode="bilinear")),
    ((2, 3, 5), dict(scale_factor=2)),
    ((2, 3, 5), dict(size=3)),
    ((2, 3, 5), dict(size=8, mode="linear", align_corners=True)),
]


@pytest.mark.parametrize("shape, options", INTERPOLATE)
def test_interpolate_matches_torch(shape, options):
    _compare(lambda x: F.interpolate(x, **options), lambda x: TF.interpolate(x, **options), [_x(*shape)])


def test_interpolate_float32_module_and_gradcheck():
    x = _x(1, 2, 3, 3).astype(np.float32)
    layer = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
    assert_close(layer(minidl.tensor(x)), torch.nn.Upsample(scale_factor=2, mode="bilinear")(torch.tensor(x)))
    assert "scale_factor=2.0" in repr(layer)
    for mode in ("nearest", "bilinear"):
        x = minidl.tensor(_x(1, 1, 3, 3), requires_grad=True)
        assert gradcheck(lambda t: F.interpolate(t, size=(4, 5), mode=mode), [x])


def test_interpolate_errors():
    with pytest.raises(ValueError, match="align_corners"):
        F.interpolate(minidl.randn(1, 1, 2, 2), scale_factor=2, align_corners=True)
    with pytest.raises(NotImplementedError, match=r"bicubic.*\(1, 1, 2, 2\)"):
        F.interpolate(minidl.randn(1, 1, 2, 2), scale_factor=2, mode="bicubic")
    with pytest.raises(ValueError, match="exactly one"):
        F.interpolate(minidl.randn(1, 1, 2, 2))


PAD = [  # (input shape, pad, mode, value)
    ((2, 3, 4), (1, 2), "constant", 0.5),
    ((1, 2, 3, 4), (1, 0, 2, 1), "constant", None),
    ((1, 2, 4, 5), (-1, 2, 1, -2), "constant", None),
    ((1, 2, 3, 4), (2, 3, 1, 2), "reflect", None),
    ((2, 3, 4), (3, 1), "reflect", None),
    ((1, 2, 3, 4), (2, 3, 4, 1), "replicate", None),
    ((1, 2, 3, 4), (4, 2, 3, 1), "circular", None),
]


@pytest.mark.parametrize("shape, pad, mode, value", PAD)
def test_pad_matches_torch(shape, pad, mode, value):
    _compare(lambda x: F.pad(x, pad, mode, value), lambda x: TF.pad(x, pad, mode, value), [_x(*shape)])


def test_pad_gradcheck_and_errors():
    x = minidl.tensor(_x(1, 1, 3, 3), requires_grad=True)
    assert gradcheck(lambda t: F.pad(t, (2, 1, 1, 2), "reflect"), [x])
    with pytest.raises(ValueError, match=r"reflect padding \(3, 0\).*size 3"):
        F.pad(minidl.randn(1, 1, 3, 3), (3, 0), "reflect")
    with pytest.raises(ValueError, match="even length"):
        F.pad(minidl.randn(1, 3), (1, 1, 1))


def test_pixel_shuffle_and_unshuffle_match_torch():
    _compare(lambda x: F.pixel_shuffle(x, 2), lambda x: TF.pixel_shuffle(x, 2), [_x(2, 8, 3, 2)])
    _compare(lambda x: nn.PixelUnshuffle(3)(x), lambda x: TF.pixel_unshuffle(x, 3), [_x(1, 2, 6, 3)])
    with pytest.raises(ValueError, match=r"pixel_shuffle: input of shape \(1, 3, 2, 2\)"):
        nn.PixelShuffle(2)(minidl.randn(1, 3, 2, 2))


def test_one_hot_matches_torch():
    index = np.array([[0, 3], [2, 1]])
    ours = F.one_hot(minidl.tensor(index))
    assert ours.dtype == np.int64 and not ours.requires_grad
    assert_close(ours, TF.one_hot(torch.tensor(index)))
    assert F.one_hot(minidl.tensor(index), 6).shape == (2, 2, 6)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        F.one_hot(minidl.tensor(index), 3)


@pytest.mark.parametrize("p, dim", [(2.0, 1), (1.0, -1), (3.0, 0), (float("inf"), 1)])
def test_normalize_matches_torch(p, dim):
    _compare(lambda x: F.normalize(x, p, dim), lambda x: TF.normalize(x, p, dim), [_x(3, 4)])


def test_cosine_similarity_and_pairwise_distance_match_torch():
    _compare(F.cosine_similarity, TF.cosine_similarity, [_x(3, 4), _x(3, 4, seed=1)])
    _compare(lambda a, b: F.cosine_similarity(a, b, dim=-1), lambda a, b: TF.cosine_similarity(a, b, dim=-1),
             [_x(2, 3, 4), _x(1, 4, seed=1)])
    _compare(lambda a, b: F.pairwise_distance(a, b, 3.0), lambda a, b: TF.pairwise_distance(a, b, 3.0),
             [_x(3, 4), _x(3, 4, seed=1)])
    a, b = (minidl.tensor(_x(2, 3, seed=s), requires_grad=True) for s in (2, 3))
    assert gradcheck(lambda a, b: F.cosine_similarity(a, b), [a, b])


def test_embedding_max_norm_renormalises_looked_up_rows_in_place_as_torch():
    weight = _x(5, 3) * 2
    index = np.array([[0, 2], [2, 4]])
    ours = nn.Embedding(5, 3, padding_idx=1, max_norm=1.5)
    theirs = torch.nn.Embedding(5, 3, padding_idx=1, max_norm=1.5).double()
    ours.weight.array[...] = weight
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(weight))
    up = _x(2, 2, 3, seed=4)
    y, ty = ours(minidl.tensor(index)), theirs(torch.tensor(index))
    (y * minidl.tensor(up)).sum().backward()
    (ty * torch.tensor(up)).sum().backward()
    assert_close(y, ty, what="output")
    assert_close(ours.weight.data, theirs.weight.detach(), what="renormalised weight")
    assert_close(ours.weight.grad, theirs.weight.grad, what="weight gradient")
    assert "max_norm=1.5" in repr(ours)


@pytest.mark.cuda
@pytest.mark.skipif(not minidl.cuda.is_available(), reason="CUDA is not available")
def test_interpolate_cuda_matches_cpu():
    _on_both(lambda x: F.interpolate(x, size=(3, 5), mode="bilinear", align_corners=True), [_rand(1, 2, 2, 3)])
    _on_both(lambda x: F.interpolate(x, scale_factor=2), [_rand(1, 1, 5)])
    _on_both(lambda x: F.pad(x, (1, 2, 2, 0), "reflect"), [_rand(1, 1, 3, 3)])
    _on_both(lambda x: F.pixel_shuffle(F.pad(x, (1, 0), value=0.5), 2), [_rand(1, 4, 2, 1)])
