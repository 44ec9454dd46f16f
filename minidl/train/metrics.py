"""Metrics as running sums: each returns (total, count) for one batch; the epoch value is
sum(total) / sum(count), exact whatever the batch sizes."""
import numpy as np


def accuracy(output, target):
    """Share of rows whose largest output is the target class."""
    return float(np.sum(np.argmax(output, axis=-1) == target)), len(target)


METRICS = {"accuracy": accuracy}


def resolve(metric):
    if callable(metric):
        return metric.__name__, metric
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)} (or pass a function)")
    return metric, METRICS[metric]
