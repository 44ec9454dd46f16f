"""Decision trees: CART (gini, squared error), ID3 (entropy), C4.5 (gain ratio).

For a node S with class proportions p_k, split into children S_j:

    Entropy(S) = -sum_k p_k log2 p_k                 Gini(S) = 1 - sum_k p_k^2
    Gain(S, A) = Entropy(S) - sum_j |S_j|/|S| Entropy(S_j)            (ID3's information gain)
    SplitInfo(S, A) = -sum_j |S_j|/|S| log2(|S_j|/|S|)
    GainRatio(S, A) = Gain(S, A) / SplitInfo(S, A)                    (C4.5)

Numeric features split in two at a threshold (midpoint of consecutive distinct values, as CART);
categorical features split into one branch per category (ID3 / C4.5). The tree grows depth
first and replays scikit-learn's feature sampling (its random generator, visit order and
constant-feature bookkeeping), so with the same ``random_state`` and numeric data it grows the
same tree as ``sklearn.tree.DecisionTreeClassifier`` / ``DecisionTreeRegressor``.
"""
import inspect
import math
import numbers
from dataclasses import dataclass

import numba
import numpy as np

from ..kernels.cpu import tree as kernels
from .features import FeatureEncoder, NotFittedError, as_2d, categorical_mask, check_is_fitted

CRITERIA = {"gini": kernels.GINI, "entropy": kernels.ENTROPY, "gain_ratio": kernels.GAIN_RATIO,
            "squared_error": kernels.SQUARED_ERROR}
EPSILON = np.finfo(np.float64).eps


def entropy(counts):
    """Entropy(S) = -sum_k p_k log2 p_k of class counts (3 positives of 5: 0.971)."""
    return kernels.impurity(np.asarray(counts, np.float64), kernels.ENTROPY)


def gini(counts):
    """Gini(S) = 1 - sum_k p_k^2 of class counts."""
    return kernels.impurity(np.asarray(counts, np.float64), kernels.GINI)


@dataclass
class Tree:
    """A fitted tree as arrays over nodes (node 0 is the root; leaves have children_left -1).

    Numeric node: ``x[feature] <= threshold`` goes to ``children_left``, else ``children_right``.
    Categorical node (``branch_start >= 0``): category c goes to ``branches[branch_start + c]``;
    a category absent from the node in training (branch -1) goes to ``children_left``, the
    largest branch. ``value`` holds class counts (classifier) or the mean target (regressor).
    """
    feature: np.ndarray
    threshold: np.ndarray
    children_left: np.ndarray
    children_right: np.ndarray
    branch_start: np.ndarray
    branches: np.ndarray
    value: np.ndarray
    impurity: np.ndarray
    n_node_samples: np.ndarray
    n_categories: np.ndarray  # per feature (numeric features: their distinct value count)
    max_depth: int

    @property
    def node_count(self):
        return len(self.feature)

    @property
    def n_leaves(self):
        return int((self.children_left < 0).sum())

    def children(self, node):
        """[(category index or None, child)]: left then right, or one entry per category."""
        if self.children_left[node] < 0:
            return []
        if self.branch_start[node] < 0:
            return [(None, self.children_left[node]), (None, self.children_right[node])]
        n_categories = self.n_categories[self.feature[node]]
        row = self.branches[self.branch_start[node]:self.branch_start[node] + n_categories]
        return [(c, int(child)) for c, child in enumerate(row) if child >= 0]

    def apply(self, X):
        return kernels.apply_tree(X, self.feature, self.threshold, self.children_left,
                                  self.children_right, self.branch_start, self.branches)


