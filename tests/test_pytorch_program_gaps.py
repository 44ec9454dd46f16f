'''What the real PyTorch programs (pytorch/examples vae, mnist_rnn, word_language_model; the
quickstart and blitz neural-network tutorials) needed beyond the earlier issue-12 work:
torchvision.utils' make_grid / save_image, torch.backends.mps, grad_fn.next_functions, a silent
log(0), and dropout2d of an (N, C) input. tril / triu are compared with torch in
test_tensor_torch_api.py; dropout2d's rules in test_nn_compat.py.'''
import io
import warnings
import zlib

import numpy as np
import pytest

import minidl
from minidl.vision.utils import make_grid, save_image


# ---------------------------------------------------------------- make_grid / save_image

def test_make_grid_lays_images_out_row_by_row():
    images = np.arange(3 * 4, dtype=np.float32).reshape(3, 1, 2, 2)   # three 1-channel images
    grid = make_grid(minidl.tensor(images), nrow=2, padding=1, pad_value=-1.0)
    assert isinstance(grid, minidl.Tensor) and grid.shape == (3, 7, 7)   # grey -> RGB
    expected = np.full((7, 7), -1.0, np.float32)
    expected[1:3, 1:3], expected[1:3, 4:6], expected[4:6, 1:3] = images[:, 0]
    for channel in grid.numpy():
        np.testing.assert_array_equal(channel, expected)
    # a list of (C, H, W) images is the same batch; one image comes back unpadded
    np.testing.assert_array_equal(
        make_grid([minidl.tensor(i) for i in images], nrow=2, padding=1, pad_value=-1.0).numpy(),
        grid.numpy())
    assert make_grid(minidl.tensor(images[0])).shape == (3, 2, 2)
    assert make_grid(minidl.tensor(images[0, 0])).shape == (3, 2, 2)


def test_make_grid_normalize():
    images = minidl.tensor([[[[0.0, 2.0]]], [[[4.0, 8.0]]]])   # (2, 1, 1, 2)
    whole = make_grid(images, padding=0, normalize=True).numpy()[0]
    np.testing.assert_allclose(whole, [[0.0, 0.25, 0.5, 1.0]])
    each = make_grid(images, padding=0, normalize=True, scale_each=True).numpy()[0]
    np.testing.assert_allclose(each, [[0.0, 1.0, 0.0, 1.0]])
    ranged = make_grid(images, padding=0, normalize=True, value_range=(1.0, 5.0)).numpy()[0]
    np.testing.assert_allclose(ranged, [[0.0, 0.25, 0.75, 1.0]])
    with pytest.raises(TypeError, match="value_range has to be a tuple"):
        make_grid(images, normalize=True, value_range=[0, 1])
    np.testing.assert_array_equal(images.numpy()[1, 0, 0], [4.0, 8.0])   # the input is untouched
    with pytest.raises(ValueError, match=r"make_grid: expected images .*\(1, 2, 3, 4, 5\)"):
        make_grid(minidl.zeros(1, 2, 3, 4, 5))


