"""Tabular data from CSV files, ready for the decision trees (``minidl.tree``).

    table = load_csv("weather.csv", target="Play")
    X, y, feature_names = table                      # a Table unpacks into these three
    DecisionTreeClassifier(criterion="entropy").fit(X, y)

A column is numeric when every non-empty cell parses as a number; otherwise it is categorical
and its cells stay strings. X is a float64 array when every feature is numeric, else an object
array mixing floats and strings, which the trees split on directly (string columns branch once
per category).

Missing values: an empty (or all-blank) cell is missing, and a missing feature is ``np.nan`` in
every column, numeric or categorical. The trees refuse NaN in a numeric column (impute it first)
and treat NaN (or None) in a categorical column as one category of its own, ``nan``. A missing
target is an error naming its line.
"""
import csv
import io
from dataclasses import dataclass

import numpy as np

_WHOLE = 2 ** 53  # whole floats up to here are exact integers; beyond, a target stays float64


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
        return np.array([float(c) if c else np.nan for c in cells], dtype=np.float64)
    except ValueError:
        return None


def _read_rows(path, delimiter, encoding):
    """The non-blank rows of the file and the line each starts on."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode(encoding)
    except LookupError:
        raise ValueError(f"load_csv: encoding={encoding!r} is not an encoding Python knows") from None
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        raise ValueError(f"load_csv: {path} line {line} (byte {column} of the line) is not valid "
                         f"{encoding} ({error.reason}); pass the file's encoding, e.g. "
                         "encoding='latin-1'") from None
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), delimiter=delimiter)
    rows, lines, start = [], [], 1
    try:
        for row in reader:
            if len(row) > 1 or (row and row[0].strip()):  # not a blank line
                rows.append([cell.strip() for cell in row])
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as error:
        raise ValueError(f"load_csv: {path} line {reader.line_num}: {error}; csv.field_size_limit(n) "
                         "allows longer fields") from None
    return rows, lines


def load_csv(path, target=None, categorical=None, delimiter=",", encoding="utf-8"):
    """Read a CSV file with a header row into a ``Table``.

    ``target``: the column to predict, by name or index (default: the last column). A numeric
    target whose values are all whole numbers of magnitude up to 2**53 becomes int64 (class
    labels), another numeric one float64, a text one strings. ``categorical``: names or indices of
    columns to keep as strings even when they look numeric (codes such as zip codes).
    ``encoding``: the file's text encoding; a UTF-8 byte-order mark is dropped.

    Cells are stripped of surrounding blanks; blank lines are skipped; an empty cell is missing
    (see the module docstring). Column names must be unique and non-empty, except that an
    unnamed last column with every cell empty (a trailing delimiter on each line) is dropped.
    Errors name the file and the line or column at fault.
    """
    rows, lines = _read_rows(path, delimiter, encoding)
    if not rows:
        raise ValueError(f"load_csv: {path} is empty")
    header, body = rows[0], rows[1:]
    if not body:
        raise ValueError(f"load_csv: {path} has a header but no data rows")
    for line, row in zip(lines[1:], body):
        if len(row) != len(header):
            raise ValueError(f"load_csv: {path} line {line} has {len(row)} fields, the header has {len(header)}")
    columns = [[row[j] for row in body] for j in range(len(header))]
    if header[-1] == "" and not any(columns[-1]):
        header, columns = header[:-1], columns[:-1]
    for j, name in enumerate(header):
        if name == "":
            raise ValueError(f"load_csv: {path} column {j + 1} has no name in the header (line "
                             f"{lines[0]}); name it, or remove it")
        if header.index(name) != j:
            raise ValueError(f"load_csv: {path} has two columns named {name!r} (columns "
                             f"{header.index(name) + 1} and {j + 1}); column names must be unique")

    def index(column, what):
        if isinstance(column, str):
            if column not in header:
                raise ValueError(f"load_csv: {path}: {what} column {column!r} is not in the header {header}")
            return header.index(column)
        if not -len(header) <= column < len(header):
            raise ValueError(f"load_csv: {path}: {what} column {column} is out of range for {len(header)} "
                             "columns")
        return column % len(header)

    target_index = len(header) - 1 if target is None else index(target, "target")
    forced = {index(c, "categorical") for c in (categorical or ())}
    if "" in columns[target_index]:
        line = lines[1 + columns[target_index].index("")]
        raise ValueError(f"load_csv: {path} line {line}: the target {header[target_index]!r} (column "
                         f"{target_index + 1}) is empty; drop the rows without a target")
    features = [j for j in range(len(header)) if j != target_index]
    parsed = [None if j in forced else _parse_numeric(columns[j]) for j in features]
    mask = np.array([p is None for p in parsed])
    if mask.any():
        X = np.empty((len(body), len(features)), dtype=object)
        for k, (j, numbers) in enumerate(zip(features, parsed)):
            X[:, k] = [c if c else np.nan for c in columns[j]] if numbers is None else numbers
    else:
        X = np.stack(parsed, axis=1) if parsed else np.empty((len(body), 0))
    y = _parse_numeric(columns[target_index])
    if y is None or target_index in forced:
        y = np.array(columns[target_index])
    elif np.isfinite(y).all() and (y == np.round(y)).all() and np.abs(y).max() <= _WHOLE:
        y = y.astype(np.int64)
    return Table(X, y, [header[j] for j in features], header[target_index], mask)