class _TreeGrower:
    """Grows one tree depth first on encoded data (``FeatureEncoder`` codes)."""

    def __init__(self, encoder, codes, y, n_classes, criterion, max_depth, min_samples_split,
                 min_samples_leaf, min_impurity_decrease, max_features, seed):
        self.encoder, self.codes, self.y, self.n_classes = encoder, codes, y, n_classes
        self.criterion = criterion
        self.classification = criterion != kernels.SQUARED_ERROR
        self.max_depth, self.min_samples_split = max_depth, min_samples_split
        self.min_samples_leaf, self.min_impurity_decrease = min_samples_leaf, min_impurity_decrease
        self.max_features = max_features
        n_features = codes.shape[0]
        self.features = np.arange(n_features, dtype=np.int64)
        self.constant_features = np.empty(n_features, np.int64)
        self.state = np.array([seed], np.int64)
        self.root_scores = np.full(n_features, -np.inf)

    def grow(self, samples):
        samples = np.array(samples, dtype=np.int64)
        n_total = len(samples)
        counts = np.arange(n_total + 1, dtype=np.float64)
        self.clog = counts * np.log2(np.maximum(counts, 1))  # m log2 m, 0 for m = 0
        self.samples, self.n_total = samples, n_total
        nodes = {k: [] for k in ("feature", "threshold", "left", "right", "branch_start", "value",
                                 "impurity", "n_samples")}
        branches = []
        max_depth_seen = 0
        # (start, end, depth, parent, link, n_known_constants, stats); link: "left", "right", or
        # the category index of the parent's branch (with a flag: the parent's largest branch).
        stack = [(0, n_total, 0, -1, None, 0, self._stats(0, n_total))]
        while stack:
            start, end, depth, parent, link, n_known, (value, impurity) = stack.pop()
            node = len(nodes["feature"])
            if parent >= 0:
                if link in ("left", "right"):
                    nodes[link][parent] = node
                else:
                    category, largest = link
                    branches[nodes["branch_start"][parent] + category] = node
                    if largest:
                        nodes["left"][parent] = node
            max_depth_seen = max(max_depth_seen, depth)
            n_node = end - start
            split = None
            if not (depth >= self.max_depth or n_node < self.min_samples_split
                    or n_node < 2 * self.min_samples_leaf or impurity <= EPSILON):
                split, n_constant = self._split(start, end, n_known, impurity)
            for key, item in zip(nodes, (-2, -2.0, -1, -1, -1, value, impurity, n_node)):
                nodes[key].append(item)
            if split is None:
                continue
            feature, threshold, present, sizes, children_stats = split
            nodes["feature"][node] = feature
            bounds = np.concatenate([[start], start + np.cumsum(sizes)])
            if present is None:
                nodes["threshold"][node] = threshold
                links = ["left", "right"]
            else:
                nodes["branch_start"][node] = len(branches)
                branches.extend([-1] * self.encoder.n_codes[feature])
                largest = int(np.argmax(sizes))
                links = [(int(c), g == largest) for g, c in enumerate(present)]
            for g in reversed(range(len(sizes))):
                stack.append((bounds[g], bounds[g + 1], depth + 1, node, links[g], n_constant,
                              children_stats[g]))
        return Tree(*(np.array(nodes[k], dtype) for k, dtype in (
            ("feature", np.int64), ("threshold", np.float64), ("left", np.int64), ("right", np.int64),
            ("branch_start", np.int64))), np.array(branches, np.int64),
            np.array(nodes["value"], np.float64), np.array(nodes["impurity"], np.float64),
            np.array(nodes["n_samples"], np.int64), self.encoder.n_codes, max_depth_seen)

    def _stats(self, start, end):
        """(value, impurity) of samples[start:end]: class counts and entropy/gini, or the mean
        target and the squared error mean(y^2) - mean(y)^2."""
        rows = self.samples[start:end]
        if self.classification:
            counts = np.bincount(self.y[rows], minlength=self.n_classes).astype(np.float64)
            impurity_kind = kernels.GINI if self.criterion == kernels.GINI else kernels.ENTROPY
            return counts, kernels.impurity(counts, impurity_kind)
        targets = self.y[rows]
        n, total = len(rows), targets.sum()
        return np.array([total / n]), (targets * targets).sum() / n - (total / n) ** 2

    def _split(self, start, end, n_known, impurity):
        """The chosen split of samples[start:end], rows reordered into its children: (feature,
        threshold, categories present (categorical) or None, child sizes, child stats); or None.
        Also the constant-feature count for the children."""
        encoder, n_features = self.encoder, self.codes.shape[0]
        score = np.full(n_features, -np.inf)
        left_code = np.full(n_features, -1, np.int64)
        right_code = np.full(n_features, -1, np.int64)
        constant = np.full(n_features, -1, np.int8)
        args = (self.codes, self.samples, start, end)
        if self.max_features >= n_features:  # every feature gets searched: do it before drawing
            self._search(args, self.features[n_known:].copy(), score, left_code, right_code, constant)
        visited, n_constant = kernels.draw_features(
            self.features, self.constant_features, n_known, self.max_features, self.state, constant,
            *args, encoder.values, encoder.offsets, encoder.categorical)
        if self.max_features < n_features:
            self._search(args, visited, score, left_code, right_code, constant)
        if start == 0 and end == self.n_total:
            self.root_scores = score.copy()
        feature = self._choose(visited, score, left_code, right_code, start, end)
        if feature is None:
            return None, n_constant
        feature, low, high = feature
        codes_row = self.codes[feature]
        threshold, present = None, None
        if encoder.categorical[feature]:
            present = np.unique(codes_row[self.samples[start:end]])
            group_of_code = np.full(encoder.n_codes[feature], -1, np.int64)
            group_of_code[present] = np.arange(len(present))
        else:
            values = encoder.values[encoder.offsets[feature]:encoder.offsets[feature + 1]]
            threshold = float(values[low]) / 2.0 + float(values[high]) / 2.0
            group_of_code = (np.arange(encoder.n_codes[feature]) > low).astype(np.int64)
        sizes = kernels.partition(self.samples, start, end, codes_row, group_of_code,
                                  int(group_of_code.max()) + 1)
        bounds = start + np.concatenate([[0], np.cumsum(sizes)])
        children = [self._stats(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
        # scikit-learn's improvement: N_t / N * (impurity - sum_j N_j / N_t * impurity_j)
        n_node = end - start
        decrease = impurity
        for size, (_, child_impurity) in zip(reversed(sizes), reversed(children)):
            decrease -= size / n_node * child_impurity
        if n_node / self.n_total * decrease + EPSILON < self.min_impurity_decrease:
            return None, n_constant
        return (feature, threshold, present, sizes, children), n_constant

    def _search(self, args, features, score, left_code, right_code, constant):
        encoder = self.encoder
        if self.classification:
            kernels.search_splits(*args, self.y, self.n_classes, features, encoder.values,
                                  encoder.offsets, encoder.categorical, self.criterion,
                                  self.min_samples_leaf, self.clog, numba.get_num_threads(), score,
                                  left_code, right_code, constant)
        else:
            kernels.search_splits_regression(*args, self.y, features, encoder.values, encoder.offsets,
                                             encoder.categorical, self.min_samples_leaf, score,
                                             left_code, right_code, constant)

    def _choose(self, visited, score, left_code, right_code, start, end):
        """(feature, last left code, first right code) of the best split; the first in visit
        order among equals. For gini and entropy, the candidates within a rounding band of the
        best fast score are re-scored with scikit-learn's formula so that ties break alike."""
        if len(visited) == 0 or score[visited].max() == -np.inf:
            return None
        scores = score[visited]
        if self.criterion not in (kernels.GINI, kernels.ENTROPY):
            f = visited[np.argmax(scores)]
            return f, left_code[f], right_code[f]
        floor = scores.max() - 1e-7 * (end - start)  # far wider than the rounding error
        best, chosen = -np.inf, None
        encoder = self.encoder
        for f in visited[scores >= floor]:
            values = encoder.values[encoder.offsets[f]:encoder.offsets[f + 1]]
            exact, low, high = kernels.exact_split(self.codes[f], self.samples, start, end, self.y,
                                                   self.n_classes, values, encoder.categorical[f],
                                                   self.criterion, self.min_samples_leaf, self.clog, floor)
            if exact > best:
                best, chosen = exact, (f, low, high)
        return chosen


def check_random_state(random_state, who):
    """None: numpy's global RandomState; an int in [0, 2**32): a new RandomState(seed); a
    RandomState: itself; a numpy Generator: a RandomState drawing from (and advancing) its bits."""
    if random_state is None:
        return np.random.mtrand._rand
    if isinstance(random_state, np.random.RandomState):
        return random_state
    if isinstance(random_state, np.random.Generator):
        return np.random.RandomState(random_state.bit_generator)
    if _is_int(random_state) and 0 <= random_state < 2 ** 32:
        return np.random.RandomState(random_state)
    raise ValueError(f"{who}: random_state must be None, an int in [0, 2**32), a numpy RandomState or "
                     f"Generator, got {random_state!r}")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_fraction(value):
    """A float (not an int) in (0, 1]."""
    return isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and 0.0 < value <= 1.0


def _type_names(values):
    return ", ".join(sorted({type(v).__name__ for v in values}))


def _check_label_types(labels, who):
    """Class labels must be all strings or all numbers (scikit-learn: "Labels are of mixed type")."""
    kinds = {"str" if isinstance(v, (str, bytes)) else "number" if isinstance(v, numbers.Number) else "other"
             for v in labels}
    if len(kinds) > 1:
        raise ValueError(f"{who}: labels in y are of mixed type ({_type_names(labels)}); use all strings "
                         "or all numbers")


class _BaseTree:
    """Parameters, checks, fitting and the tree-level queries shared by both estimators."""
    _criteria = ()

    def __init__(self, criterion, max_depth, min_samples_split, min_samples_leaf,
                 min_impurity_decrease, max_features, random_state, categorical_features):
        self.criterion = criterion
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.min_impurity_decrease = min_impurity_decrease
        self.max_features = max_features
        self.random_state = random_state
        self.categorical_features = categorical_features

    def get_params(self, deep=True):
        return {name: getattr(self, name) for name in inspect.signature(type(self).__init__).parameters
                if name != "self"}

    def set_params(self, **params):
        for name, value in params.items():
            if name not in self.get_params():
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    def _who(self, method):
        return f"{type(self).__name__}.{method}"

    def fit(self, X, y):
        """Grow the tree on X (n_samples, n_features) and targets y (n_samples,). X may mix numeric
        and string columns (an object array). A numeric column must hold no NaN (impute missing
        values first); in a categorical column NaN or None is a category of its own."""
        who = self._who("fit")
        X = as_2d(X, who)
        y = self._check_y(X, y, who)
        encoder = FeatureEncoder()
        codes = encoder.fit_encode(X, categorical_mask(X, self.categorical_features, who), who)
        return self._fit_encoded(encoder, codes, y, np.arange(X.shape[0]))

    def _fit_encoded(self, encoder, codes, y, samples):
        """Grow on rows ``samples`` (repeats allowed) of already encoded data; ``y`` encoded."""
        who = self._who("fit")
        params = self._check_params(who, len(samples), codes.shape[0])
        seed = check_random_state(self.random_state, who).randint(0, kernels.RAND_R_MAX)
        grower = _TreeGrower(encoder, codes, y, getattr(self, "n_classes_", 0), *params, seed)
        self.tree_ = grower.grow(samples)
        self.encoder_ = encoder
        self.n_features_in_ = codes.shape[0]
        self.root_scores_ = grower.root_scores
        return self

    def _check_params(self, who, n_samples, n_features):
        """The hyperparameters, checked at fit time as scikit-learn does and resolved for the grower:
        (criterion code, max_depth, min_samples_split, min_samples_leaf, min_impurity_decrease,
        number of features drawn per split)."""
        if not isinstance(self.criterion, str) or self.criterion not in self._criteria:
            raise ValueError(f"{who}: criterion must be one of {self._criteria}, got {self.criterion!r}")
        if self.max_depth is None:
            max_depth = np.iinfo(np.int32).max
        elif _is_int(self.max_depth) and self.max_depth >= 1:
            max_depth = int(self.max_depth)
        else:
            raise ValueError(f"{who}: max_depth must be an int >= 1 or None, got {self.max_depth!r}")
        min_samples_leaf = self._count(self.min_samples_leaf, 1, n_samples, "min_samples_leaf", who)
        min_samples_split = max(self._count(self.min_samples_split, 2, n_samples, "min_samples_split", who),
                                2 * min_samples_leaf)
        decrease = self.min_impurity_decrease
        if isinstance(decrease, bool) or not isinstance(decrease, numbers.Real) or not decrease >= 0:
            raise ValueError(f"{who}: min_impurity_decrease must be a number >= 0, got {decrease!r}")
        return (CRITERIA[self.criterion], max_depth, min_samples_split, min_samples_leaf, float(decrease),
                self._max_features(n_features, who))

    @staticmethod
    def _count(value, minimum, n_samples, name, who):
        """An int parameter, or a float fraction of the samples (scikit-learn's rule)."""
        if _is_int(value) and value >= minimum:
            return int(value)
        if _is_fraction(value):
            return max(minimum, math.ceil(value * n_samples))
        raise ValueError(f"{who}: {name} must be an int >= {minimum} or a float in (0, 1], got {value!r}")

    def _max_features(self, n_features, who):
        mf = self.max_features
        if mf is None:
            return n_features
        if isinstance(mf, str) and mf in ("sqrt", "log2"):
            return max(1, int((np.sqrt if mf == "sqrt" else np.log2)(n_features)))
        if _is_int(mf) and 1 <= mf <= n_features:
            return int(mf)
        if _is_fraction(mf):
            return max(1, int(mf * n_features))
        raise ValueError(f"{who}: max_features must be None, 'sqrt', 'log2', an int in "
                         f"[1, {n_features}] or a float in (0, 1], got {mf!r}")

    def _check_y(self, X, y, who):
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"{who}: expected y of shape (n_samples,), got shape {y.shape}")
        if len(y) != X.shape[0]:
            raise ValueError(f"{who}: X has {X.shape[0]} samples (shape {X.shape}) but y has {len(y)} "
                             f"(shape {y.shape})")
        return y

    def _leaves(self, X, method):
        check_is_fitted(self)
        who = self._who(method)
        return self.tree_.apply(self.encoder_.transform(as_2d(X, who), who))

    def apply(self, X):
        """Index of the leaf each row of X lands in."""
        return self._leaves(X, "apply")

    def get_depth(self):
        check_is_fitted(self)
        return self.tree_.max_depth

    def get_n_leaves(self):
        check_is_fitted(self)
        return self.tree_.n_leaves

    @property
    def feature_importances_(self):
        """Each feature's total impurity decrease, sum over its nodes of
        N_t Imp(t) - sum_j N_j Imp(j), divided by the total (they sum to 1)."""
        check_is_fitted(self)
        tree = self.tree_
        importances = np.zeros(self.n_features_in_)
        for node in np.flatnonzero(tree.children_left >= 0):
            decrease = tree.n_node_samples[node] * tree.impurity[node]
            for _, child in tree.children(node):
                decrease -= tree.n_node_samples[child] * tree.impurity[child]
            importances[tree.feature[node]] += decrease
        total = importances.sum()
        return importances / total if total > 0 else importances

    def export_text(self, feature_names=None, **kwargs):
        from .export import export_text
        return export_text(self, feature_names=feature_names, **kwargs)

    def export_graphviz(self, feature_names=None, **kwargs):
        from .export import export_graphviz
        return export_graphviz(self, feature_names=feature_names, **kwargs)


class DecisionTreeClassifier(_BaseTree):
    """A classification tree: CART with ``criterion="gini"``, ID3 with ``"entropy"``, C4.5's
    split choice with ``"gain_ratio"`` (Gain / SplitInfo).

    Categorical columns (``categorical_features``: column indices or a boolean mask; by default
    the string columns of X) split into one branch per category; a category unseen in training
    goes down the node's largest branch. After ``fit``, ``root_scores_`` holds each feature's
    best split score at the root (see ``root_gains_``).
    """
    _criteria = ("gini", "entropy", "gain_ratio")

    def __init__(self, criterion="gini", max_depth=None, min_samples_split=2, min_samples_leaf=1,
                 min_impurity_decrease=0.0, max_features=None, random_state=None,
                 categorical_features=None):
        super().__init__(criterion, max_depth, min_samples_split, min_samples_leaf,
                         min_impurity_decrease, max_features, random_state, categorical_features)

    def _check_y(self, X, y, who):
        if not isinstance(y, np.ndarray):  # before numpy turns [1, "a"] into strings
            _check_label_types(np.asarray(y, dtype=object).ravel(), who)
        y = super()._check_y(X, y, who)
        if y.dtype == object:
            _check_label_types(y, who)
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError(f"{who}: y contains NaN or infinity")
        try:
            self.classes_, y = np.unique(y, return_inverse=True)
        except TypeError:
            raise ValueError(f"{who}: the labels in y (types {_type_names(y)}) cannot be sorted") from None
        self.n_classes_ = len(self.classes_)
        return y.astype(np.int64)

    @property
    def root_gains_(self):
        """Each feature's gain at the root for its best split: information gain (entropy),
        Gini decrease (gini) or gain ratio; NaN where the feature was constant or not drawn."""
        check_is_fitted(self)
        counts, n = self.tree_.value[0], self.tree_.n_node_samples[0]
        scores = np.where(np.isfinite(self.root_scores_), self.root_scores_, np.nan)
        if self.criterion == "entropy":  # score = -sum_j n_j H(S_j)
            return self.tree_.impurity[0] + scores / n
        if self.criterion == "gini":  # score = sum_j (sum_k c_jk^2) / n_j
            return scores / n - (counts ** 2).sum() / n ** 2
        return scores

    def _proba(self, X, method):
        leaves = self._leaves(X, method)
        counts = self.tree_.value[leaves]
        return counts / counts.sum(axis=1, keepdims=True)

    def predict_proba(self, X):
        """Class probabilities: the training class fractions of each row's leaf."""
        return self._proba(X, "predict_proba")

    def predict(self, X):
        """The most frequent training class of each row's leaf (the first among equals)."""
        proba = self._proba(X, "predict")
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X, y):
        """Accuracy."""
        return float(np.mean(self.predict(X) == np.asarray(y)))


