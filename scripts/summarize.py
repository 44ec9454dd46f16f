"""Print a model's summary: output shapes, parameters and multiply-adds per layer.

    python scripts/summarize.py exercise_cnn --input 3,386,386
    python scripts/summarize.py lenet --input 1,28,28

NAME is a module of models/ with a build() function. The model is built on the meta device,
so even a model too large for memory is summarised in a moment.
"""
import argparse
import importlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import minidl  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="a module of models/, e.g. exercise_cnn, lenet, mlp")
    parser.add_argument("--input", required=True, help="input size without the batch, e.g. 3,386,386")
    parser.add_argument("--batch-size", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        build = importlib.import_module(f"models.{args.name}").build
    except ModuleNotFoundError:
        parser.error(f"no model {args.name!r} in models/")
    input_size = tuple(int(n) for n in args.input.split(","))
    start = time.perf_counter()
    with minidl.device("meta"):
        model = build()
    result = minidl.summary(model, input_size, batch_size=args.batch_size)
    print(f"({time.perf_counter() - start:.2f} s)")
    return result


if __name__ == "__main__":
    main()
