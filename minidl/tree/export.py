"""A fitted tree as indented text (scikit-learn's ``export_text`` layout) or Graphviz DOT text."""
import numpy as np

from .features import check_is_fitted


def _names(estimator, feature_names):
    if feature_names is None:
        return [f"feature_{f}" for f in range(estimator.n_features_in_)]
    if len(feature_names) != estimator.n_features_in_:
        raise ValueError(f"feature_names has {len(feature_names)} names, the tree has "
                         f"{estimator.n_features_in_} features")
    return [str(name) for name in feature_names]


def _branches(estimator, node, names, decimals):
    """[(condition text, child)] for the branches of an inner node."""
    tree = estimator.tree_
    name = names[tree.feature[node]]
    children = tree.children(node)
    if tree.branch_start[node] < 0:
        t = f"{tree.threshold[node]:.{decimals}f}"
        return [(f"{name} <= {t}", children[0][1]), (f"{name} >  {t}", children[1][1])]
    categories = estimator.encoder_.categories[tree.feature[node]]
    return [(f"{name} = {categories[c]}", child) for c, child in children]


def _prediction(estimator, node, decimals):
    value = estimator.tree_.value[node]
    if hasattr(estimator, "classes_"):
        return f"class: {estimator.classes_[np.argmax(value)]}"
    return f"value: [{value[0]:.{decimals}f}]"


def export_text(estimator, feature_names=None, max_depth=10, decimals=2):
    """The tree as text, one line per branch: ``|--- petal width <= 0.80`` (numeric) or
    ``|--- Outlook = Sunny`` (categorical); leaves read ``class: ...`` or ``value: [...]``;
    branches below ``max_depth`` are summarised as truncated."""
    check_is_fitted(estimator)
    names = _names(estimator, feature_names)
    tree = estimator.tree_
    lines = []

    def walk(node, depth):
        indent = "|   " * depth + "|--- "
        if tree.children_left[node] < 0:
            lines.append(indent + _prediction(estimator, node, decimals))
            return
        for condition, child in _branches(estimator, node, names, decimals):
            lines.append(indent + condition)
            if depth + 1 > max_depth and tree.children_left[child] >= 0:
                lines.append("|   " * (depth + 1) + "|--- truncated branch")
            else:
                walk(child, depth + 1)

    if tree.children_left[0] < 0:
        lines.append("|--- " + _prediction(estimator, 0, decimals))
    else:
        walk(0, 0)
    return "\n".join(lines) + "\n"


def _quote(text):
    """Text for a DOT string: quotes escaped, line breaks as \\n."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def export_graphviz(estimator, feature_names=None, class_names=None, decimals=3):
    """The tree in Graphviz DOT language (render with ``dot -Tpng``): each node shows its split,
    impurity, sample count and value; edges are labelled True/False or with the category."""
    check_is_fitted(estimator)
    names = _names(estimator, feature_names)
    tree = estimator.tree_
    criterion = "entropy" if estimator.criterion == "gain_ratio" else estimator.criterion
    classifier = hasattr(estimator, "classes_")
    if class_names is None and classifier:
        class_names = [str(c) for c in estimator.classes_]
    lines = ["digraph Tree {", 'node [shape=box, fontname="helvetica"] ;', 'edge [fontname="helvetica"] ;']
    for node in range(tree.node_count):
        label = []
        if tree.children_left[node] >= 0:
            if tree.branch_start[node] < 0:
                label.append(f"{names[tree.feature[node]]} <= {round(tree.threshold[node], decimals)}")
            else:
                label.append(names[tree.feature[node]])
        label.append(f"{criterion} = {round(tree.impurity[node], decimals)}")
        label.append(f"samples = {tree.n_node_samples[node]}")
        value = tree.value[node]
        if classifier:
            label.append(f"value = {[int(v) for v in value]}")
            label.append(f"class = {class_names[int(np.argmax(value))]}")
        else:
            label.append(f"value = {round(value[0], decimals)}")
        text = _quote("\n".join(label))
        lines.append(f'{node} [label="{text}"] ;')
    for node in range(tree.node_count):
        if tree.children_left[node] < 0:
            continue
        if tree.branch_start[node] < 0:
            edges = [("True", tree.children_left[node]), ("False", tree.children_right[node])]
        else:
            categories = estimator.encoder_.categories[tree.feature[node]]
            edges = [(str(categories[c]), child) for c, child in tree.children(node)]
        for text, child in edges:
            lines.append(f'{node} -> {child} [label="{_quote(text)}"] ;')
    lines.append("}")
    return "\n".join(lines) + "\n"
