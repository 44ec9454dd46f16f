"""Causal transformer language model over characters: the char-RNN's task with attention.

    h_0 = E[c] + PE[t]       (token embedding, N(0, 1) at init, and the sinusoidal positional
                              encoding PE[t, 2i] = sin(t / 10000^(2i/d)), PE[t, 2i+1] = cos(...):
                              the same scale, so neither drowns the other)
    h = TransformerEncoder(h_0, causal mask)  (pre-norm layers, a final LayerNorm)
    p(c_{t+1} | c_<=t) = softmax(W h_t + b)

It keeps CharRNN's interface, ``model(index, state) -> (logits, state)``, so
``models.char_rnn``'s train_epoch and sample drive it unchanged: the "state" is the indices
read so far, and each call attends over all of them (a causal mask keeps every position from
seeing later ones, so right-padding changes no real position's output).
"""
import math

import numpy as np

import minidl
from minidl import nn


def positional_encoding(length, d_model):
    """The (length, d_model) sinusoidal table of "Attention is all you need"."""
    position = np.arange(length)[:, None]
    frequency = np.exp(np.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
    table = np.zeros((length, d_model))
    table[:, 0::2] = np.sin(position * frequency)
    table[:, 1::2] = np.cos(position * frequency[:d_model // 2])
    return table.astype(np.float32)


class TransformerLM(nn.Module):
    """Embedding(vocab, d_model) + positions -> num_layers causal TransformerEncoderLayers
    (pre-norm, GELU) -> LayerNorm -> Linear(vocab)."""

    def __init__(self, vocab_size, d_model=64, nhead=4, num_layers=2, dim_feedforward=192, dropout=0.0,
                 max_length=128):
        super().__init__()
        self.d_model, self.max_length = d_model, max_length
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=0)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(d_model))
        self.head = nn.Linear(d_model, vocab_size)
        self.register_buffer("positions", minidl.tensor(positional_encoding(max_length, d_model)),
                             persistent=False)

    def forward(self, index, state=None):
        """index (N, T) int64 (after ``state``, the (N, T0) indices before it) -> logits (N, T,
        vocab) for the new positions, and the indices read so far as the next state."""
        index = np.asarray(getattr(index, "array", index))
        history = index if state is None else np.concatenate([state, index], axis=1)
        length = history.shape[1]
        if length > self.max_length:
            raise ValueError(f"{type(self).__name__}: a sequence of {length} tokens is longer than "
                             f"max_length={self.max_length}")
        h = self.embedding(minidl.tensor(history)) + self.positions[:length]
        h = self.encoder(h, mask=np.triu(np.ones((length, length), dtype=bool), 1))
        return self.head(h[:, length - index.shape[1]:]), history
