"""Transformer encoder/decoder layers, stacks and nn.Transformer against PyTorch: a torch model's
state_dict copied into the minidl twin, outputs and every gradient compared in float64 with
dropout 0, batch_first both ways, norm_first both ways, masks and key padding masks."""
import numpy as np
import pytest

import minidl
from minidl import nn
from conftest import assert_close

TOL = {"rtol": 1e-9, "atol": 1e-10}
pytestmark = pytest.mark.filterwarnings("ignore:.*(mismatched|enable_nested_tensor).*:UserWarning")


def _twins(torch, ours, theirs):
    """theirs in float64, its weights copied into ours (float64) through the state_dict."""
    theirs = theirs.double()
    ours = ours.double()
    state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(state)
    ours.load_state_dict(state)
    return ours, theirs


def _compare(torch, rng, ours, theirs, inputs, kwargs):
    mine = [minidl.tensor(x, requires_grad=True) for x in inputs]
    their = [torch.tensor(x, requires_grad=True) for x in inputs]
    their_kwargs = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    out, expected = ours(*mine, **kwargs), theirs(*their, **their_kwargs)
    upstream = rng.standard_normal(tuple(expected.shape))
    out.backward(upstream)
    expected.backward(torch.tensor(upstream))
    assert_close(out, expected, what="output", **TOL)
    for i, (a, b) in enumerate(zip(mine, their)):
        assert_close(a.grad, b.grad, what=f"input {i} grad", **TOL)
    params = dict(ours.named_parameters())
    for name, param in theirs.named_parameters():
        assert_close(params[name].grad, param.grad, what=f"d {name}", **TOL)


def _shape(batch_first, n, length, width):
    return (n, length, width) if batch_first else (length, n, width)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("norm_first, activation", [(False, "relu"), (True, "gelu")])
def test_encoder_matches_torch(rng, batch_first, norm_first, activation):
    torch = pytest.importorskip("torch")
    options = dict(dim_feedforward=12, dropout=0.0, activation=activation, batch_first=batch_first,
                   norm_first=norm_first)
    theirs = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, **options), 2,
                                         norm=torch.nn.LayerNorm(8), enable_nested_tensor=False)
    ours = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, **options), 2, norm=nn.LayerNorm(8))
    ours, theirs = _twins(torch, ours, theirs)
    n, length = 3, 5
    padding = np.zeros((n, length), bool)
    padding[0, -2:] = True
    mask = nn.Transformer.generate_square_subsequent_mask(length, dtype=np.float64).numpy()
    kwargs = {"mask": mask, "src_key_padding_mask": padding}
    _compare(torch, rng, ours, theirs, [rng.standard_normal(_shape(batch_first, n, length, 8))], kwargs)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_matches_torch(rng, batch_first, norm_first):
    torch = pytest.importorskip("torch")
    options = dict(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=2, dim_feedforward=10,
                   dropout=0.0, batch_first=batch_first, norm_first=norm_first)
    theirs, ours = torch.nn.Transformer(**options), nn.Transformer(**options)
    ours, theirs = _twins(torch, ours, theirs)
    n, s, t = 2, 4, 3
    src_padding = np.zeros((n, s), bool)
    src_padding[1, -1] = True
    tgt_padding = np.zeros((n, t), bool)
    tgt_padding[0, -1] = True
    kwargs = {"tgt_mask": nn.Transformer.generate_square_subsequent_mask(t, dtype=np.float64).numpy(),
              "src_key_padding_mask": src_padding, "tgt_key_padding_mask": tgt_padding,
              "memory_key_padding_mask": src_padding, "memory_mask": rng.standard_normal((t, s))}
    inputs = [rng.standard_normal(_shape(batch_first, n, s, 8)), rng.standard_normal(_shape(batch_first, n, t, 8))]
    _compare(torch, rng, ours, theirs, inputs, kwargs)


