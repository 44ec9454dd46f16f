"""Fit a decision tree (or a random forest) on a CSV file or on Fashion-MNIST; print accuracy,
fit time and, for small trees, the tree itself.

    python scripts/train_tree.py --csv weather.csv --target Play --criterion entropy
    python scripts/train_tree.py --fashion --criterion entropy --max-depth 10
    python scripts/train_tree.py --fashion --forest 50 --max-depth 20 --limit 10000
    python scripts/train_tree.py --csv weather.csv --target Play --plot tree.png

A CSV file is split 70/30 into train and test rows (shuffled, --seed); Fashion-MNIST uses its own
60,000 / 10,000 split, pixels as 784 numeric features (files from MINIDL_DATA or the usual places,
see minidl.data.fashion_mnist). --plot draws the fitted tree with Graphviz's ``dot`` program
(from the DOT text of minidl.tree.export_graphviz); keep the tree small (--max-depth) to read it.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from minidl.data.fashion_mnist import CLASSES, resolve  # noqa: E402
from minidl.data.idx import read_idx  # noqa: E402
from minidl.data.tabular import load_csv  # noqa: E402
from minidl.tree import (DecisionTreeClassifier, RandomForestClassifier, export_graphviz,  # noqa: E402
                         export_text)

MAX_PRINTED_LEAVES = 40
GRAPHVIZ_MISSING = ("--plot needs Graphviz's dot program, which is not on PATH: install it with "
                    "'apt-get install graphviz' (Debian, Ubuntu), 'brew install graphviz' (macOS) "
                    "or 'conda install graphviz', then run again")


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


def render_tree(dot_text, path):
    """``dot -Tpng`` of ``dot_text`` into ``path``; the image format follows the file's extension."""
    extension = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    done = subprocess.run(["dot", f"-T{extension}", "-o", path], input=dot_text, text=True,
                          capture_output=True)
    if done.returncode:
        raise RuntimeError(f"dot failed to draw {path} (exit {done.returncode}): {done.stderr.strip()}")


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
    parser.add_argument("--plot", metavar="PNG", help="draw the tree with Graphviz (a single tree only)")
    args = parser.parse_args(argv)
    if args.plot and args.forest:
        parser.error("--plot draws a single tree; drop --forest")
    if args.plot and shutil.which("dot") is None:
        parser.error(GRAPHVIZ_MISSING)

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
        if args.plot:
            # Fashion-MNIST's labels are class numbers: show their names (CSV labels are names)
            class_names = [CLASSES[c] for c in model.classes_] if args.fashion else None
            render_tree(export_graphviz(model, feature_names=names, class_names=class_names), args.plot)
            print(f"tree drawn: {args.plot}")


if __name__ == "__main__":
    main()
