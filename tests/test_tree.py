"""Decision trees: ID3 on Quinlan's tennis table, equality with scikit-learn, bad input, forests."""
import re

import numpy as np
import pytest

from minidl.tree import (DecisionTreeClassifier, DecisionTreeRegressor, NotFittedError,
                         RandomForestClassifier, entropy, export_graphviz, export_text, gini)

sklearn = pytest.importorskip("sklearn")
from sklearn import datasets, tree as sk  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

TENNIS = """\
Sunny Hot High Weak No
Sunny Hot High Strong No
Overcast Hot High Weak Yes
Rain Mild High Weak Yes
Rain Cool Normal Weak Yes
Rain Cool Normal Strong No
Overcast Cool Normal Strong Yes
Sunny Mild High Weak No
Sunny Cool Normal Weak Yes
Rain Mild Normal Weak Yes
Sunny Mild Normal Strong Yes
Overcast Mild High Strong Yes
Overcast Hot Normal Weak Yes
Rain Mild High Strong No"""
ATTRIBUTES = ["Outlook", "Temperature", "Humidity", "Wind"]


@pytest.fixture(scope="module")
def tennis():
    rows = [line.split() for line in TENNIS.splitlines()]
    return np.array([r[:4] for r in rows], dtype=object), np.array([r[4] for r in rows])


def split(loader):
    X, y = loader(return_X_y=True)
    return train_test_split(X, y, test_size=0.3, random_state=0)


def test_entropy_of_three_positives_in_five():
    assert entropy([3, 2]) == pytest.approx(0.971, abs=5e-4)
    assert entropy([7, 0]) == 0.0
    assert gini([1, 1]) == pytest.approx(0.5)


def test_id3_gains_on_tennis(tennis):
    X, y = tennis
    tree = DecisionTreeClassifier(criterion="entropy").fit(X, y)
    assert tree.tree_.impurity[0] == pytest.approx(0.940, abs=5e-4)  # Entropy(S), 9 yes / 5 no
    gains = dict(zip(ATTRIBUTES, tree.root_gains_))
    expected = {"Outlook": 0.246, "Humidity": 0.151, "Wind": 0.048, "Temperature": 0.029}
    for name, gain in expected.items():
        assert gains[name] == pytest.approx(gain, abs=1.5e-3), name
    assert ATTRIBUTES[tree.tree_.feature[0]] == "Outlook"
    assert tree.score(X, y) == 1.0  # ID3 grows until every leaf is pure
    assert tree.get_depth() == 2 and tree.get_n_leaves() == 5


def test_gain_ratio_on_tennis(tennis):
    X, y = tennis
    tree = DecisionTreeClassifier(criterion="gain_ratio").fit(X, y)
    ratios = dict(zip(ATTRIBUTES, tree.root_gains_))
    # Gain / SplitInfo: Outlook 0.2467 / 1.5774, Humidity 0.1518 / 1, Wind 0.0481 / 0.9852
    assert ratios["Outlook"] == pytest.approx(0.2467 / 1.5774, abs=1e-3)
    assert ratios["Humidity"] == pytest.approx(0.1518, abs=1e-3)
    assert ratios["Wind"] == pytest.approx(0.0481 / 0.9852, abs=1e-3)
    assert ATTRIBUTES[tree.tree_.feature[0]] == "Outlook"


def test_export_text_and_unseen_category(tennis):
    X, y = tennis
    tree = DecisionTreeClassifier(criterion="entropy").fit(X, y)
    text = export_text(tree, feature_names=ATTRIBUTES)
    lines = text.splitlines()
    assert lines[0].startswith("|--- Outlook = ")
    assert "|   |--- Humidity = High" in lines and "|   |   |--- class: No" in lines
    assert tree.export_text(feature_names=ATTRIBUTES) == text
    dot = export_graphviz(tree, feature_names=ATTRIBUTES)
    assert dot.startswith("digraph Tree {") and '[label="Overcast"]' in dot
    # "Foggy" was never seen: it follows the root's largest branch (Rain or Sunny, 5 rows each)
    # and so on down, without an exception.
    foggy = np.array([["Foggy", "Hot", "High", "Weak"]], dtype=object)
    assert tree.predict(foggy)[0] in ("Yes", "No")
    largest = tree.tree_.children_left[0]
    assert tree.tree_.n_node_samples[largest] == 5


