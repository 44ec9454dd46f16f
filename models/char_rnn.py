"""Character-level language model on a word list: Embedding -> LSTM (or GRU, RNN) -> Linear.

Every word is read as BOUNDARY + word and predicts word + BOUNDARY, one character ahead:
p(c_t | c_<t) = softmax(W_hy h_t + b_y), trained with the cross-entropy of the notes
(L = -sum_t log p_t[c_t]); a model that learns nothing scores log(vocabulary size) per
character. Sampling starts from BOUNDARY and draws characters until BOUNDARY comes back.
"""
import numpy as np

import minidl
import minidl.nn.functional as F
from minidl import nn

PAD, BOUNDARY = "<pad>", "\n"


class CharVocab:
    """Characters <-> indices. Index 0 pads batches (never a target), 1 is the word boundary."""

    def __init__(self, words):
        self.chars = [PAD, BOUNDARY] + sorted(set("".join(words)) - {BOUNDARY})
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, word):
        return [self.index[c] for c in word]

    def batch(self, words):
        """(inputs, targets), int64 arrays (N, longest + 1): boundary + word -> word + boundary,
        padded with 0 (targets at padding are ignored by the loss)."""
        width = max(len(w) for w in words) + 1
        inputs = np.zeros((len(words), width), dtype=np.int64)
        targets = np.zeros_like(inputs)
        boundary = self.index[BOUNDARY]
        for row, word in enumerate(words):
            codes = self.encode(word)
            inputs[row, :len(codes) + 1] = [boundary] + codes
            targets[row, :len(codes) + 1] = codes + [boundary]
        return inputs, targets


class CharRNN(nn.Module):
    """Embedding(vocab, embedding_dim) -> {lstm, gru, rnn}(hidden_size, num_layers) -> Linear(vocab)."""

    CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}

    def __init__(self, vocab_size, embedding_dim=32, hidden_size=128, num_layers=1, cell="lstm"):
        super().__init__()
        if cell not in self.CELLS:
            raise ValueError(f"CharRNN: cell must be one of {sorted(self.CELLS)}, got {cell!r}")
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.rnn = self.CELLS[cell](embedding_dim, hidden_size, num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, index, state=None):
        """index (N, T) int64 -> logits (N, T, vocab), final recurrent state."""
        hidden, state = self.rnn(self.embedding(index), state)
        return self.head(hidden), state


def sequence_loss(logits, targets):
    """Mean cross-entropy per (non-padding) character."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), minidl.tensor(targets.reshape(-1)),
                           ignore_index=0)


def train_epoch(model, optimizer, vocab, words, batch_size, rng, clip=None, progress=None):
    """One pass over ``words`` in a random order; returns the mean loss per character.
    ``progress``: an optional tqdm bar to advance and label with the running loss."""
    order = rng.permutation(len(words))
    total, count = 0.0, 0
    for start in range(0, len(order), batch_size):
        inputs, targets = vocab.batch([words[i] for i in order[start:start + batch_size]])
        logits, _ = model(minidl.tensor(inputs))
        loss = sequence_loss(logits, targets)
        optimizer.zero_grad()
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        chars = int((targets != 0).sum())
        total, count = total + loss.item() * chars, count + chars
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{total / count:.3f}")
    return total / count


def sample(model, vocab, count=10, max_length=24, temperature=1.0, rng=None):
    """``count`` new words, drawn one character at a time from softmax(logits / temperature)."""
    rng = rng or np.random.default_rng()
    boundary = vocab.index[BOUNDARY]
    current = np.full((count, 1), boundary, dtype=np.int64)
    state, words, done = None, [[] for _ in range(count)], np.zeros(count, dtype=bool)
    with minidl.no_grad():
        for _ in range(max_length):
            logits, state = model(minidl.tensor(current), state)
            scores = logits.numpy()[:, -1].astype(np.float64) / temperature
            scores[:, 0] = -np.inf  # never the padding symbol
            probs = np.exp(scores - scores.max(axis=1, keepdims=True))
            probs /= probs.sum(axis=1, keepdims=True)
            picks = np.array([rng.choice(len(vocab), p=p) for p in probs])
            for row, code in enumerate(picks):
                if not done[row]:
                    if code == boundary:
                        done[row] = True
                    else:
                        words[row].append(vocab.chars[code])
            if done.all():
                break
            current = picks[:, None]
    return ["".join(w) for w in words]
