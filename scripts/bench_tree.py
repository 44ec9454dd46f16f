"""minidl's DecisionTreeClassifier against scikit-learn's on Fashion-MNIST, in one process.

    python scripts/bench_tree.py                  # full 60,000 training images
    python scripts/bench_tree.py --n-train 10000

Both fit criterion="entropy", max_depth=10, random_state=0 on the raw pixels (784 features) and
score on the 10,000 test images; runs alternate between the libraries and the median fit time
is reported. ratio = minidl / sklearn. minidl's first fit (its Numba kernels loading from the
cache, or compiling) is a warm-up and not timed.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import numba  # noqa: E402

from bench_common import print_table, time_interleaved  # noqa: E402
from train_tree import fashion_mnist  # noqa: E402


def bench_tree(n_train=None, repeats=3):
    """Rows (name, minidl_s, sklearn_s, ratio, minidl_acc, sklearn_acc) for the depth-10
    entropy tree on Fashion-MNIST (the first ``n_train`` training images; all when None)."""
    from sklearn.tree import DecisionTreeClassifier as SklearnTree

    from minidl.tree import DecisionTreeClassifier

    X_train, y_train = fashion_mnist(train=True)
    X_test, y_test = fashion_mnist(train=False)
    X_train, y_train = X_train[:n_train], y_train[:n_train]
    params = dict(criterion="entropy", max_depth=10, random_state=0)
    models = {"minidl": DecisionTreeClassifier(**params), "sklearn": SklearnTree(**params)}
    medians = time_interleaved({name: (lambda m=m: m.fit(X_train, y_train)) for name, m in models.items()},
                               repeats=repeats, warmup=1)
    return [dict(name=f"DecisionTreeClassifier entropy depth 10, {len(y_train)} x 784",
                 minidl_s=medians["minidl"], sklearn_s=medians["sklearn"],
                 ratio=medians["minidl"] / medians["sklearn"],
                 minidl_acc=models["minidl"].score(X_test, y_test),
                 sklearn_acc=models["sklearn"].score(X_test, y_test))]


def main_section(quick=False):
    rows = bench_tree(n_train=10_000 if quick else None, repeats=1 if quick else 3)
    print_table(rows, f"Decision tree fit, Fashion-MNIST ({numba.get_num_threads()} threads)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-train", type=int, default=None, help="training images (default: all 60,000)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print_table(bench_tree(args.n_train, args.repeats),
                f"Decision tree fit, Fashion-MNIST ({numba.get_num_threads()} threads)")