@pytest.mark.parametrize("loader", [datasets.load_iris, datasets.load_wine, datasets.load_breast_cancer])
@pytest.mark.parametrize("criterion", ["gini", "entropy"])
def test_classifier_equals_sklearn(loader, criterion):
    X_train, X_test, y_train, y_test = split(loader)
    for random_state in (0, 3):
        ours = DecisionTreeClassifier(criterion=criterion, random_state=random_state).fit(X_train, y_train)
        ref = sk.DecisionTreeClassifier(criterion=criterion, random_state=random_state).fit(X_train, y_train)
        np.testing.assert_array_equal(ours.tree_.feature, ref.tree_.feature)
        np.testing.assert_array_equal(ours.tree_.threshold, ref.tree_.threshold)
        np.testing.assert_array_equal(ours.predict(X_test), ref.predict(X_test))
        np.testing.assert_allclose(ours.predict_proba(X_test), ref.predict_proba(X_test))
        assert ours.score(X_test, y_test) == ref.score(X_test, y_test)
        assert ours.get_depth() == ref.get_depth() and ours.get_n_leaves() == ref.get_n_leaves()
    assert (ours.classes_ == ref.classes_).all() and ours.n_classes_ == ref.n_classes_
    assert ours.n_features_in_ == ref.n_features_in_


def test_limits_and_feature_subsets_equal_sklearn():
    X_train, X_test, y_train, _ = split(datasets.load_breast_cancer)
    params = dict(criterion="entropy", max_depth=4, min_samples_leaf=3, min_samples_split=10,
                  min_impurity_decrease=0.005, max_features="sqrt", random_state=7)
    ours = DecisionTreeClassifier(**params).fit(X_train, y_train)
    ref = sk.DecisionTreeClassifier(**params).fit(X_train, y_train)
    np.testing.assert_array_equal(ours.tree_.feature, ref.tree_.feature)
    np.testing.assert_array_equal(ours.predict(X_test), ref.predict(X_test))
    assert ours.get_depth() <= 4 and ours.tree_.n_node_samples[ours.tree_.children_left < 0].min() >= 3


def test_feature_importances_equal_sklearn_on_iris():
    X, y = datasets.load_iris(return_X_y=True)
    ours = DecisionTreeClassifier(random_state=0).fit(X, y)
    ref = sk.DecisionTreeClassifier(random_state=0).fit(X, y)
    assert ours.feature_importances_.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(ours.feature_importances_, ref.feature_importances_, atol=1e-6)


def test_regressor_equals_sklearn_on_diabetes():
    X_train, X_test, y_train, y_test = split(datasets.load_diabetes)
    for max_depth in (3, None):
        ours = DecisionTreeRegressor(max_depth=max_depth, random_state=0).fit(X_train, y_train)
        ref = sk.DecisionTreeRegressor(max_depth=max_depth, random_state=0).fit(X_train, y_train)
        np.testing.assert_array_equal(ours.tree_.feature, ref.tree_.feature)
        np.testing.assert_allclose(ours.predict(X_test), ref.predict(X_test), rtol=1e-12)
        assert ours.score(X_test, y_test) == pytest.approx(ref.score(X_test, y_test), abs=1e-12)
    np.testing.assert_allclose(ours.feature_importances_, ref.feature_importances_, atol=1e-6)


def test_numeric_and_categorical_columns_mix():
    rng = np.random.default_rng(0)
    colour = rng.choice(["red", "green", "blue"], 300)
    size = rng.uniform(0, 10, 300)
    y = np.where(colour == "red", size > 5, size > 2).astype(int)
    X = np.empty((300, 2), dtype=object)
    X[:, 0], X[:, 1] = colour, size
    tree = DecisionTreeClassifier(criterion="gain_ratio").fit(X, y)
    assert tree.score(X, y) == 1.0
    coded = DecisionTreeClassifier(categorical_features=[0]).fit(
        np.stack([np.unique(colour, return_inverse=True)[1], size], axis=1), y)
    assert coded.tree_.branch_start[coded.tree_.feature == 0].min() >= 0  # a multiway split
    assert coded.score(np.stack([np.unique(colour, return_inverse=True)[1], size], axis=1), y) == 1.0


def test_single_class_is_allowed_like_sklearn():
    X = np.arange(12.0).reshape(6, 2)
    tree = DecisionTreeClassifier().fit(X, ["a"] * 6)
    assert tree.get_n_leaves() == 1 and list(tree.predict(X[:2])) == ["a", "a"]
    np.testing.assert_array_equal(tree.predict_proba(X[:2]), [[1.0], [1.0]])


def test_bad_input_raises_clear_errors():
    X, y = datasets.load_iris(return_X_y=True)
    tree = DecisionTreeClassifier()
    with pytest.raises(NotFittedError, match="DecisionTreeClassifier.*not fitted") as error:
        tree.predict(X)
    assert isinstance(error.value, ValueError) and isinstance(error.value, AttributeError)
    with pytest.raises(NotFittedError):
        DecisionTreeRegressor().feature_importances_
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"DecisionTreeClassifier.fit: X contains NaN.*row 3, column 2"):
        tree.fit(bad, y)
    with pytest.raises(ValueError, match=r"X has 150 samples.*y has 149"):
        tree.fit(X, y[:-1])
    tree.fit(X, y)
    with pytest.raises(ValueError, match=r"DecisionTreeClassifier.predict: X has shape \(5, 3\).*4 features"):
        tree.predict(X[:5, :3])
    with pytest.raises(ValueError, match=r"expected X of shape \(n_samples, n_features\), got shape \(150,\)"):
        tree.fit(X[:, 0], y)
    with pytest.raises(ValueError, match="criterion must be one of"):
        DecisionTreeClassifier(criterion="squared_error").fit(X, y)
    with pytest.raises(ValueError, match="max_features"):
        DecisionTreeClassifier(max_features=10).fit(X, y)


