"""The character-level language model learns a small word list well below the uniform baseline."""
import itertools
import math

import numpy as np
import pytest

from minidl import optim
from models.char_rnn import CharRNN, CharVocab, sample, train_epoch


def syllable_words():
    """300 words of 2-3 consonant-vowel syllables: each vowel follows from its consonant."""
    syllables = ["ka", "lo", "mi", "ne", "ru", "tu", "so", "vi"]
    words = ["".join(p) for n in (2, 3) for p in itertools.product(syllables, repeat=n)]
    return [words[i] for i in np.random.default_rng(0).permutation(len(words))[:300]]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_loss_falls_well_below_the_uniform_baseline(cell):
    words = syllable_words()
    vocab = CharVocab(words)
    model = CharRNN(len(vocab), embedding_dim=16, hidden_size=32, cell=cell)
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    losses = [train_epoch(model, optimizer, vocab, words, 32, rng, clip=1.0) for _ in range(6)]
    baseline = math.log(len(vocab))
    # the entropy left is about log(8) / 2 per character (a free consonant every other step)
    assert losses[-1] < 0.5 * baseline, (losses, baseline)
    assert losses[-1] < losses[0]


def test_samples_are_words_of_the_vocabulary():
    words = syllable_words()
    vocab = CharVocab(words)
    model = CharRNN(len(vocab), embedding_dim=8, hidden_size=16, cell="rnn")
    samples = sample(model, vocab, count=5, max_length=12, rng=np.random.default_rng(1))
    assert len(samples) == 5
    assert all(len(w) <= 12 and set(w) <= set(vocab.chars[2:]) for w in samples)


def test_batch_pads_and_shifts_by_one():
    vocab = CharVocab(["ab", "b"])
    inputs, targets = vocab.batch(["ab", "b"])
    a, b, boundary = vocab.index["a"], vocab.index["b"], vocab.index["\n"]
    assert inputs.tolist() == [[boundary, a, b], [boundary, b, 0]]
    assert targets.tolist() == [[a, b, boundary], [b, boundary, 0]]


def test_script_trains_and_samples(tmp_path, capsys):
    from scripts.train_char_rnn import main
    path = tmp_path / "words.txt"
    path.write_text("\n".join(syllable_words()[:60]) + "\n")
    losses = main(["--words", str(path), "--epochs", "2", "--hidden", "16", "--embedding", "8",
                   "--samples", "3", "--no-progress"])
    output = capsys.readouterr().out
    assert len(losses) == 2 and "epoch 2: loss" in output and "samples" in output
