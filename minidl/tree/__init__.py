"""Decision-tree baselines with scikit-learn's API: CART, ID3, C4.5 and random forests.

    from minidl.tree import DecisionTreeClassifier, DecisionTreeRegressor, RandomForestClassifier
    from minidl.tree import export_text, export_graphviz

``DecisionTreeClassifier(criterion="entropy")`` is ID3's information gain, ``"gain_ratio"``
C4.5's, ``"gini"`` CART's; string columns (or ``categorical_features=[...]``) split into one
branch per category, numeric columns at thresholds.
"""
from .export import export_graphviz, export_text
from .features import NotFittedError
from .forest import RandomForestClassifier
from .tree import DecisionTreeClassifier, DecisionTreeRegressor, Tree, entropy, gini

__all__ = ["DecisionTreeClassifier", "DecisionTreeRegressor", "RandomForestClassifier", "NotFittedError",
           "Tree", "entropy", "export_graphviz", "export_text", "gini"]
