"""What every detector shares: the sklearn outlier-detector contract and top-N residual scoring.

Detectors follow scikit-learn's outlier-detector conventions so that they compose with its tools:
``score_samples`` is *higher for more normal* samples, ``decision_function`` is negative for
outliers at the fitted ``contamination``, ``predict`` returns -1/+1. The pipeline itself uses
:meth:`BaseDetector.anomaly_score` = ``-score_samples``: higher is more anomalous, which is the
natural reading of a chi2 or a reconstruction error.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

OFFSET_SAMPLES = 2_000  # training samples scored to place ``offset_`` (``contamination``)


def top_n_mean(squared: np.ndarray, n: int) -> np.ndarray:
    """Mean of the ``n`` largest values of each row (the field's top-N squared-residual score)."""
    n = max(1, min(int(n), squared.shape[1]))
    if n == squared.shape[1]:
        return squared.mean(axis=1)
    return np.partition(squared, squared.shape[1] - n, axis=1)[:, -n:].mean(axis=1)


class BaseDetector(OutlierMixin, BaseEstimator):
    """Subclasses implement ``_fit(X)`` and ``_anomaly(X)`` on validated float arrays."""

    _parameter_constraints: dict = {"contamination": [Interval(Real, 0, 0.5, closed="right")]}
    _positive_only = False
    uses_groups = False  # True: fit/anomaly_score take the run of every LS (run_aware.py)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = self._positive_only
        return tags

    def _validate(self, X, reset: bool) -> np.ndarray:
        X = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])
        if self._positive_only and (X < 0).any():
            raise ValueError(
                f"Negative values in data passed to {type(self).__name__} (needs counts)"
            )
        return X

    def fit(self, X, y=None):
        self._validate_params()
        X = self._validate(X, reset=True)
        if X.shape[0] < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 samples, got 1 sample")
        self._fit(X)
        # the sklearn offset only serves predict(); an even subsample keeps fit linear-cost-free
        step = max(1, X.shape[0] // OFFSET_SAMPLES)
        scores = -self._anomaly(X[::step])
        self.offset_ = float(np.percentile(scores, 100.0 * self.contamination))
        return self

    def anomaly_score(self, X) -> np.ndarray:
        """Higher = more anomalous; what the pipeline combines and thresholds."""
        check_is_fitted(self, "offset_")
        return self._anomaly(self._validate(X, reset=False)).astype(np.float64)

    def score_samples(self, X) -> np.ndarray:
        return -self.anomaly_score(X)

    def decision_function(self, X) -> np.ndarray:
        return self.score_samples(X) - self.offset_

    def predict(self, X) -> np.ndarray:
        return np.where(self.decision_function(X) >= 0, 1, -1)

    def _fit(self, X: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _anomaly(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError
