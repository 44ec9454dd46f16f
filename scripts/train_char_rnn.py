"""Train a character-level language model on a word list and sample new words.

    python scripts/train_char_rnn.py --words /usr/share/dict/words --epochs 5
    python scripts/train_char_rnn.py --words names.txt --cell gru --hidden 64
    python scripts/train_char_rnn.py --model transformer --d-model 64 --heads 4 --layers 2

One word per line (any text file works: each non-empty line is a "word"). Debian's
``wamerican`` package installs /usr/share/dict/words. Prints the loss per character after
every epoch next to the uniform baseline log(vocabulary), then samples; words that are not in
the training list are marked "new".
"""
import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

import minidl  # noqa: E402
from minidl import optim  # noqa: E402
from models.char_rnn import CharRNN, CharVocab, sample, train_epoch  # noqa: E402
from models.transformer_lm import TransformerLM  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--words", default="/usr/share/dict/words", help="text file, one word per line")
    parser.add_argument("--max-words", type=int, default=None, help="train on this many words (random subset)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--model", default="rnn", choices=["rnn", "transformer"],
                        help="recurrent (--cell) or a causal transformer (models/transformer_lm.py)")
    parser.add_argument("--cell", default="lstm", choices=sorted(CharRNN.CELLS))
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--embedding", type=int, default=32)
    parser.add_argument("--layers", type=int, default=None, help="default: 1 (rnn), 2 (transformer)")
    parser.add_argument("--d-model", type=int, default=64, help="transformer width")
    parser.add_argument("--heads", type=int, default=4, help="transformer attention heads")
    parser.add_argument("--feedforward", type=int, default=192, help="transformer feed-forward width")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--clip", type=float, default=1.0, help="gradient norm clipping (0: off)")
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def read_words(path, limit=None, rng=None):
    with open(path, encoding="utf-8", errors="replace") as handle:
        words = list(dict.fromkeys(line.strip() for line in handle if line.strip()))
    if not words:
        raise SystemExit(f"{path}: no words (expected one word per line)")
    if limit is not None and limit < len(words):
        words = [words[i] for i in sorted(rng.choice(len(words), limit, replace=False))]
    return words


def main(argv=None):
    args = parse_args(argv)
    minidl.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    words = read_words(args.words, args.max_words, rng)
    vocab = CharVocab(words)
    if args.model == "transformer":
        model = TransformerLM(len(vocab), args.d_model, args.heads, args.layers or 2, args.feedforward,
                              max_length=max(max(len(w) for w in words) + 1, 64))
    else:
        model = CharRNN(len(vocab), args.embedding, args.hidden, args.layers or 1, args.cell)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    baseline = math.log(len(vocab))
    print(f"{len(words)} words from {args.words}, {len(vocab)} symbols; "
          f"uniform baseline log({len(vocab)}) = {baseline:.3f} nats per character; "
          f"{sum(p.numel() for p in model.parameters())} parameters")
    batches = math.ceil(len(words) / args.batch_size)
    losses = []
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        with tqdm(total=batches, desc=f"epoch {epoch}/{args.epochs}", disable=args.no_progress,
                  leave=False) as bar:
            loss = train_epoch(model, optimizer, vocab, words, args.batch_size, rng, args.clip, bar)
        losses.append(loss)
        print(f"epoch {epoch}: loss {loss:.3f} nats per character ({loss / baseline:.0%} of the "
              f"baseline), {time.perf_counter() - start:.1f} s")
    known = set(words)
    print(f"\nsamples (temperature {args.temperature}):")
    for word in sample(model, vocab, args.samples, temperature=args.temperature, rng=rng):
        print(f"  {word!r}{'' if word in known else '  (new)'}")
    return losses


if __name__ == "__main__":
    main()
