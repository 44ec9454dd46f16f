"""Input checks and the feature encoding the tree kernels search.

Numeric columns are cast to float32, as scikit-learn does, so thresholds (midpoints of float32
values, in float64) and predictions agree with it. Categorical columns are compared as strings;
a missing entry there (None or NaN, as ``load_csv`` writes for an empty cell) is one category of
its own, shown as ``nan``, ordered after the strings. Numeric columns refuse NaN.
"""
import numbers

import numpy as np

from ..kernels.cpu import tree as kernels


class NotFittedError(ValueError, AttributeError):
    """An estimator was used before ``fit`` (scikit-learn's exception has the same two bases)."""


def check_is_fitted(estimator, attribute="tree_"):
    if not hasattr(estimator, attribute):
        raise NotFittedError(f"This {type(estimator).__name__} instance is not fitted yet; "
                             "call fit(X, y) before using it")


def as_2d(X, who):
    """X as a 2-D array: float64 when every entry is a number, else an object array."""
    if not isinstance(X, np.ndarray):
        try:
            X = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError):
            X = np.asarray(X, dtype=object)
    if X.ndim != 2:
        raise ValueError(f"{who}: expected X of shape (n_samples, n_features), got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{who}: X of shape {X.shape} has no samples or no features")
    return X


def categorical_mask(X, categorical_features, who):
    """Boolean mask of the categorical columns: the given indices or mask, else (None) the
    string columns (every column of a string array, or object columns holding a str)."""
    n_features = X.shape[1]
    if categorical_features is None:
        if X.dtype.kind in "US":
            return np.ones(n_features, bool)
        if X.dtype == object:
            return np.array([any(isinstance(v, (str, bytes)) for v in X[:, f]) for f in range(n_features)])
        return np.zeros(n_features, bool)
    given = np.asarray(categorical_features)
    if given.dtype == bool:
        if given.shape != (n_features,):
            raise ValueError(f"{who}: categorical_features mask has shape {given.shape}, X has "
                             f"{n_features} features")
        return given.copy()
    mask = np.zeros(n_features, bool)
    for f in given.ravel():
        if not isinstance(f, numbers.Integral) or not -n_features <= f < n_features:
            raise ValueError(f"{who}: categorical_features holds {f!r}, not a column index of X "
                             f"with {n_features} features")
        mask[f] = True
    return mask


def missing_mask(column):
    """Which entries of a column are missing: None or a float NaN (never a string)."""
    if column.dtype != object:
        return np.zeros(len(column), bool)
    return np.array([v is None or (isinstance(v, (float, np.floating)) and v != v) for v in column],
                    dtype=bool)


def numeric_column(column, f, who):
    """A column as float32; non-numeric entries or NaN/inf raise naming the column."""
    try:
        values = np.asarray(column, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{who}: column {f} holds non-numeric values (e.g. {column[0]!r}); list it "
                         "in categorical_features") from None
    if not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ValueError(f"{who}: X contains NaN or infinity (row {row}, column {f}, value "
                         f"{values[row]}); a numeric column takes no missing values, impute them first")
    return values


class FeatureEncoder:
    """Learns each column's distinct values (numeric) or categories from the training X.

    ``fit_encode(X)`` returns the kernels' (n_features, n_rows) int32 codes of X; ``transform(X)``
    the float64 matrix that tree traversal reads: numeric values through float32, categorical
    columns as the category index (-1 for a category not seen in training). ``categories[f]``
    lists a categorical column's sorted strings, then ``nan`` when it had missing entries.
    """

    def fit_encode(self, X, categorical, who):
        n_rows, n_features = X.shape
        self.n_features_in_, self.categorical = n_features, categorical
        self.categories = [None] * n_features
        numeric = np.flatnonzero(~categorical)
        columns = np.ascontiguousarray(self._numeric(X, numeric, who).T)
        values = [None] * n_features
        codes = np.empty((n_features, n_rows), np.int32)
        for j, f in enumerate(numeric):
            values[f] = np.unique(columns[j])
        for f in np.flatnonzero(categorical):
            missing = missing_mask(X[:, f])
            names, codes[f][~missing] = np.unique(X[~missing, f].astype(str), return_inverse=True)
            codes[f][missing] = len(names)
            self.categories[f] = np.append(names.astype(object), np.nan) if missing.any() else names
            values[f] = np.arange(len(self.categories[f]), dtype=np.float32)
        self.offsets = np.concatenate([[0], np.cumsum([len(v) for v in values])]).astype(np.int64)
        self.values = np.concatenate(values).astype(np.float32)
        if len(numeric):
            kernels.encode_numeric(columns, self.values, self.offsets, numeric, codes)
        return codes

    @property
    def n_codes(self):
        return np.diff(self.offsets)

    def transform(self, X, who):
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"{who}: X has shape {X.shape}, but the estimator was fitted with "
                             f"{self.n_features_in_} features")
        out = np.empty(X.shape, np.float64)
        numeric = np.flatnonzero(~self.categorical)
        out[:, numeric] = self._numeric(X, numeric, who)
        for f in np.flatnonzero(self.categorical):
            categories, missing = self.categories[f], missing_mask(X[:, f])
            # an object array of categories ends with the missing one (fit_encode)
            known = categories[:-1].astype(str) if categories.dtype == object else categories
            names = X[:, f].astype(str)
            index = np.minimum(np.searchsorted(known, names), max(len(known) - 1, 0))
            out[:, f] = np.where(known[index] == names, index, -1) if len(known) else -1
            out[missing, f] = len(known) if categories.dtype == object else -1
        return out

    @staticmethod
    def _numeric(X, columns, who):
        """The numeric columns as a float32 block (n_rows, len(columns))."""
        if X.dtype != object and X.dtype.kind not in "US":
            block = X[:, columns].astype(np.float32)
            if np.isfinite(block).all():
                return block
        if len(columns) == 0:
            return np.empty((X.shape[0], 0), np.float32)
        return np.stack([numeric_column(X[:, f], f, who) for f in columns], axis=1)
