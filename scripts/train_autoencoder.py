"""Train the convolutional autoencoder (models/autoencoder.py) on Fashion-MNIST and save a PNG
grid of test images (top row) and their reconstructions (bottom row).

    python scripts/train_autoencoder.py --epochs 3 --subset 10000 --out reconstructions.png

The grid is drawn with matplotlib, an optional extra: pip install 'minidl[plot]' (or
pip install matplotlib). Data: --data DIR, else minidl.data.FashionMNIST's resolution
(MINIDL_DATA, ~/.cache/minidl, /usr/share/datasets/fashion-mnist, a checked download).
"""
import argparse
import os
import sys
import time

from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import minidl  # noqa: E402
from minidl import nn, optim  # noqa: E402
from minidl.data import DataLoader, FashionMNIST  # noqa: E402
from minidl.utils import plot_image_grid  # noqa: E402
from models.autoencoder import ConvAutoencoder  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--subset", type=int, default=None, help="train on the first N images only")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, help="directory with the IDX files")
    parser.add_argument("--out", default="autoencoder.png", help="the PNG grid to write")
    parser.add_argument("--images", type=int, default=10, help="test images in the grid")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        import matplotlib  # noqa: F401  (checked before training, not after)
    except ImportError:
        parser.error("the image grid needs matplotlib: pip install 'minidl[plot]' "
                     "(or pip install matplotlib)")
    return args


def reconstruction_mse(model, loader):
    """Mean squared pixel error over a loader's images."""
    total, count = 0.0, 0
    with minidl.no_grad():
        for images, _ in loader:
            total += float(nn.functional.mse_loss(model(images), images, reduction="sum").item())
            count += images.numel()
    return total / count


def main(argv=None):
    args = parse_args(argv)
    minidl.manual_seed(args.seed)
    train_set = FashionMNIST(args.data, train=True)
    test_set = FashionMNIST(args.data, train=False)
    if args.subset:
        train_set.data, train_set.targets = train_set.data[:args.subset], train_set.targets[:args.subset]
    train_loader = DataLoader(train_set, args.batch_size, shuffle=True, seed=args.seed)
    test_loader = DataLoader(test_set, 500)
    model = ConvAutoencoder()
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.MSELoss()
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters; "
          f"{len(train_set):,} training images, {len(test_set):,} test images")
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        bar = tqdm(train_loader, desc=f"epoch {epoch}/{args.epochs}", disable=args.no_progress,
                   leave=False)
        running = 0.0
        for step, (images, _) in enumerate(bar, 1):
            optimizer.zero_grad()
            loss = loss_fn(model(images), images)
            loss.backward()
            optimizer.step()
            running += float(loss.item())
            bar.set_postfix(mse=f"{running / step:.4f}")
        model.eval()
        print(f"epoch {epoch}: train mse {running / max(len(train_loader), 1):.4f}  "
              f"test mse {reconstruction_mse(model, test_loader):.4f}  "
              f"({time.perf_counter() - start:.1f} s)")
    originals = minidl.tensor(test_set.data[:args.images])
    with minidl.no_grad():
        reconstructions = model(originals)
    plot_image_grid([originals, reconstructions], args.out, ["original", "reconstruction"])
    mse = reconstruction_mse(model, test_loader)
    print(f"test reconstruction mse {mse:.4f}; image grid: {args.out}")
    return mse


if __name__ == "__main__":
    main()
