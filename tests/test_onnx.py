"""minidl.onnx.export: every exported model passes onnx.checker and gives minidl's outputs in
onnxruntime (1e-5) for two batch sizes through a dynamic batch axis."""
import sys

import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl import nn
from models.autoencoder import ConvAutoencoder
from models.fashion_cnn import FashionCNN
from models.lenet import LeNet5
from models.mlp import MLP
from models.tiled_cnn import TiledCNN

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

BATCH = {"input": {0: "batch"}, "output": {0: "batch"}}


def _randomize_batch_norm(model, rng):
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = module.num_features
            module.running_mean.array[...] = rng.uniform(-1, 1, n)
            module.running_var.array[...] = rng.uniform(0.5, 2, n)
            module.weight.array[...] = rng.uniform(0.5, 1.5, n)
            module.bias.array[...] = rng.uniform(-1, 1, n)
    return model


def _check(model, make_input, tmp_path, batches=(2, 5), dynamic_axes=BATCH, atol=1e-5, **options):
    path = tmp_path / "model.onnx"
    model.train()
    proto = minidl.onnx.export(model, make_input(3), path, dynamic_axes=dynamic_axes, **options)
    assert model.training  # export traces in eval mode and restores the mode it found
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model.eval()
    for batch in batches:
        x = make_input(batch)
        expected = model(minidl.tensor(x))
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = session.run(None, {session.get_inputs()[0].name: x})
        assert len(got) == len(expected)
        for e, g in zip(expected, got):
            np.testing.assert_allclose(g, e.data, rtol=1e-5, atol=atol, err_msg=f"batch {batch}")
    return proto


def _images(rng, channels=1, side=28):
    return lambda n: rng.standard_normal((n, channels, side, side)).astype(np.float32)


@pytest.mark.parametrize("build", [MLP, LeNet5, FashionCNN], ids=["mlp", "lenet5", "fashion_cnn"])
def test_the_fashion_models_export(build, tmp_path, rng):
    model = _randomize_batch_norm(build(), rng)
    proto = _check(model, _images(rng), tmp_path)
    initializers = {t.name for t in proto.graph.initializer}
    assert set(model.state_dict()) - {k for k in model.state_dict() if "num_batches" in k} <= initializers


def test_conv1d_with_groups_dilation_padding_stride_and_1d_pooling(tmp_path, rng):
    model = nn.Sequential(
        nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2), nn.BatchNorm1d(6), nn.Tanh(),
        nn.MaxPool1d(2), nn.Conv1d(6, 6, 3, padding=1, groups=6, bias=False), nn.Sigmoid(),
        nn.AvgPool1d(3, stride=2, padding=1), nn.Flatten(), nn.Linear(6 * 4, 3), nn.LogSoftmax(dim=1))
    _randomize_batch_norm(model, rng)
    _check(model, lambda n: rng.standard_normal((n, 4, 29)).astype(np.float32), tmp_path)


def test_conv2d_options_and_2d_pooling_variants(tmp_path, rng):
    model = nn.Sequential(
        nn.Conv2d(2, 4, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2),
        nn.LeakyReLU(0.2), nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
        nn.MaxPool2d(2, stride=1, padding=1), nn.AvgPool2d(2, padding=1), nn.AdaptiveAvgPool2d(2),
        nn.Flatten(), nn.Linear(16, 5), nn.Softmax(dim=-1))
    _check(model, _images(rng, 2, 11), tmp_path)


class Bag(nn.Module):
    """Embedding, then a mean over the sequence and a classifier."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, tokens):
        return self.head(self.embed(tokens).mean(dim=1))


def test_embedding_model(tmp_path, rng):
    proto = _check(Bag(), lambda n: rng.integers(0, 20, (n, 7)).astype(np.int64), tmp_path)
    assert "Gather" in {node.op_type for node in proto.graph.node}


class Custom(nn.Module):
    """A forward of its own: residual sum, products, matmul, indexing, reshape, permute, stack."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 4)
        self.dropout = nn.Dropout(0.5)
        self.scale = nn.Parameter(np.linspace(0.5, 1.5, 8).astype(np.float32))

    def forward(self, x):
        h = self.dropout(self.a(x).relu()) + x * self.scale
        h = (h - 0.5) / 2.0
        gram = h.reshape(-1, 2, 4).permute(0, 2, 1) @ h.reshape(-1, 2, 4)  # (N, 4, 4)
        first = gram[:, 0, :]
        last = gram[..., -1]
        mixed = minidl.stack([first, last], dim=1).sum(dim=1) + minidl.cat([first[:, :2], last[:, 2:]], dim=1)
        return self.b(h).exp().clip(max=5.0) + mixed.abs().sqrt() - mixed.max(dim=1, keepdim=True)[0]


