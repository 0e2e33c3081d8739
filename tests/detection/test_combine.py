"""One score per LS from per-ME score vectors, and which MEs drove it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from dqm_playground_ds.detection.combine import ScoreCombiner, me_importance, top_mes


@pytest.fixture(scope="module")
def train() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.exp(rng.normal(0, 0.3, size=(400, 3)))  # positive scores spanning a decade


def test_max_z_is_the_largest_robustly_standardised_log_score(train):
    comb = ScoreCombiner("max_z").fit(train)
    T = np.log(train + comb.shift_)
    center = np.median(T, axis=0)
    scale = 1.4826 * np.median(np.abs(T - center), axis=0)
    S = np.array([[1.0, 1.0, 1.0], [1.0, 20.0, 1.0], [0.01, 0.01, 0.01]])
    z = (np.log(S + comb.shift_) - center) / scale
    np.testing.assert_allclose(comb.standardise(S), z)
    np.testing.assert_allclose(comb.anomaly_score(S), z.max(axis=1))
    assert comb.anomaly_score(S)[2] < 0  # unusually good everywhere is not an anomaly


@pytest.mark.parametrize("method", ["max_z", "mean_z", "gmm", "kde"])
def test_no_ties_below_the_median(method, train):
    """LS better than the median everywhere keep distinct scores, below every worse LS."""
    comb = ScoreCombiner(method).fit(train)
    scores = comb.anomaly_score(train)
    assert len(np.unique(scores)) == len(train)
    below = (comb.standardise(train) <= 0).all(axis=1)
    median_point = np.exp(comb.center_) - comb.shift_  # standardised 0 in every column
    assert below.sum() > 10
    assert scores[below].max() < comb.anomaly_score(median_point[None, :])[0]


def test_mean_z_adds_up_evidence(train):
    comb = ScoreCombiner("mean_z").fit(train)
    z = comb.standardise(train)
    np.testing.assert_allclose(comb.anomaly_score(train), z.mean(axis=1))


def test_a_constant_column_has_no_vote(train, caplog):
    S = np.hstack([train, np.zeros((len(train), 1))])  # e.g. an ME ratio with one ME
    comb = ScoreCombiner("max_z").fit(S)
    assert comb.active_.tolist() == [True, True, True, False]
    assert np.isnan(comb.standardise(S)[:, 3]).all()
    bad = S[:5].copy()
    bad[:, 3] = 100.0  # whatever the dead column says
    np.testing.assert_allclose(
        comb.anomaly_score(bad), ScoreCombiner("max_z").fit(train).anomaly_score(S[:5, :3])
    )
    with pytest.raises(ValueError, match="same score to every training LS"):
        ScoreCombiner().fit(np.zeros((10, 2)))


def test_gmm_score_is_minus_log_density_of_clipped_standardised_scores(train):
    comb = ScoreCombiner("gmm", n_components=1, random_state=0).fit(train)
    Z = comb.standardise(train)
    ref = GaussianMixture(1, reg_covar=comb.reg_covar, random_state=0).fit(Z)
    S = np.array([[1.0, 1.0, 1.0], [1.0, 20.0, 1.0]])
    expected = -ref.score_samples(np.clip(comb.standardise(S), 0, None))
    z = comb.standardise(S)
    floor = (z <= 0).all(axis=1)  # below the median everywhere: tie-break
    expected[floor] += 1e-3 * z[floor].max(axis=1)
    np.testing.assert_allclose(comb.anomaly_score(S), expected, rtol=1e-6)
    assert comb.anomaly_score(S)[1] > comb.anomaly_score(S)[0]


@pytest.mark.parametrize("method", ["max_z", "mean_z", "gmm", "kde"])
def test_anomalous_column_ranks_above_training(method, train):
    comb = ScoreCombiner(method).fit(train)
    bad = train[:20].copy()
    bad[:, 1] *= 30
    assert comb.anomaly_score(bad).min() > np.quantile(comb.anomaly_score(train), 0.99)


def test_nan_column_gives_nan_and_invalid_settings_fail(train):
    comb = ScoreCombiner().fit(train)
    out = comb.anomaly_score(np.array([[1.0, np.nan, 1.0], [1.0, 1.0, 1.0]]))
    assert np.isnan(out[0]) and np.isfinite(out[1])
    with pytest.raises(ValueError, match="'method' parameter of ScoreCombiner must be"):
        ScoreCombiner("mean").fit(train)
    with pytest.raises(ValueError, match="at least 2"):
        ScoreCombiner().fit(train[:1])


def test_which_mes_drove_the_score():
    z = np.array([[0.5, 3.0, 1.0, 7.0], [2.0, np.nan, np.nan, 0.1], [np.nan] * 4])
    mes, imp = me_importance(z, ["A", "B", "A", "C"])  # two columns of A (two detectors)
    assert mes == ["A", "B", "C"]
    np.testing.assert_array_equal(imp[0], [1.0, 3.0, 7.0])
    assert imp[1, 0] == 2.0 and np.isnan(imp[1, 1])
    assert np.isnan(imp[2]).all()
    assert top_mes(imp, mes, 2) == [["C", "B"], ["A", "C"], []]
