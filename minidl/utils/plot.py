"""Pictures of a training run: ``plot_history`` (loss and metrics per epoch),
``plot_confusion_matrix`` and ``plot_image_grid`` (rows of images), as PNG files;
``confusion_matrix`` itself needs NumPy only.

matplotlib is an optional extra (``pip install 'minidl[plot]'``), imported on first use. Figures
are drawn on matplotlib's ``Figure`` directly, never through pyplot: nothing opens a window, and
the backend of a notebook or an application that imports minidl is left as it is.
"""
import numpy as np


def _matplotlib():
    """matplotlib's ``Figure`` class and ``ticker`` module, or an ImportError naming the extra."""
    try:
        from matplotlib import ticker
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("minidl.utils plotting needs matplotlib: pip install 'minidl[plot]'") from None
    return Figure, ticker


def plot_history(history, path):
    """Write a PNG at ``path``: one panel per quantity (loss, then each metric) against the
    epoch, the training curve and the validation curve (its ``val_`` key) on the same axes.
    ``history`` is ``{name: [value per epoch]}``, as ``Trainer.fit`` returns. Returns ``path``."""
    if not history or not any(len(values) for values in history.values()):
        raise ValueError("plot_history: the history is empty; train at least one epoch first")
    quantities = list(dict.fromkeys(name[4:] if name.startswith("val_") else name for name in history))
    Figure, ticker = _matplotlib()
    figure = Figure(figsize=(4.5 * len(quantities), 3.5), layout="constrained")
    for axes, quantity in zip(figure.subplots(1, len(quantities), squeeze=False)[0], quantities):
        for key, label in ((quantity, "train"), ("val_" + quantity, "validation")):
            if key in history:
                values = np.asarray(history[key], dtype=np.float64)
                axes.plot(np.arange(1, len(values) + 1), values, marker="o", label=label)
        axes.set_title(quantity)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend()
    figure.savefig(path, dpi=100)
    return path


def confusion_matrix(y_true, y_pred, num_classes):
    """Counts ``C[i, j]`` of samples of true class i predicted as class j (rows: truth), as an
    int64 (num_classes, num_classes) array."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"confusion_matrix: num_classes must be a positive int, got {num_classes!r}")
    y_true = np.asarray(y_true).reshape(-1)
    y_pred = np.asarray(y_pred).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"confusion_matrix: y_true has {y_true.size} labels, y_pred {y_pred.size}")
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(f"confusion_matrix: {name} must hold integer class labels, got {labels.dtype}")
        outside = labels[(labels < 0) | (labels >= num_classes)]
        if outside.size:
            raise ValueError(f"confusion_matrix: {name} holds label {outside[0]}, outside "
                             f"0..{num_classes - 1} (num_classes={num_classes})")
    flat = np.bincount(y_true.astype(np.int64) * num_classes + y_pred.astype(np.int64),
                       minlength=num_classes ** 2)
    return flat.reshape(num_classes, num_classes)


def plot_confusion_matrix(y_true, y_pred, class_names, path):
    """Write a PNG at ``path`` of the confusion matrix (rows: true class, columns: predicted),
    each cell shaded by its share of the true class and labelled with its count. Returns the
    matrix (``confusion_matrix(y_true, y_pred, len(class_names))``)."""
    matrix = confusion_matrix(y_true, y_pred, len(class_names))
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = 2.5 + 0.6 * len(class_names)
    Figure, _ = _matplotlib()
    figure = Figure(figsize=(size + 1, size), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, label="share of the true class")
    ticks = np.arange(len(class_names))
    axes.set_xticks(ticks, [str(name) for name in class_names], rotation=45, ha="right")
    axes.set_yticks(ticks, [str(name) for name in class_names])
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    axes.set_title(f"accuracy {accuracy:.4f} on {matrix.sum()} samples")
    for (i, j), count in np.ndenumerate(matrix):
        axes.text(j, i, str(count), ha="center", va="center", fontsize=8,
                  color="white" if shares[i, j] > 0.5 else "black")
    figure.savefig(path, dpi=100)
    return matrix


def plot_image_grid(rows, path, row_labels=None):
    """Write a PNG at ``path`` of grey images in a grid: one grid row per entry of ``rows``
    (each an array or Tensor of n images, (n, H, W) or (n, 1, H, W)), labelled by
    ``row_labels`` (e.g. "original", "reconstruction"). Returns ``path``."""
    rows = [np.asarray(getattr(row, "array", row), dtype=np.float64) for row in rows]
    rows = [row[:, 0] if row.ndim == 4 and row.shape[1] == 1 else row for row in rows]
    if not rows or any(row.ndim != 3 for row in rows) or len({len(row) for row in rows}) != 1:
        raise ValueError(f"plot_image_grid: expected rows of equally many (n, H, W) or (n, 1, H, W) "
                         f"images, got shapes {[row.shape for row in rows]}")
    if row_labels is not None and len(row_labels) != len(rows):
        raise ValueError(f"plot_image_grid: {len(row_labels)} labels for {len(rows)} rows")
    Figure, _ = _matplotlib()
    n_rows, n_cols = len(rows), len(rows[0])
    figure = Figure(figsize=(1.2 * n_cols + 0.8, 1.3 * n_rows), layout="constrained")
    grid = figure.subplots(n_rows, n_cols, squeeze=False)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            axes = grid[r, c]
            axes.imshow(image, cmap="gray", vmin=min(0.0, image.min()), vmax=max(1.0, image.max()))
            axes.set_xticks([])
            axes.set_yticks([])
        if row_labels is not None:
            grid[r, 0].set_ylabel(str(row_labels[r]))
    figure.savefig(path, dpi=100)
    return path