def test_a_custom_forward_exports_its_operations(tmp_path, rng):
    _check(Custom(), lambda n: rng.standard_normal((n, 8)).astype(np.float32), tmp_path)


class Recurrent(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.rnn = kind(5, 6, num_layers=2, batch_first=True)
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        output, _ = self.rnn(x)
        return self.head(output[:, -1])


@pytest.mark.parametrize("kind", [nn.RNN, nn.LSTM, nn.GRU], ids=["rnn", "lstm", "gru"])
def test_recurrent_layers(kind, tmp_path, rng):
    proto = _check(Recurrent(kind), lambda n: rng.standard_normal((n, 4, 5)).astype(np.float32), tmp_path)
    assert kind.__name__ in {node.op_type for node in proto.graph.node}


def test_names_and_several_outputs(tmp_path, rng):
    lstm = nn.LSTM(3, 4)
    make = lambda n: rng.standard_normal((6, n, 3)).astype(np.float32)  # noqa: E731
    axes = {"seq": {1: "batch"}, "y": {1: "batch"}, "h": {1: "batch"}, "c": {1: "batch"}}
    path = tmp_path / "lstm.onnx"
    minidl.onnx.export(lstm, make(2), path, input_names=["seq"], output_names=["y", "h", "c"],
                       dynamic_axes=axes)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["y", "h", "c"]
    for n in (1, 3):
        x = make(n)
        y, (h, c) = lstm(minidl.tensor(x))
        for expected, got in zip((y, h, c), session.run(None, {"seq": x})):
            np.testing.assert_allclose(got, expected.data, rtol=1e-5, atol=1e-5)


def _op_types(proto):
    return {node.op_type for node in proto.graph.node}


def _vectors(rng, width=8):
    return lambda n: (2 * rng.standard_normal((n, width))).astype(np.float32)


@pytest.mark.parametrize("opset", [17, 20])
def test_modern_activations(opset, tmp_path, rng):
    """GELU exact and tanh (Erf / Tanh forms; Gelu from opset 20), SiLU, ELU, Softplus with beta
    and threshold (both branches taken), Mish (Mish from opset 18), Hardtanh."""
    model = nn.Sequential(nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 8), nn.GELU(approximate="tanh"),
                          nn.Linear(8, 8), nn.SiLU(), nn.ELU(alpha=0.7), nn.Softplus(beta=2.0, threshold=1.0),
                          nn.Linear(8, 8), nn.Mish(), nn.Linear(8, 8), nn.Hardtanh(-0.5, 0.8))
    proto = _check(model, _vectors(rng), tmp_path, opset_version=opset)
    expected = {"Erf", "Softplus", "Elu", "Clip"} if opset < 20 else {"Gelu", "Mish", "Elu", "Clip"}
    assert expected <= _op_types(proto)


class Normalised(nn.Module):
    """Conv, GroupNorm, ConvTranspose2d (groups, dilation), Upsample in three modes, F.pad in
    every mode, ConvTranspose1d and LayerNorm over two axes without affine parameters."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.group = nn.GroupNorm(2, 4)
        self.up = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, dilation=1)
        self.dilated = nn.ConvTranspose2d(6, 4, 2, dilation=2, bias=False)
        self.nearest = nn.Upsample(scale_factor=2)
        self.bilinear = nn.Upsample(size=(9, 7), mode="bilinear", align_corners=True)
        self.line = nn.ConvTranspose1d(4, 3, 3, stride=2, padding=1)
        self.norm = nn.LayerNorm((3, 17), elementwise_affine=False)

    def forward(self, x):
        h = self.dilated(self.up(self.group(self.conv(x)).relu()))                 # (N, 4, 12, 12)
        h = F.interpolate(self.bilinear(self.nearest(h)), scale_factor=0.5, mode="bilinear")  # (N, 4, 4, 3)
        h = F.pad(h, (1, 2, 0, 1), mode="reflect") + F.pad(h, (1, 2, 0, 1), mode="replicate")
        circular = F.pad(F.pad(h, (1, 1, 1, 1), mode="circular"), (0, 1, -1, 0))  # constant crops
        h = F.pad(h, (1, 2, 0, 1), value=0.25) + circular                          # (N, 4, 6, 9)
        line = self.line(h.mean(dim=2))                                            # (N, 3, 17)
        return self.norm(line)


def test_normalisation_transposed_convolution_resize_and_pad(tmp_path, rng):
    proto = _check(Normalised(), _images(rng, 2, 5), tmp_path)
    assert {"LayerNormalization", "ConvTranspose", "Resize", "Pad", "Gather"} <= _op_types(proto)


class Attending(nn.Module):
    """scaled_dot_product_attention with a float mask and causal, and a sequence-first
    MultiheadAttention with kdim / vdim of its own."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(6, 24)
        self.cross = nn.MultiheadAttention(12, 3, kdim=6, vdim=5)

    def forward(self, x):
        n = x.shape[0]
        q, k, v = (self.proj(x)[..., 6 * i:6 * i + 6].reshape(n, 4, 2, 3).permute(0, 2, 1, 3) for i in range(3))
        mask = minidl.tensor(np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        b = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.3)
        mixed = (a + b).permute(2, 0, 1, 3).reshape(4, n, 6)                       # (L, N, 6)
        query = minidl.cat([mixed, mixed], dim=2)                                   # (L, N, 12)
        out, _ = self.cross(query, x.permute(1, 0, 2), x[:, :, :5].permute(1, 0, 2), need_weights=False)
        return out.permute(1, 0, 2)