def test_random_forest_on_breast_cancer():
    X_train, X_test, y_train, y_test = split(datasets.load_breast_cancer)
    forest = RandomForestClassifier(n_estimators=30, random_state=0).fit(X_train, y_train)
    assert forest.score(X_test, y_test) >= 0.93
    assert len(forest.estimators_) == 30
    assert forest.feature_importances_.sum() == pytest.approx(1.0)
    proba = forest.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # trees differ (bootstrap samples, random feature subsets)
    assert len({tree.tree_.node_count for tree in forest.estimators_}) > 1


@pytest.mark.parametrize("name,value", [
    ("max_depth", 1.5), ("max_depth", 0), ("max_depth", True), ("max_depth", "3"),
    ("min_samples_split", 1), ("min_samples_split", "2"), ("min_samples_split", 1.5),
    ("min_samples_leaf", 0), ("min_samples_leaf", float("nan")), ("max_features", True),
    ("max_features", "auto"), ("max_features", 0.0), ("min_impurity_decrease", -0.1),
    ("criterion", ["gini"]), ("random_state", "seed"), ("random_state", -1), ("random_state", 2 ** 32),
])
@pytest.mark.parametrize("estimator", [DecisionTreeClassifier, DecisionTreeRegressor, RandomForestClassifier])
def test_hyperparameters_are_checked_at_fit(estimator, name, value):
    X, y = np.arange(20.0).reshape(10, 2), np.arange(10) % 2
    model = estimator(**{name: value})   # accepted at construction, as in scikit-learn
    with pytest.raises(ValueError, match=rf"{estimator.__name__}\.fit: {name} .*got {re.escape(repr(value))}"):
        model.fit(X, y)


def test_random_state_accepts_generators():
    X, y = datasets.load_iris(return_X_y=True)
    trees = [DecisionTreeClassifier(max_features=2, random_state=state).fit(X, y).tree_
             for state in (np.random.default_rng(3), np.random.default_rng(3), np.random.RandomState(3), 3)]
    np.testing.assert_array_equal(trees[0].feature, trees[1].feature)
    np.testing.assert_array_equal(trees[2].feature, trees[3].feature)
    RandomForestClassifier(n_estimators=3, random_state=np.random.default_rng(0)).fit(X, y)
    with pytest.raises(ValueError, match=r"n_estimators must be an int >= 1, got 2\.5"):
        RandomForestClassifier(n_estimators=2.5).fit(X, y)


@pytest.mark.parametrize("labels", [[1, "a"] * 3, np.array([1, "a"] * 3, dtype=object),
                                    np.array([None, "a"] * 3, dtype=object)])
def test_mixed_type_labels_are_refused(labels):
    X = np.arange(12.0).reshape(6, 2)
    mixed = r"DecisionTreeClassifier\.fit: labels in y are of mixed type \((int|NoneType), str\)"
    with pytest.raises(ValueError, match=mixed):
        DecisionTreeClassifier().fit(X, labels)
    with pytest.raises(ValueError, match=r"RandomForestClassifier\.fit: labels in y are of mixed type"):
        RandomForestClassifier(n_estimators=2).fit(X, labels)
    with pytest.raises(ValueError, match=r"DecisionTreeRegressor\.fit: y must hold numbers"):
        DecisionTreeRegressor().fit(X, ["a"] * 6)


def test_missing_category_is_the_same_from_load_csv_and_from_nan_or_none(tmp_path):
    from minidl.data import load_csv
    rows = [("red", 0), ("", 1), ("blue", 0), ("", 1), ("red", 0), ("nan", 0)]
    path = tmp_path / "colours.csv"
    path.write_text("colour,y\n" + "".join(f"{c},{y}\n" for c, y in rows))
    X, y, _ = load_csv(path)
    by_csv = DecisionTreeClassifier().fit(X, y)
    assert list(by_csv.encoder_.categories[0][:-1]) == ["blue", "nan", "red"]   # the string "nan" is a name
    assert np.isnan(by_csv.encoder_.categories[0][-1])                       # missing comes last
    assert by_csv.score(X, y) == 1.0
    for missing in (np.nan, None, float("nan")):
        hand = np.array([[missing if c == "" else c] for c, _ in rows], dtype=object)
        tree = DecisionTreeClassifier().fit(hand, y)
        np.testing.assert_array_equal(tree.tree_.branches, by_csv.tree_.branches)
        assert list(tree.predict(np.array([[missing], ["nan"], ["green"]], dtype=object))) == [1, 0, 0]
    assert "colour = nan" in export_text(by_csv, feature_names=["colour"])