def _decode_png(data):
    """(width, height, color type, pixels) of a PNG whose rows all use filter 0 (what we write)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, {}
    while position < len(data):
        length = int.from_bytes(data[position:position + 4], "big")
        kind, body = data[position + 4:position + 8], data[position + 8:position + 8 + length]
        crc = int.from_bytes(data[position + 8 + length:position + 12 + length], "big")
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, kind
        chunks[kind] = chunks.get(kind, b"") + body
        position += 12 + length
    width, height = int.from_bytes(chunks[b"IHDR"][:4], "big"), int.from_bytes(chunks[b"IHDR"][4:8], "big")
    color_type = chunks[b"IHDR"][9]
    channels = {2: 3, 6: 4}[color_type]
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, -1)
    assert not rows[:, 0].any()
    return width, height, color_type, rows[:, 1:].reshape(height, width, channels)


def test_save_image_writes_the_grid_as_png(tmp_path):
    rng = np.random.default_rng(0)
    batch = rng.uniform(-0.2, 1.2, (5, 1, 4, 3)).astype(np.float32)
    path = tmp_path / "sample.png"
    save_image(minidl.tensor(batch).view(5, 1, 4, 3), path, nrow=3)
    width, height, color_type, pixels = _decode_png(path.read_bytes())
    grid = make_grid(minidl.tensor(batch), nrow=3).numpy()
    assert (width, height, color_type) == (grid.shape[2], grid.shape[1], 2)
    expected = np.clip(grid * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)  # torchvision's rounding
    np.testing.assert_array_equal(pixels, expected)
    assert pixels[2, 2, 0] == int(min(max(batch[0, 0, 0, 0] * 255 + 0.5, 0), 255))
    image = pytest.importorskip("matplotlib.image")                  # an independent decoder
    np.testing.assert_allclose(image.imread(path), expected / 255.0, atol=1e-6)


def test_save_image_rgba_to_a_file_object_and_errors(tmp_path):
    buffer = io.BytesIO()
    save_image(minidl.ones(2, 4, 2, 2) * 0.5, buffer, format="png", padding=0)
    width, height, color_type, pixels = _decode_png(buffer.getvalue())
    assert (width, height, color_type) == (4, 2, 6) and np.all(pixels == 128)
    with pytest.raises(ValueError, match=r"only PNG.*a\.jpg'; use a \.png name"):
        save_image(minidl.ones(1, 1, 2, 2), str(tmp_path / "a.jpg"))
    with pytest.raises(ValueError, match="only PNG.*format='jpeg'"):
        save_image(minidl.ones(1, 1, 2, 2), io.BytesIO(), format="jpeg")
    with pytest.raises(ValueError, match=r"1, 3 or 4 channels.*\(2, 2, 2\)"):
        save_image(minidl.ones(1, 2, 2, 2), tmp_path / "b.png")


# ---------------------------------------------------------------- torch.backends, grad_fn, log(0)

def test_backends_mps_is_never_available():
    assert minidl.backends.mps.is_available() is False
    assert minidl.backends.mps.is_built() is False
    device = "cuda" if minidl.cuda.is_available() else "mps" if minidl.backends.mps.is_available() else "cpu"
    assert device in ("cuda", "cpu")


def test_next_functions_walk_the_graph_as_pytorch():
    torch = pytest.importorskip("torch")

    def walk(m):
        """The first three nodes' input kinds, and the leaves reached (variables of AccumulateGrad)."""
        layer = m.nn.Linear(3, 2)
        loss = (layer(m.ones(4, 3)).relu() - m.zeros(4, 2)).sum()
        steps, leaves, todo = [], set(), [loss.grad_fn]
        while todo:
            node = todo.pop(0)
            kinds = ["None" if n is None else "leaf" if type(n).__name__ == "AccumulateGrad" else "node"
                     for n, _ in node.next_functions]
            steps.append(sorted(kinds))
            leaves |= {id(n.variable) for n, _ in node.next_functions if type(n).__name__ == "AccumulateGrad"}
            todo += [n for n, _ in node.next_functions if n is not None and type(n).__name__ != "AccumulateGrad"]
        return steps[:3], leaves, {id(layer.weight), id(layer.bias)}

    ours, our_leaves, our_parameters = walk(minidl)
    theirs, their_leaves, their_parameters = walk(torch)
    # sum <- sub(relu, a constant) <- relu <- ... <- the layer's weight and bias
    assert ours == theirs == [["node"], ["None", "node"], ["node"]]
    assert our_leaves == our_parameters and their_leaves == their_parameters


def test_log_of_zero_is_minus_infinity_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = minidl.log(minidl.tensor([0.0, 1.0]))
    assert y.tolist() == [-np.inf, 0.0]


def test_tril_needs_two_dimensions():
    with pytest.raises(RuntimeError, match=r"tril: expected a tensor with 2 or more dimensions, got shape \(3,\)"):
        minidl.ones(3).tril()
