"""scikit-learn's own estimator checks over the detector registry.

Expected failures, by design: the counts detectors refuse the negative data that sklearn's outlier
checks generate (despite the ``positive_only`` tag), and a within-run score depends on the other LS
of its run, so it is not invariant to scoring a subset.
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from dqm_playground_ds.detection.detectors import REGISTRY, make_detector

FAST = {
    "autoencoder": {"hidden_layer_sizes": (8,), "max_iter": 20},
    "isolation_forest": {"n_estimators": 20},
    "nmf": {"max_iter": 50},
}
NEGATIVE = {
    "check_outliers_fit_predict": "refuses negative values (counts)",
    "check_outliers_train": "refuses negative values (counts)",
}


def _expected(det) -> dict[str, str]:
    out = dict(NEGATIVE) if det._positive_only else {}
    if getattr(det, "uses_groups", False) and not det._each_its_own_run:
        out["check_methods_subset_invariance"] = "an LS is scored against the other LS of its run"
    return out


DETECTORS = [make_detector(kind, FAST.get(kind))[0] for kind in sorted(REGISTRY)]


@parametrize_with_checks(DETECTORS, expected_failed_checks=_expected)
def test_sklearn_compatible(estimator, check):
    check(estimator)
