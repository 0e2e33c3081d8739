"""The reference test: pulls checked against an independent scipy computation, its statistics,
and the run-aware dispersion that absorbs run-to-run calibration differences."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from dqm_playground_ds.detection.detectors import ReferenceTest
from tests.detection.detectors.conftest import counts
from tests.detection_data import shape_1d


def scipy_pulls(X, p, n_ref, tau2):
    """sign(c - Np) sqrt(binomial deviance) / sqrt(total / binomial variance), with scipy.stats."""
    out = np.zeros_like(X)
    for i, x in enumerate(X):
        n = x.sum()
        pv = np.maximum(p, 0.5 / n_ref)
        dev = 2 * (stats.binom.logpmf(x, n, x / n) - stats.binom.logpmf(x, n, pv))
        z = np.sign(x - n * pv) * np.sqrt(np.clip(dev, 0, None))
        phi = 1 + n * (pv * (1 - pv) / n_ref + tau2) / (pv * (1 - pv))
        out[i] = z / np.sqrt(phi)
    return out


@pytest.mark.parametrize("method", ["poisson", "beta_binomial"])
def test_pulls_match_scipy(method, good, test_good, test_bad):
    det = ReferenceTest(method=method).fit(good)
    X = np.vstack([test_good[:5], test_bad[:5]])
    expected = scipy_pulls(X, det.reference_, det.n_reference_, det.dispersion_)
    np.testing.assert_allclose(det.pulls(X), expected, rtol=1e-6, atol=1e-8)
    if method == "poisson":
        assert (det.dispersion_ == 0).all()
    np.testing.assert_allclose(det.reference_, good.sum(axis=0) / good.sum())


def test_pulls_are_standard_normal_for_good_ls(good, test_good):
    pull = ReferenceTest(method="poisson").fit(good).pulls(test_good)
    populated = good.sum(axis=0) > 1000
    sample = pull[:, populated].ravel()
    assert abs(sample.mean()) < 0.1 and 0.85 < sample.std() < 1.15


def test_statistics(good, test_bad):
    det = ReferenceTest(top_n=3).fit(good)
    pull = det.pulls(test_bad)
    s = det.statistics(test_bad)
    used = ((det.reference_ > 0) | (test_bad > 0)).sum(axis=1)
    np.testing.assert_allclose(s["chi2"], (pull**2).sum(axis=1) / used)
    np.testing.assert_allclose(s["max_pull"], np.abs(pull).max(axis=1))
    np.testing.assert_allclose(s["chi2_norm"], s["chi2"] * test_bad.sum(axis=1) ** (-1 / 3))
    np.testing.assert_allclose(s["top_n"], np.sort(pull**2, axis=1)[:, -3:].mean(axis=1))
    # the scan includes width 1 (the max pull) and is never smaller
    assert (s["scan"] >= s["max_pull"] - 1e-9).all()
    # chunking changes nothing
    small = ReferenceTest(top_n=3, chunk_size=7).fit(good).statistics(test_bad)
    np.testing.assert_allclose(small["scan"], s["scan"])


def test_chi2_and_scan_find_a_small_dead_region(good, test_good):
    dead = test_good.copy()
    dead[:, 12:16] = 0  # four bins on the rising edge of the peak
    chi2 = ReferenceTest(statistic="chi2").fit(good)
    scan = ReferenceTest(statistic="scan").fit(good)

    for det in (chi2, scan):
        assert det.anomaly_score(dead).min() > det.anomaly_score(test_good).max()


def test_scan_2d_sums_rectangles():
    det = ReferenceTest(statistic="scan", shape=(4, 5))
    pull = np.zeros((1, 20))
    pull[0, [6, 7, 11, 12]] = 1.0  # a 2 x 2 block of pulls 1
    assert det._scan(pull)[0] == pytest.approx(2.0)  # 4 / sqrt(4)


def test_empty_reference_bins_give_large_but_finite_pulls(good):
    det = ReferenceTest().fit(good * (np.arange(good.shape[1]) != 5))
    x = good[:1].copy()
    x[0, 5] = 50
    pull = det.pulls(x)
    assert np.isfinite(pull).all() and pull[0, 5] > 5


def test_all_empty_training_is_an_error(good):
    with pytest.raises(ValueError, match="every training sample is empty"):
        ReferenceTest().fit(np.zeros_like(good))


def _runs(scales, sizes, seed):
    """Runs whose peak position differs by ``scale`` (the sample's S/N calibration per run)."""
    X, groups = [], []
    for i, (scale, n) in enumerate(zip(scales, sizes, strict=True)):
        shape = shape_1d(centre=15.0 * (1 + scale))
        X.append(counts(n, seed=seed + i, entries=45000.0, shape=shape))
        groups += [i] * n
    return np.vstack(X), np.asarray(groups)


def test_run_aware_dispersion_absorbs_run_to_run_calibration():
    # like the bundled sample: two long runs close together, one short run 1.2 % away
    X, groups = _runs([0.0, 0.003, -0.012], [150, 150, 30], seed=10)
    new_runs, _ = _runs([0.01, -0.01], [40, 40], seed=20)
    pooled = ReferenceTest(statistic="chi2").fit(X)
    aware = ReferenceTest(statistic="chi2").fit(X, groups=groups)
    assert aware.n_groups_ == 3 and pooled.n_groups_ == 1
    assert aware.dispersion_.sum() > 1.5 * pooled.dispersion_.sum()
    # every run weighs the same in the reference, not every LS
    means = [X[groups == g].sum(axis=0) / X[groups == g].sum() for g in range(3)]
    np.testing.assert_allclose(aware.reference_, np.mean(means, axis=0))
    # unseen runs within the run-to-run spread: chi2/ndf ~ 1 with the run-aware dispersion,
    # well above with the LS-weighted one (dominated by the two close runs)
    assert np.median(aware.anomaly_score(new_runs)) < 1.3
    assert np.median(pooled.anomaly_score(new_runs)) > 1.5
    # and a real defect still stands out
    bad = new_runs[::4].copy()
    bad[:, 10:14] = 0
    assert aware.anomaly_score(bad).min() > aware.anomaly_score(new_runs).max()


def test_groups_must_match_samples(good):
    with pytest.raises(ValueError, match="groups has 3 entries"):
        ReferenceTest().fit(good, groups=[1, 2, 3])
