"""Pictures of training: plot_history and plot_confusion_matrix write PNGs that are read back
and looked at (size, curves in their colours on a white page); confusion_matrix against
scikit-learn; the scripts' --plot, --confusion (train_fashion, on tiny IDX files) and --plot
(train_tree, through Graphviz's dot). Plot tests skip where matplotlib is not installed."""
import importlib.util
import os
import shutil
import sys

import numpy as np
import pytest

from minidl.data.idx import write_idx
from minidl.utils import confusion_matrix, plot_confusion_matrix, plot_history

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="matplotlib is not installed (pip install 'minidl[plot]')")

HISTORY = {"loss": [1.2, 0.8, 0.6, 0.5], "accuracy": [0.5, 0.7, 0.8, 0.85],
           "val_loss": [1.0, 0.9, 0.85, 0.9], "val_accuracy": [0.6, 0.65, 0.7, 0.7]}


def _image(path):
    from matplotlib.image import imread
    image = imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    return image[:, :, :3]


def _pixels_near(image, hex_colour, tolerance=0.08):
    rgb = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return int(np.sum(np.all(np.abs(image - rgb) < tolerance, axis=2)))


@needs_matplotlib
def test_plot_history_draws_train_and_validation_curves_per_quantity(tmp_path):
    path = str(tmp_path / "curves.png")
    assert plot_history(HISTORY, path) == path
    image = _image(path)
    height, width = image.shape[:2]
    assert (height, width) == (350, 900)  # two panels (loss, accuracy) of 4.5 x 3.5 inches at 100 dpi
    assert np.mean(np.all(image > 0.95, axis=2)) > 0.5, "mostly white page"
    # matplotlib's first two colours: train (C0, blue) and validation (C1, orange), in both panels
    for colour in ("#1f77b4", "#ff7f0e"):
        for half in (image[:, :width // 2], image[:, width // 2:]):
            assert _pixels_near(half, colour) > 100, f"no {colour} curve in a panel"


@needs_matplotlib
def test_plot_history_without_validation_and_of_one_epoch(tmp_path):
    path = str(tmp_path / "one.png")
    plot_history({"loss": [0.7]}, path)
    image = _image(path)
    assert image.shape[:2] == (350, 450)
    assert _pixels_near(image, "#1f77b4") > 10  # the single epoch's marker
    assert _pixels_near(image, "#ff7f0e") < 10  # the legend's validation entry is absent too


def test_plot_history_refuses_an_empty_history(tmp_path):
    with pytest.raises(ValueError, match="history is empty"):
        plot_history({}, str(tmp_path / "x.png"))


def test_a_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails as if absent
    with pytest.raises(ImportError, match=r"pip install 'minidl\[plot\]'"):
        plot_history(HISTORY, str(tmp_path / "x.png"))


def test_confusion_matrix_counts_and_checks_labels():
    y_true = np.array([0, 1, 2, 2, 1, 0, 2])
    y_pred = np.array([0, 2, 2, 2, 1, 1, 0])
    expected = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 2]])
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, 3), expected)
    assert confusion_matrix(y_true, y_pred, 4).shape == (4, 4)
    assert confusion_matrix([], [], 2).sum() == 0
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    np.testing.assert_array_equal(confusion_matrix(a, b, 5), sklearn.confusion_matrix(a, b, labels=range(5)))
    with pytest.raises(ValueError, match="y_pred holds label 3, outside 0..2"):
        confusion_matrix([0, 1], [0, 3], 3)
    with pytest.raises(ValueError, match="y_true has 2 labels, y_pred 3"):
        confusion_matrix([0, 1], [0, 1, 1], 3)
    with pytest.raises(TypeError, match="y_true must hold integer class labels"):
        confusion_matrix([0.5, 1.0], [0, 1], 3)


@needs_matplotlib
def test_plot_confusion_matrix_png(tmp_path):
    path = str(tmp_path / "confusion.png")
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 100)
    y_pred = np.where(rng.random(100) < 0.8, y_true, rng.integers(0, 4, 100))
    matrix = plot_confusion_matrix(y_true, y_pred, ["a", "b", "c", "d"], path)
    np.testing.assert_array_equal(matrix, confusion_matrix(y_true, y_pred, 4))
    image = _image(path)
    assert min(image.shape[:2]) >= 400
    dark_blue = np.sum((image[:, :, 2] > 0.3) & (image[:, :, 0] < 0.2))  # the diagonal's cells
    assert dark_blue > 1000


# ---------------------------------------------------------------- the scripts

def _script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_fashion(directory):
    """60 training and 20 test images: class k lights rows 2k..2k+5 (learnable in two epochs)."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 20)):
        labels = np.arange(n, dtype=np.uint8) % 10
        images = rng.integers(0, 60, (n, 28, 28), dtype=np.uint8)
        for i, k in enumerate(labels):
            images[i, 2 * k:2 * k + 6] = 250
        write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte"), images)
        write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte"), labels)


@needs_matplotlib
def test_train_fashion_writes_curves_confusion_and_logs(tmp_path, capsys):
    _tiny_fashion(str(tmp_path))
    curves, confusion, log = (str(tmp_path / name) for name in ("c.png", "m.png", "log.csv"))
    _script("train_fashion").main(["--data", str(tmp_path), "--epochs", "2", "--batch-size", "10",
                                   "--no-progress", "--plot", curves, "--confusion", confusion,
                                   "--csv-log", log, "--tensorboard", str(tmp_path / "tb")])
    assert _pixels_near(_image(curves), "#1f77b4") > 100 and _pixels_near(_image(curves), "#ff7f0e") > 100
    assert min(_image(confusion).shape[:2]) >= 400
    assert open(log).read().splitlines()[0] == "epoch,loss,accuracy,val_loss,val_accuracy"
    assert os.listdir(tmp_path / "tb") != []
    assert f"confusion matrix: {confusion}" in capsys.readouterr().out


def _weather_csv(path):
    rows = ["Outlook,Humidity,Wind,Play"]
    rows += [f"{o},{h},{w},{'yes' if (o == 'overcast' or (o == 'sunny') == (h < 75)) else 'no'}"
             for o in ("sunny", "overcast", "rain") for h in (65, 70, 80, 90) for w in ("weak", "strong")]
    path.write_text("\n".join(rows) + "\n")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_train_tree_draws_the_tree_with_graphviz(tmp_path):
    csv_path, png = tmp_path / "weather.csv", str(tmp_path / "tree.png")
    _weather_csv(csv_path)
    _script("train_tree").main(["--csv", str(csv_path), "--plot", png])
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    if importlib.util.find_spec("matplotlib") is not None:
        image = _image(png)
        assert image.shape[0] > 100 and np.mean(image < 0.5) > 0.005  # boxes and text on white


def test_train_tree_plot_without_graphviz_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot there
    csv_path = tmp_path / "weather.csv"
    _weather_csv(csv_path)
    with pytest.raises(SystemExit):
        _script("train_tree").main(["--csv", str(csv_path), "--plot", str(tmp_path / "tree.png")])
    assert "apt-get install graphviz" in capsys.readouterr().err
