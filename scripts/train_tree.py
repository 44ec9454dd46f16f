"""Fit a decision tree (or a random forest) on a CSV file or on Fashion-MNIST; print accuracy,
fit time and, for small trees, the tree itself.

    python scripts/train_tree.py --csv weather.csv --target Play --criterion entropy
    python scripts/train_tree.py --fashion --criterion entropy --max-depth 10
    python scripts/train_tree.py --fashion --forest 50 --max-depth 20 --limit 10000

A CSV file is split 70/30 into train and test rows (shuffled, --seed); Fashion-MNIST uses its own
60,000 / 10,000 split, pixels as 784 numeric features (files from MINIDL_DATA or the usual places,
see minidl.data.fashion_mnist).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from minidl.data.fashion_mnist import resolve  # noqa: E402
from minidl.data.idx import read_idx  # noqa: E402
from minidl.data.tabular import load_csv  # noqa: E402
from minidl.tree import DecisionTreeClassifier, RandomForestClassifier, export_text  # noqa: E402

MAX_PRINTED_LEAVES = 40


def fashion_mnist(train, root=None):
    """Raw pixels (n, 784) uint8 and labels of one Fashion-MNIST split."""
    images_path, labels_path = resolve(root, train, download_missing=False)
    images = read_idx(images_path)
    return images.reshape(len(images), -1), read_idx(labels_path).astype(np.int64)


def csv_split(path, target, seed, test_fraction=0.3):
    X, y, names = load_csv(path, target=target)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = max(1, int(round(test_fraction * len(y))))
    test, train = order[:n_test], order[n_test:]
    return X[train], y[train], X[test], y[test], names


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--csv", help="CSV file with a header row")
    source.add_argument("--fashion", action="store_true", help="Fashion-MNIST pixels")
    parser.add_argument("--target", help="CSV column to predict (default: the last one)")
    parser.add_argument("--criterion", default="entropy", choices=["entropy", "gini", "gain_ratio"])
    parser.add_argument("--max-depth", type=int, default=None)
    parser.add_argument("--min-samples-leaf", type=int, default=1)
    parser.add_argument("--forest", type=int, default=0, metavar="N", help="a random forest of N trees")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N training rows")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if args.fashion:
        X_train, y_train = fashion_mnist(train=True)
        X_test, y_test = fashion_mnist(train=False)
        names = [f"pixel_{r}_{c}" for r in range(28) for c in range(28)]
    else:
        X_train, y_train, X_test, y_test, names = csv_split(args.csv, args.target, args.seed)
    if args.limit:
        X_train, y_train = X_train[:args.limit], y_train[:args.limit]

    params = dict(criterion=args.criterion, max_depth=args.max_depth,
                  min_samples_leaf=args.min_samples_leaf, random_state=args.seed)
    if args.forest:
        model = RandomForestClassifier(n_estimators=args.forest, verbose=True, **params)
    else:
        model = DecisionTreeClassifier(**params)
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    print(f"{model!r}" if not args.forest else f"random forest of {args.forest} trees ({args.criterion})")
    print(f"train rows {len(y_train)}, features {X_train.shape[1]}, fit {seconds:.2f} s")
    print(f"train accuracy {model.score(X_train, y_train):.4f}, test accuracy {model.score(X_test, y_test):.4f}")
    if not args.forest:
        print(f"depth {model.get_depth()}, leaves {model.get_n_leaves()}")
        if model.get_n_leaves() <= MAX_PRINTED_LEAVES:
            print(export_text(model, feature_names=names), end="")


if __name__ == "__main__":
    main()
