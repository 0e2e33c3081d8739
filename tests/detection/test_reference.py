"""The one reference: run-aware fit, pulls shared with the reference test, the saved table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dqm_playground_ds.detection.detectors import ReferenceTest
from dqm_playground_ds.detection.reference import Reference, references_from_table
from tests.detection.detectors.conftest import counts
from tests.detection_data import shape_1d


def _runs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three runs of different length whose peak sits at slightly different places."""
    X, groups = [], []
    for i, (scale, n) in enumerate(zip([0.0, 0.004, -0.012], [120, 60, 20], strict=True)):
        X.append(
            counts(n, seed=seed + i, entries=20000.0, shape=shape_1d(centre=15.0 * (1 + scale)))
        )
        groups += [315000 + i] * n
    return np.vstack(X), np.asarray(groups)


@pytest.mark.parametrize("method", ["poisson", "beta_binomial"])
@pytest.mark.parametrize("with_groups", [False, True])
def test_the_reference_test_flags_on_the_reference_pulls(method, with_groups):
    X, groups = _runs()
    g = groups if with_groups else None
    ref = Reference.fit(X, g, method)
    det = ReferenceTest(method=method, statistic="chi2").fit(X, groups=g)
    new = counts(10, seed=9, entries=20000.0)
    np.testing.assert_array_equal(det.pulls(new), ref.pulls(new))
    np.testing.assert_array_equal(det.anomaly_score(new), ref.chi2(new))
    fitted = det.fitted_reference
    np.testing.assert_array_equal(fitted.shape, ref.shape)
    np.testing.assert_array_equal(fitted.dispersion, ref.dispersion)
    assert (fitted.n_entries, fitted.n_runs) == (ref.n_entries, ref.n_runs)


def test_every_run_weighs_the_same_and_adds_its_spread():
    X, groups = _runs()
    aware, pooled = Reference.fit(X, groups), Reference.fit(X)
    means = [X[groups == g].sum(axis=0) / X[groups == g].sum() for g in np.unique(groups)]
    np.testing.assert_allclose(aware.shape, np.mean(means, axis=0))
    np.testing.assert_allclose(pooled.shape, X.sum(axis=0) / X.sum())
    assert aware.n_runs == 3 and pooled.n_runs == 1
    assert aware.dispersion.sum() > pooled.dispersion.sum()
    assert aware.n_entries == pytest.approx(X.sum())
    assert (Reference.fit(X, groups, "poisson").dispersion == 0).all()


def test_pulls_of_one_histogram_and_expected_counts():
    X, groups = _runs()
    ref = Reference.fit(X, groups)
    one = X[5]
    np.testing.assert_array_equal(ref.pulls(one), ref.pulls(X[5:6])[0])
    np.testing.assert_allclose(ref.expected(one), one.sum() * ref.shape)
    assert ref.expected(X).shape == X.shape
    # a dead region: strongly negative pulls exactly there (the other bins gain its share)
    dead = one.copy()
    dead[12:16] = 0
    pull = ref.pulls(dead)
    assert pull[12:16].max() < -20 and np.delete(pull, range(12, 16)).min() > -3


def test_empty_samples_are_left_out_and_groups_must_match():
    X, groups = _runs()
    with_empty = np.vstack([X, np.zeros((3, X.shape[1]))])
    ref = Reference.fit(with_empty, np.r_[groups, [1, 1, 1]])
    np.testing.assert_array_equal(ref.shape, Reference.fit(X, groups).shape)
    with pytest.raises(ValueError, match="every training sample is empty"):
        Reference.fit(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="groups has 2 entries"):
        Reference.fit(X, groups[:2])
    with pytest.raises(ValueError, match="method 'gauss'"):
        Reference.fit(X, method="gauss")


def test_saved_table_round_trip(tmp_path):
    X, groups = _runs()
    ref = Reference.fit(X, groups)
    table = pd.DataFrame([{"me": "A/b", "dim": 1, **ref.to_record()}])
    table.to_parquet(tmp_path / "me_references.parquet")
    back = references_from_table(pd.read_parquet(tmp_path / "me_references.parquet"))["A/b"]
    np.testing.assert_array_equal(back.pulls(X[:3]), ref.pulls(X[:3]))
    assert (back.n_runs, back.method) == (3, "beta_binomial")
    assert references_from_table(pd.DataFrame()) == {}
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['n_entries'"):
        references_from_table(table.drop(columns=["n_entries"]))
