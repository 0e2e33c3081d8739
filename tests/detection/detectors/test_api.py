"""Every registered detector follows the scikit-learn estimator API and finds a planted anomaly."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from dqm_playground_ds.detection.detectors import REGISTRY, RunContext, make_detector

# small, fast settings; integral_ratio works on one summary column, the others on histograms
FAST = {
    "autoencoder": {"hidden_layer_sizes": (16, 4, 16), "max_iter": 60},
    "isolation_forest": {"n_estimators": 50},
    "nmf": {"max_iter": 200},
}
KINDS = sorted(REGISTRY)
RUNS = 10  # LS per run for the detectors that take runs (groups)


def runs_of(X):
    return np.arange(len(X)) // RUNS


def fit(det, X):
    return det.fit(X, groups=runs_of(X)) if det.uses_groups else det.fit(X)


def score(det, X):
    return det.anomaly_score(X, groups=runs_of(X)) if det.uses_groups else det.anomaly_score(X)


def inputs(kind, good, test_good, test_bad):
    needs = REGISTRY[kind][2]
    if needs == "counts":
        return good, test_good, test_bad
    if needs == "values":
        return tuple(x / x.sum(axis=1, keepdims=True) for x in (good, test_good, test_bad))
    # integral_ratio: one column, the bad LS lost 30 % of this ME's share
    rng = np.random.default_rng(0)
    g, tg = rng.normal(0, 0.02, (len(good), 1)), rng.normal(0, 0.02, (len(test_good), 1))
    return g, tg, rng.normal(np.log(0.7), 0.02, (len(test_bad), 1))


@pytest.mark.parametrize("kind", KINDS)
def test_estimator_api(kind, good):
    det, _ = make_detector(kind, FAST.get(kind))
    params = det.get_params()
    assert "contamination" in params
    copy = clone(det)
    assert copy.get_params() == params and copy is not det
    assert det.set_params(contamination=0.05) is det and det.contamination == 0.05
    X = inputs(kind, good, good, good)[0]
    with pytest.raises(NotFittedError):
        det.anomaly_score(X)
    assert fit(det, X) is det
    assert not hasattr(copy, "offset_")  # clone shares no fitted state
    # sklearn outlier conventions: predict -1/+1 at the contamination, score_samples = -anomaly
    kw = {"groups": runs_of(X)} if det.uses_groups else {}
    pred = det.predict(X, **kw)
    assert set(np.unique(pred)) <= {-1, 1}
    assert 0.0 < (pred == -1).mean() <= 0.15
    np.testing.assert_allclose(det.score_samples(X, **kw), -det.anomaly_score(X, **kw))
    with pytest.raises(ValueError, match="features"):
        score(det, X[:, :1] if X.shape[1] > 1 else np.hstack([X, X]))  # wrong width


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_with_random_state(kind, good, test_good):
    X, T, _ = inputs(kind, good, test_good, test_good)
    a, _ = make_detector(kind, FAST.get(kind))
    b = clone(a)
    if "random_state" in a.get_params():
        a.set_params(random_state=7)
        b.set_params(random_state=7)
    np.testing.assert_array_equal(score(fit(a, X), T), score(fit(b, X), T))


@pytest.mark.parametrize("kind", KINDS)
def test_detects_a_planted_anomaly(kind, good, test_good, test_bad):
    X, G, B = inputs(kind, good, test_good, test_bad)
    det, _ = make_detector(kind, FAST.get(kind))
    if "random_state" in det.get_params():
        det.set_params(random_state=0)
    fit(det, X)
    if kind == "within_run":
        # an LS that departs from its own run: each bad LS scored inside a good run
        ctx = RunContext(G, runs_of(G), np.full(len(B), -1))
        g, b = score(det, G), det.anomaly_score(B, groups=runs_of(B) % 5, context=ctx)
    else:  # run_knn: whole bad runs; the others: bad LS
        g, b = score(det, G), score(det, B)
    assert np.isfinite(g).all() and np.isfinite(b).all()
    assert b.min() > np.quantile(g, 0.95), (kind, g.max(), b.min())


def test_unknown_detector_or_parameter_fails_early():
    with pytest.raises(ValueError, match="unknown detector 'svm'"):
        make_detector("svm")
    with pytest.raises(ValueError, match="unknown parameter"):
        make_detector("pca", {"n_component": 3})


def test_counts_detectors_refuse_negative_input(good):
    det, _ = make_detector("reference_test")
    with pytest.raises(ValueError, match="Negative values"):
        det.fit(good - good.mean())


def test_fit_needs_two_samples(good):
    det, _ = make_detector("pca")
    with pytest.raises(ValueError, match="at least 2"):
        det.fit(good[:1])