def test_state_dict_loads_into_torch_and_defaults(rng):
    torch = pytest.importorskip("torch")
    ours = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0)
    theirs = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0)
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    x = rng.standard_normal((5, 2, 8)).astype(np.float32)
    assert_close(ours(minidl.tensor(x)), theirs(torch.tensor(x)), what="output")
    default = nn.Transformer()
    assert len(default.encoder.layers) == 6 and len(default.decoder.layers) == 6
    assert default.encoder.layers[0].linear1.weight.shape == (2048, 512)
    assert default.encoder.layers[0].dropout.p == 0.1
    first, second = default.encoder.layers[0].linear1.weight.data, default.encoder.layers[1].linear1.weight.data
    assert not np.shares_memory(first, second) and not np.array_equal(first, second)
    mask = nn.Transformer.generate_square_subsequent_mask(3)
    assert mask.dtype == np.float32
    np.testing.assert_array_equal(mask.numpy(), torch.nn.Transformer.generate_square_subsequent_mask(3).numpy())


def test_errors():
    with pytest.raises(ValueError, match="activation"):
        nn.TransformerEncoderLayer(8, 2, activation="swish")
    model = nn.Transformer(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=8)
    with pytest.raises(ValueError, match=r"Transformer.*d_model=8"):
        model(minidl.zeros(3, 2, 6), minidl.zeros(3, 2, 6))
    with pytest.raises(ValueError, match=r"Transformer.*same batch size"):
        model(minidl.zeros(3, 2, 8), minidl.zeros(3, 4, 8))


def test_meta_device_gives_shapes():
    with minidl.device("meta"):
        model = nn.Transformer(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=8)
        mask = nn.Transformer.generate_square_subsequent_mask(3)
        out = model(minidl.zeros(5, 2, 8), minidl.zeros(3, 2, 8), tgt_mask=mask)
        weights = nn.MultiheadAttention(8, 2)(minidl.zeros(3, 2, 8), minidl.zeros(5, 2, 8), minidl.zeros(5, 2, 8))[1]
    assert out.device == "meta" and out.shape == (3, 2, 8) and weights.shape == (2, 3, 5)


def test_transformer_language_model_learns_and_samples(tmp_path, capsys):
    import math

    from models.char_rnn import CharVocab, sample, train_epoch
    from models.transformer_lm import TransformerLM
    from test_char_rnn import syllable_words
    words = syllable_words()
    vocab = CharVocab(words)
    model = TransformerLM(len(vocab), d_model=16, nhead=2, num_layers=1, dim_feedforward=32)
    optimizer = minidl.optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    losses = [train_epoch(model, optimizer, vocab, words, 32, rng, clip=1.0) for _ in range(5)]
    assert losses[-1] < 0.6 * math.log(len(vocab)) and losses[-1] < losses[0], losses
    # causal: a position's logits do not depend on later characters
    inputs, _ = vocab.batch(["kalo", "kami"])
    logits = model(inputs)[0].data
    assert np.allclose(logits[0, :2], logits[1, :2], atol=1e-5) and not np.allclose(logits[0, 3], logits[1, 3])
    samples = sample(model, vocab, count=3, max_length=8, rng=np.random.default_rng(1))
    assert len(samples) == 3 and all(set(w) <= set(vocab.chars[2:]) for w in samples)

    from scripts.train_char_rnn import main
    path = tmp_path / "words.txt"
    path.write_text("\n".join(words[:40]) + "\n")
    losses = main(["--words", str(path), "--model", "transformer", "--epochs", "1", "--d-model", "8",
                   "--heads", "2", "--layers", "1", "--feedforward", "16", "--samples", "2", "--no-progress"])
    assert len(losses) == 1 and "parameters" in capsys.readouterr().out


@pytest.mark.skipif(not minidl.cuda.is_available(), reason="CUDA is not available")
def test_encoder_layer_on_cuda_equals_cpu(rng):
    layer = nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, batch_first=True)
    x = rng.standard_normal((1, 3, 4)).astype(np.float32)
    results = {}
    for device in ("cpu", "cuda"):
        layer.to(device)
        layer.zero_grad()
        inputs = minidl.tensor(x, device=device, requires_grad=True)
        out = layer(inputs, src_mask=nn.Transformer.generate_square_subsequent_mask(3, device=device),
                    src_key_padding_mask=np.array([[False, False, True]]))
        out.sum().backward()
        results[device] = [out.detach().cpu().numpy(), inputs.grad.cpu().numpy()] + [
            p.grad.cpu().numpy() for p in layer.parameters()]
    for gpu, cpu in zip(results["cuda"], results["cpu"]):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-5)
