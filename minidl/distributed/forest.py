"""Random forests over ranks: each rank grows its share of the trees, then all hold them all."""
from .process_group import communicator


def fit_forest(forest, X, y):
    """Fit ``forest`` (a RandomForestClassifier) with its trees spread over the ranks: tree t is
    grown by rank t mod p, then every rank receives every tree (pickled, one allgather).

    Every rank runs ``forest.fit`` itself, so the validation, the feature encoding and the
    random draws (each tree's seed and bootstrap sample, in tree order) are the single-process
    ones; only the growing of another rank's tree is skipped. With an int ``random_state`` the
    result equals ``forest.fit(X, y)`` in one process, tree for tree. Every rank must pass the
    same X, y and forest parameters. Returns the forest.
    """
    comm = communicator("fit_forest")
    rank, world = comm.Get_rank(), comm.Get_size()
    grown, calls = {}, [0]
    make_tree = forest._tree

    def tree_of_this_rank(seed):
        """fit asks for a template tree (seed None), then for tree t = 0, 1, ... in order."""
        if seed is None:
            return make_tree(seed)
        t = calls[0]
        calls[0] += 1
        if t % world != rank:
            return _NotGrownHere()
        tree = make_tree(seed)
        grown[t] = tree
        return tree

    forest._tree = tree_of_this_rank  # an instance attribute: shadows the method during fit
    try:
        forest.fit(X, y)
    finally:
        del forest._tree
    everyone = comm.allgather(grown)
    forest.estimators_ = [everyone[t % world][t] for t in range(calls[0])]
    return forest


class _NotGrownHere:
    """Stands in for a tree that another rank grows: accepts fit's attributes, grows nothing."""

    def _fit_encoded(self, encoder, codes, y, samples):
        return self
