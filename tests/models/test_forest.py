"""Isolation Forests as flat tree arrays score exactly like scikit-learn's compiled trees."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from dqm_playground_ds.models.codec import Encoder, decode
from dqm_playground_ds.models.forest import IsolationForestArrays, average_path_length


def _data(seed: int, n: int = 600, d: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(n, d))
    test = np.vstack([rng.normal(size=(300, d)), rng.normal(4.0, 2.0, size=(50, d))])
    return train, test


@pytest.mark.parametrize(
    "params",
    [
        {"n_estimators": 50},
        {"n_estimators": 30, "max_features": 0.5},  # trees on feature subsets
        {"n_estimators": 20, "max_samples": 37, "bootstrap": True},
        {"n_estimators": 10, "max_samples": 1},  # a single training sample per tree: depth 0
    ],
)
def test_arrays_score_like_sklearn(params):
    train, test = _data(1)
    forest = IsolationForest(random_state=0, **params).fit(train)
    arrays = IsolationForestArrays.from_sklearn(forest)
    got, want = arrays.score_samples(test), forest.score_samples(test)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.array_equal(got, want)  # in fact bit for bit: same order of the same sums
    assert arrays.n_trees == params["n_estimators"]


def test_float32_rounding_and_missing_values_follow_sklearn():
    train, test = _data(2)
    forest = IsolationForest(n_estimators=40, random_state=3).fit(train.astype(np.float32))
    arrays = IsolationForestArrays.from_sklearn(forest)
    # values right at float32-rounded thresholds go the way sklearn sends them
    t = arrays.arrays["threshold"][arrays.arrays["left"] >= 0]
    f = arrays.arrays["feature"][arrays.arrays["left"] >= 0]
    edge = np.zeros((len(t), train.shape[1]))
    edge[np.arange(len(t)), f] = t
    test[:5, 2] = np.nan
    for x in (test, edge, np.nextafter(edge, np.inf)):
        assert np.array_equal(arrays.score_samples(x), forest.score_samples(x))


def test_codec_round_trip_and_the_leaf_values():
    train, test = _data(3)
    forest = IsolationForest(n_estimators=25, random_state=1).fit(train)
    enc = Encoder()
    node = enc(forest, "f")
    assert node["__estimator__"] == "IsolationForestArrays"
    assert all(a.dtype != object for a in enc.arrays.values())
    back = decode(node, enc.arrays)
    assert np.array_equal(back.score_samples(test), forest.score_samples(test))
    # leaf value = depth + average path length of the leaf's training samples - 1
    tree = forest.estimators_[0].tree_
    leaf = np.flatnonzero(tree.children_left < 0)[0]
    depth = forest._decision_path_lengths[0][leaf]
    assert (
        back.arrays["leaf_value"][leaf]
        == depth + average_path_length(np.array([tree.n_node_samples[leaf]]))[0] - 1.0
    )


def test_wrong_width_is_refused():
    train, _ = _data(4)
    arrays = IsolationForestArrays.from_sklearn(IsolationForest(n_estimators=3).fit(train))
    with pytest.raises(ValueError, match="expects 7 features"):
        arrays.score_samples(np.zeros((2, 5)))