def test_attention(tmp_path, rng):
    proto = _check(Attending(), lambda n: rng.standard_normal((n, 4, 6)).astype(np.float32), tmp_path)
    assert {"Softmax", "MatMul"} <= _op_types(proto)


def test_transformer_encoder(tmp_path, rng):
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0, batch_first=True)
    model = nn.TransformerEncoder(layer, 2)
    proto = _check(model, lambda n: rng.standard_normal((n, 5, 16)).astype(np.float32), tmp_path)
    assert "LayerNormalization" in _op_types(proto)


def test_autoencoder(tmp_path, rng):
    proto = _check(ConvAutoencoder(), _images(rng), tmp_path)
    assert "ConvTranspose" in _op_types(proto)


class Untraced(nn.Module):
    def forward(self, x):
        return minidl.ones(*x.shape)


def test_attention_weights_are_refused_not_frozen(tmp_path):
    """MultiheadAttention's weights and outputs made outside the recorded operations are refused
    rather than written as constants."""
    x = np.zeros((3, 2, 8), np.float32)
    with pytest.raises(NotImplementedError, match=r"the model \(MultiheadAttention\) returns attention "
                                                  r"weights.*need_weights=False"):
        minidl.onnx.export(nn.MultiheadAttention(8, 2), (x, x, x), tmp_path / "a.onnx")
    with pytest.raises(NotImplementedError, match="output 'output' is not computed by an operation"):
        minidl.onnx.export(Untraced(), x, tmp_path / "u.onnx")


def test_layer_norm_needs_opset_17(tmp_path):
    with pytest.raises(NotImplementedError, match=r"\(LayerNorm\) needs LayerNormalization.*opset_version=17"):
        minidl.onnx.export(nn.LayerNorm(4), np.zeros((2, 4), np.float32), tmp_path / "n.onnx",
                           opset_version=16)


def test_tiled_convolution_is_refused_naming_the_layer(tmp_path):
    with pytest.raises(NotImplementedError, match=r"layer '0' \(TiledConv2d\).*no ONNX operator"):
        minidl.onnx.export(TiledCNN(), np.zeros((1, 1, 28, 28), np.float32), tmp_path / "t.onnx")
    assert not (tmp_path / "t.onnx").exists()


def test_bad_arguments_are_named(tmp_path):
    model = nn.Linear(3, 2)
    x = np.zeros((1, 3), np.float32)
    with pytest.raises(ValueError, match="opset_version 11"):
        minidl.onnx.export(model, x, tmp_path / "m.onnx", opset_version=11)
    with pytest.raises(ValueError, match="'inptu'"):
        minidl.onnx.export(model, x, tmp_path / "m.onnx", dynamic_axes={"inptu": {0: "batch"}})
    with pytest.raises(ValueError, match="2 output_names for 1 output"):
        minidl.onnx.export(model, x, tmp_path / "m.onnx", output_names=["a", "b"])


def test_opset_18_and_the_default_agree(tmp_path, rng):
    model = Bag()
    make = lambda n: rng.integers(0, 20, (n, 7)).astype(np.int64)  # noqa: E731
    proto = _check(model, make, tmp_path, opset_version=18)
    assert proto.opset_import[0].version == 18


def test_a_missing_onnx_package_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"pip install 'minidl\[export\]'"):
        minidl.onnx.export(nn.Linear(2, 2), np.zeros((1, 2), np.float32), tmp_path / "m.onnx")
