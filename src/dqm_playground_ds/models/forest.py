"""A fitted scikit-learn ``IsolationForest`` as plain arrays, scoring exactly like it.

A forest's trees are compiled ``Tree`` objects whose pickled layout changes between
scikit-learn releases; what scoring needs of them is plain data. Every tree's nodes are
concatenated (child indices made global, ``-1`` = leaf) and each node carries the value that
``IsolationForest._compute_score_samples`` adds for a sample ending in it: its depth plus the
average path length of its training samples, minus one. :meth:`IsolationForestArrays.score_samples`
walks the trees with sklearn's own rule (``float32`` features, ``x <= threshold`` goes left, NaN
follows ``missing_go_to_left``) and sums the leaf values tree by tree in sklearn's order, so it
returns sklearn's ``score_samples`` bit for bit (tests/models/test_forest.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

ARRAYS = ("left", "right", "feature", "threshold", "missing_left", "leaf_value", "roots")


def average_path_length(n: np.ndarray) -> np.ndarray:
    """Average path length of an unsuccessful search in a binary tree of ``n`` samples (sklearn's)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros(n.shape)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


class IsolationForestArrays:
    """Flat node arrays of all trees; ``score_samples`` as sklearn's (higher = more normal)."""

    def __init__(self, n_features_in: int, denominator: float, **arrays: np.ndarray) -> None:
        missing = [k for k in ARRAYS if k not in arrays]
        if missing:
            raise ValueError(f"IsolationForestArrays: missing array(s) {missing}")
        self.n_features_in = int(n_features_in)
        self.denominator = float(denominator)
        self.arrays = {k: np.asarray(arrays[k]) for k in ARRAYS}

    @classmethod
    def from_sklearn(cls, forest: Any) -> IsolationForestArrays:
        """Read the node arrays of a fitted ``sklearn.ensemble.IsolationForest``."""
        subsample = forest._max_features != forest.n_features_in_
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ARRAYS if k != "roots"}
        roots, offset = [], 0
        trees = zip(forest.estimators_, forest.estimators_features_, strict=True)
        for t, (est, features) in enumerate(trees):
            tree = est.tree_
            nodes = tree.__getstate__()["nodes"]
            left, right = tree.children_left.astype(np.int64), tree.children_right.astype(np.int64)
            feature = tree.feature.astype(np.int64)
            if subsample:  # the tree was fitted on X[:, features]
                feature = np.where(feature >= 0, np.asarray(features)[np.maximum(feature, 0)], -2)
            roots.append(offset)
            parts["left"].append(np.where(left >= 0, left + offset, -1))
            parts["right"].append(np.where(right >= 0, right + offset, -1))
            parts["feature"].append(feature)
            parts["threshold"].append(tree.threshold.astype(np.float64))
            has_missing = "missing_go_to_left" in (nodes.dtype.names or ())
            go_left = nodes["missing_go_to_left"] if has_missing else np.zeros(len(left))
            parts["missing_left"].append(np.asarray(go_left, dtype=bool))
            # what sklearn adds per tree: (path length + average path length) - 1.0
            value = forest._decision_path_lengths[t] + forest._average_path_length_per_tree[t]
            parts["leaf_value"].append(value - 1.0)
            offset += tree.node_count
        flat = {k: np.concatenate(v) for k, v in parts.items()}
        apl = average_path_length(np.array([forest._max_samples]))
        denominator = float((len(forest.estimators_) * apl)[0])
        return cls(forest.n_features_in_, denominator, **flat, roots=np.array(roots, np.int64))

    def leaves(self, X: np.ndarray) -> np.ndarray:
        """(n, n_trees) leaf node of every sample in every tree (sklearn's ``Tree.apply``)."""
        a = self.arrays
        X = np.asarray(X, dtype=np.float32)  # sklearn scores float32 features
        if X.ndim != 2 or X.shape[1] != self.n_features_in:
            raise ValueError(
                f"X has shape {X.shape}; the forest expects {self.n_features_in} features"
            )
        node = np.broadcast_to(a["roots"], (len(X), len(a["roots"]))).copy()
        rows = np.arange(len(X))[:, None]
        while True:
            inner = a["left"][node] >= 0
            if not inner.any():
                return node
            x = X[rows, np.maximum(a["feature"][node], 0)]
            with np.errstate(invalid="ignore"):
                go_left = np.where(np.isnan(x), a["missing_left"][node], x <= a["threshold"][node])
            child = np.where(go_left, a["left"][node], a["right"][node])
            node = np.where(inner, child, node)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Opposite of the anomaly score of the original paper, as ``IsolationForest``'s."""
        leaves = self.leaves(X)
        depths = np.zeros(len(leaves))
        value = self.arrays["leaf_value"]
        for t in range(leaves.shape[1]):  # tree by tree: sklearn's summation order
            depths += value[leaves[:, t]]
        d = self.denominator
        ratio = np.divide(depths, d, out=np.ones_like(depths), where=np.asarray(d != 0))
        return -(2 ** (-ratio))

    @property
    def n_trees(self) -> int:
        return len(self.arrays["roots"])
