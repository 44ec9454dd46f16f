"""Train a model on Fashion-MNIST and print its test accuracy.

    python scripts/train_fashion.py --model mlp --epochs 5 --batch-size 64 --lr 1e-3 --seed 0
    python scripts/train_fashion.py --plot curves.png --confusion confusion.png --csv-log log.csv
    NUMBA_NUM_THREADS=1 mpiexec -n 2 python scripts/train_fashion.py --distributed --model mlp

--distributed (under mpiexec, pip install 'minidl[distributed]'): every rank trains a
DistributedDataParallel replica on its DistributedSampler shard of --batch-size / ranks images
a step and evaluates its share of the test set; output, plots and logs come from rank 0.

--plot and --confusion write PNGs with matplotlib (pip install 'minidl[plot]'); --tensorboard DIR
writes event files for ``tensorboard --logdir DIR``.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import minidl  # noqa: E402
import minidl.distributed as dist  # noqa: E402
from minidl import nn, optim  # noqa: E402
from minidl.data import DataLoader, DistributedSampler, FashionMNIST  # noqa: E402
from minidl.data.fashion_mnist import CLASSES  # noqa: E402
from minidl.nn.parallel import DistributedDataParallel  # noqa: E402
from minidl.utils import plot_confusion_matrix, plot_history  # noqa: E402
from models import MODELS  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mlp", choices=sorted(MODELS))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64,
                        help="images per step, over all ranks with --distributed")
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
    parser.add_argument("--distributed", action="store_true",
                        help="data-parallel over the ranks of `mpiexec -n P python ...` (cpu)")
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
        args.device = "cuda" if minidl.cuda.is_available() and not args.distributed else "cpu"
    if args.distributed and args.device != "cpu":
        parser.error("--distributed trains on the cpu (MPI communicates host arrays); drop --device")
    return args


def make_optimizer(name, params, lr):
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=0.9)
    return (optim.AdamW if name == "adamw" else optim.Adam)(params, lr=lr)


def main(argv=None):
    args = parse_args(argv)
    rank, world = 0, 1
    if args.distributed:
        dist.init_process_group()
        rank, world = dist.get_rank(), dist.get_world_size()
        if args.batch_size % world:
            raise SystemExit(f"--batch-size {args.batch_size} is not divisible by the {world} ranks")
    say = print if rank == 0 else (lambda *_: None)
    minidl.manual_seed(args.seed)
    train_set = FashionMNIST(args.data, train=True, normalize=True)
    test_set = FashionMNIST(args.data, train=False, normalize=True)
    if args.limit:
        train_set.data, train_set.targets = train_set.data[:args.limit], train_set.targets[:args.limit]
    test_loader = DataLoader(test_set, 1000)
    model = MODELS[args.model]()
    if args.distributed:
        train_loader = DataLoader(train_set, args.batch_size // world,
                                  sampler=DistributedSampler(train_set, seed=args.seed))
        # rank r evaluates images r, r + P, ...: shards differ by at most one image, and the
        # Trainer weighs every rank's figures by its images
        eval_loader = DataLoader(test_set, 1000, sampler=range(rank, len(test_set), world))
        model = DistributedDataParallel(model)
    else:
        train_loader = DataLoader(train_set, args.batch_size, shuffle=True, seed=args.seed)
        eval_loader = test_loader
    say(model)
    say(f"{sum(p.numel() for p in model.parameters()):,} parameters; "
        f"{len(train_set):,} training images, {len(test_set):,} test images"
        + (f"; {world} ranks x {args.batch_size // world} images a step" if args.distributed else ""))
    callbacks = [minidl.train.ModelCheckpoint(args.checkpoint, save_best_only=False)] if args.checkpoint else []
    if args.csv_log:
        callbacks.append(minidl.train.CSVLogger(args.csv_log))
    if args.tensorboard:
        callbacks.append(minidl.train.TensorBoardLogger(args.tensorboard))
    trainer = minidl.Trainer(model, make_optimizer(args.optimizer, model.parameters(), args.lr),
                             nn.CrossEntropyLoss(), callbacks=callbacks, device=args.device,
                             progress=not args.no_progress)
    start = time.perf_counter()
    trainer.fit(train_loader, eval_loader, epochs=args.epochs)
    elapsed = time.perf_counter() - start
    result = trainer.evaluate(eval_loader)
    say(f"test accuracy {result['accuracy']:.4f}  test loss {result['loss']:.4f}  "
        f"({elapsed:.1f} s for {args.epochs} epochs, {elapsed / args.epochs:.1f} s/epoch)")
    if args.plot and rank == 0:
        plot_history(trainer.history, args.plot)
        say(f"training curves: {args.plot}")
    if args.confusion and rank == 0:
        predicted = trainer.predict(test_loader).argmax(axis=1)  # the whole test set (no collective)
        plot_confusion_matrix(test_set.targets, predicted, CLASSES, args.confusion)
        say(f"confusion matrix: {args.confusion}")
    if args.distributed:
        dist.destroy_process_group()
    return result


if __name__ == "__main__":
    main()