class DecisionTreeRegressor(_BaseTree):
    """A regression tree (CART): splits minimise the squared error sum_j sum_{i in S_j} (y_i - mean_j)^2,
    leaves predict the mean of their targets. Categorical columns as in DecisionTreeClassifier."""
    _criteria = ("squared_error",)

    def __init__(self, criterion="squared_error", max_depth=None, min_samples_split=2,
                 min_samples_leaf=1, min_impurity_decrease=0.0, max_features=None, random_state=None,
                 categorical_features=None):
        super().__init__(criterion, max_depth, min_samples_split, min_samples_leaf,
                         min_impurity_decrease, max_features, random_state, categorical_features)

    def _check_y(self, X, y, who):
        y = super()._check_y(X, y, who)
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{who}: y must hold numbers for regression, got {y.dtype} values such as "
                             f"{y[0]!r}") from None
        if not np.isfinite(y).all():
            raise ValueError(f"{who}: y contains NaN or infinity")
        return y

    def predict(self, X):
        leaves = self._leaves(X, "predict")
        return self.tree_.value[leaves, 0]

    def score(self, X, y):
        """R^2 = 1 - sum (y - f(x))^2 / sum (y - mean y)^2."""
        y = np.asarray(y, np.float64)
        residual = ((y - self.predict(X)) ** 2).sum()
        return float(1.0 - residual / ((y - y.mean()) ** 2).sum())


__all__ = ["DecisionTreeClassifier", "DecisionTreeRegressor", "NotFittedError", "Tree", "entropy", "gini"]
