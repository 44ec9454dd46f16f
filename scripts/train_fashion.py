"""Train a model on Fashion-MNIST and print its test accuracy.

    python scripts/train_fashion.py --model mlp --epochs 5 --batch-size 64 --lr 1e-3 --seed 0
    python scripts/train_fashion.py --plot curves.png --confusion confusion.png --csv-log log.csv

--plot and --confusion write PNGs with matplotlib (pip install 'minidl[plot]'); --tensorboard DIR
writes event files for ``tensorboard --logdir DIR``.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import minidl  # noqa: E402
from minidl import nn, optim  # noqa: E402
from minidl.data import DataLoader, FashionMNIST  # noqa: E402
from minidl.data.fashion_mnist import CLASSES  # noqa: E402
from minidl.utils import plot_confusion_matrix, plot_history  # noqa: E402
from models import MODELS  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mlp", choices=sorted(MODELS))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--optimizer", default="adam", choices=["adam", "adamw", "sgd"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None,
                        help="directory with the IDX files (default: see minidl.data.fashion_mnist)")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    parser.add_argument("--checkpoint", default=None, help="save a checkpoint here after every epoch")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"],
                        help="where to train; auto = cuda when minidl.cuda.is_available(), else cpu")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--plot", metavar="PNG", help="loss and accuracy per epoch, train and test")
    parser.add_argument("--confusion", metavar="PNG", help="the confusion matrix on the test set")
    parser.add_argument("--csv-log", metavar="CSV", help="one row of figures per epoch")
    parser.add_argument("--tensorboard", metavar="DIR", help="TensorBoard event files")
    args = parser.parse_args(argv)
    if args.plot or args.confusion:
        try:
            import matplotlib  # noqa: F401  (checked before training, not after)
        except ImportError:
            parser.error("--plot and --confusion need matplotlib: pip install 'minidl[plot]'")
    if args.device == "auto":
        args.device = "cuda" if minidl.cuda.is_available() else "cpu"
    return args


def make_optimizer(name, params, lr):
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=0.9)
    return (optim.AdamW if name == "adamw" else optim.Adam)(params, lr=lr)


def main(argv=None):
    args = parse_args(argv)
    minidl.manual_seed(args.seed)
    train_set = FashionMNIST(args.data, train=True, normalize=True)
    test_set = FashionMNIST(args.data, train=False, normalize=True)
    if args.limit:
        train_set.data, train_set.targets = train_set.data[:args.limit], train_set.targets[:args.limit]
    train_loader = DataLoader(train_set, args.batch_size, shuffle=True, seed=args.seed)
    test_loader = DataLoader(test_set, 1000)
    model = MODELS[args.model]()
    print(model)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters; "
          f"{len(train_set):,} training images, {len(test_set):,} test images")
    callbacks = [minidl.train.ModelCheckpoint(args.checkpoint, save_best_only=False)] if args.checkpoint else []
    if args.csv_log:
        callbacks.append(minidl.train.CSVLogger(args.csv_log))
    if args.tensorboard:
        callbacks.append(minidl.train.TensorBoardLogger(args.tensorboard))
    trainer = minidl.Trainer(model, make_optimizer(args.optimizer, model.parameters(), args.lr),
                             nn.CrossEntropyLoss(), callbacks=callbacks, device=args.device,
                             progress=not args.no_progress)
    start = time.perf_counter()
    trainer.fit(train_loader, test_loader, epochs=args.epochs)
    elapsed = time.perf_counter() - start
    result = trainer.evaluate(test_loader)
    print(f"test accuracy {result['accuracy']:.4f}  test loss {result['loss']:.4f}  "
          f"({elapsed:.1f} s for {args.epochs} epochs, {elapsed / args.epochs:.1f} s/epoch)")
    if args.plot:
        plot_history(trainer.history, args.plot)
        print(f"training curves: {args.plot}")
    if args.confusion:
        predicted = trainer.predict(test_loader).argmax(axis=1)
        plot_confusion_matrix(test_set.targets, predicted, CLASSES, args.confusion)
        print(f"confusion matrix: {args.confusion}")
    return result


if __name__ == "__main__":
    main()
