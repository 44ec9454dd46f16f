"""Tabular data from CSV files, ready for the decision trees (``minidl.tree``).

    table = load_csv("weather.csv", target="Play")
    X, y, feature_names = table                      # a Table unpacks into these three
    DecisionTreeClassifier(criterion="entropy").fit(X, y)

A column is numeric when every non-empty cell parses as a number (empty cells become NaN);
otherwise it is categorical and its cells stay strings. X is a float64 array when every feature
is numeric, else an object array mixing floats and strings, which the trees split on directly
(string columns branch once per category).
"""
import csv
from dataclasses import dataclass

import numpy as np


@dataclass
class Table:
    """Features ``X`` (n_rows, n_features), target ``y``, their column names, and a boolean
    mask of the categorical features. Unpacks as ``X, y, feature_names = table``."""
    X: np.ndarray
    y: np.ndarray
    feature_names: list
    target_name: str
    categorical: np.ndarray

    def __iter__(self):
        return iter((self.X, self.y, self.feature_names))


def _parse_numeric(cells):
    """The cells as float64 (empty -> NaN), or None when one of them is not a number."""
    try:
        return np.array([float(c) if c.strip() else np.nan for c in cells], dtype=np.float64)
    except ValueError:
        return None


def load_csv(path, target=None, categorical=None, delimiter=","):
    """Read a CSV file with a header row into a ``Table``.

    ``target``: the column to predict, by name or index (default: the last column). A numeric
    target whose values are all whole numbers becomes int64 (class labels), another numeric one
    float64, a text one strings. ``categorical``: names or indices of columns to keep as strings
    even when they look numeric (codes such as zip codes).
    """
    with open(path, newline="") as f:
        rows = [row for row in csv.reader(f, delimiter=delimiter) if row]
    if not rows:
        raise ValueError(f"load_csv: {path} is empty")
    header, body = [name.strip() for name in rows[0]], rows[1:]
    if not body:
        raise ValueError(f"load_csv: {path} has a header but no data rows")
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ValueError(f"load_csv: {path} line {line} has {len(row)} fields, the header has {len(header)}")
    columns = [[row[j].strip() for row in body] for j in range(len(header))]

    def index(column, what):
        if isinstance(column, str):
            if column not in header:
                raise ValueError(f"load_csv: {what} column {column!r} is not in the header {header}")
            return header.index(column)
        if not -len(header) <= column < len(header):
            raise ValueError(f"load_csv: {what} column {column} is out of range for {len(header)} columns")
        return column % len(header)

    target_index = len(header) - 1 if target is None else index(target, "target")
    forced = {index(c, "categorical") for c in (categorical or ())}
    features = [j for j in range(len(header)) if j != target_index]
    parsed = [None if j in forced else _parse_numeric(columns[j]) for j in features]
    mask = np.array([p is None for p in parsed])
    if mask.any():
        X = np.empty((len(body), len(features)), dtype=object)
        for k, (j, numbers) in enumerate(zip(features, parsed)):
            X[:, k] = np.array(columns[j], dtype=object) if numbers is None else numbers
    else:
        X = np.stack(parsed, axis=1) if parsed else np.empty((len(body), 0))
    y = _parse_numeric(columns[target_index])
    if y is None or target_index in forced:
        y = np.array(columns[target_index])
    elif np.isfinite(y).all() and (y == np.round(y)).all():
        y = y.astype(np.int64)
    return Table(X, y, [header[j] for j in features], header[target_index], mask)
