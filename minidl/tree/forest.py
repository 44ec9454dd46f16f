"""Random forest: many decision trees on bootstrap samples, each split drawn from a random
subset of the features; the forest predicts the class of highest mean probability."""
import numpy as np

from .features import FeatureEncoder, as_2d, categorical_mask, check_is_fitted
from .tree import DecisionTreeClassifier, _is_int, check_random_state


class RandomForestClassifier:
    """``n_estimators`` DecisionTreeClassifiers; tree t fits a bootstrap sample (n rows drawn with
    replacement) when ``bootstrap``, and considers ``max_features`` features per split.
    P(class | x) = mean over trees of the tree's leaf class fractions. ``verbose`` shows a tqdm bar.
    """

    def __init__(self, n_estimators=100, criterion="gini", max_depth=None, min_samples_split=2,
                 min_samples_leaf=1, min_impurity_decrease=0.0, max_features="sqrt", bootstrap=True,
                 random_state=None, categorical_features=None, verbose=False):
        self.n_estimators = n_estimators
        self.criterion = criterion
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.min_impurity_decrease = min_impurity_decrease
        self.max_features = max_features
        self.bootstrap = bootstrap
        self.random_state = random_state
        self.categorical_features = categorical_features
        self.verbose = verbose

    def fit(self, X, y):
        from tqdm.auto import tqdm
        who = "RandomForestClassifier.fit"
        if not _is_int(self.n_estimators) or self.n_estimators < 1:
            raise ValueError(f"{who}: n_estimators must be an int >= 1, got {self.n_estimators!r}")
        X = as_2d(X, who)
        template = self._tree(None)
        template._check_params(who, X.shape[0], X.shape[1])
        random_state = check_random_state(self.random_state, who)
        y = template._check_y(X, y, who)
        self.classes_, self.n_classes_ = template.classes_, template.n_classes_
        encoder = FeatureEncoder()
        codes = encoder.fit_encode(X, categorical_mask(X, self.categorical_features, who), who)
        n = X.shape[0]
        self.estimators_ = []
        for _ in tqdm(range(self.n_estimators), desc="trees", disable=not self.verbose):
            tree = self._tree(random_state.randint(np.iinfo(np.int32).max))
            tree.classes_, tree.n_classes_ = self.classes_, self.n_classes_
            samples = random_state.randint(0, n, n) if self.bootstrap else np.arange(n)
            self.estimators_.append(tree._fit_encoded(encoder, codes, y, samples))
        self.encoder_, self.n_features_in_ = encoder, X.shape[1]
        return self

    def _tree(self, seed):
        return DecisionTreeClassifier(
            criterion=self.criterion, max_depth=self.max_depth, min_samples_split=self.min_samples_split,
            min_samples_leaf=self.min_samples_leaf, min_impurity_decrease=self.min_impurity_decrease,
            max_features=self.max_features, random_state=seed, categorical_features=self.categorical_features)

    def predict_proba(self, X):
        check_is_fitted(self, "estimators_")
        who = "RandomForestClassifier.predict_proba"
        encoded = self.encoder_.transform(as_2d(X, who), who)
        proba = np.zeros((encoded.shape[0], self.n_classes_))
        for tree in self.estimators_:
            counts = tree.tree_.value[tree.tree_.apply(encoded)]
            proba += counts / counts.sum(axis=1, keepdims=True)
        return proba / len(self.estimators_)

    def predict(self, X):
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X, y):
        """Accuracy."""
        return float(np.mean(self.predict(X) == np.asarray(y)))

    @property
    def feature_importances_(self):
        """Mean of the trees' feature importances."""
        check_is_fitted(self, "estimators_")
        return np.mean([tree.feature_importances_ for tree in self.estimators_], axis=0)
