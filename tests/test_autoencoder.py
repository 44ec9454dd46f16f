"""The autoencoder: ConvTranspose2d undoes the strided convolutions' sizes, and the training
script runs one epoch on a tiny synthetic IDX data set and writes its PNG grid."""
import importlib.util
import os

import numpy as np
import pytest

import minidl
from minidl.data import write_idx
from models.autoencoder import ConvAutoencoder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_autoencoder_keeps_the_image_shape():
    model = ConvAutoencoder()
    y = model(minidl.randn(2, 1, 28, 28))
    assert y.shape == (2, 1, 28, 28) and 0 < float(y.min()) and float(y.max()) < 1
    assert sum(p.numel() for p in model.parameters()) == 9569


def test_train_autoencoder_script_writes_the_grid(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 32), ("t10k", 8)):
        write_idx(str(tmp_path / f"{prefix}-images-idx3-ubyte"), rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(str(tmp_path / f"{prefix}-labels-idx1-ubyte"), (np.arange(n) % 10).astype(np.uint8))
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path))
    spec = importlib.util.spec_from_file_location("train_autoencoder",
                                                  os.path.join(ROOT, "scripts", "train_autoencoder.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = str(tmp_path / "grid.png")
    mse = script.main(["--epochs", "1", "--batch-size", "16", "--images", "4", "--out", out,
                       "--no-progress"])
    assert 0 < mse < 1
    assert f"image grid: {out}" in capsys.readouterr().out
    from matplotlib.image import imread
    image = imread(out)
    assert image.shape[0] > 150 and image.shape[1] > 300 and image.std() > 0.05
