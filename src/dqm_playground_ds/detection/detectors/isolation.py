"""Isolation Forest: global outliers, optionally in a PCA projection of the normalised histogram.

Random axis-aligned cuts isolate a point in few steps when it lies far from the bulk. In 100+
dimensions most cuts fall on uninformative bins, so ``n_components`` (a PCA fitted on the same
training LS) concentrates the cuts on the directions where good histograms actually vary.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.utils._param_validation import Interval

from dqm_playground_ds.detection.detectors.base import BaseDetector


def fit_projection(X: np.ndarray, n_components: int | None) -> PCA | None:
    """A PCA with at most ``n_components`` (None = no projection)."""
    if n_components is None:
        return None
    k = max(1, min(n_components, X.shape[0] - 1, X.shape[1]))
    return PCA(n_components=k, svd_solver=pca_solver(X, k), random_state=0).fit(X)


def pca_solver(X: np.ndarray, k: int) -> str:
    """Eigen-decomposition of the d x d covariance when samples outnumber bins: exact, deterministic
    and O(n d^2) (a full SVD of 100k x 700 costs minutes, a randomized one many QR passes)."""
    return "covariance_eigh" if X.shape[0] > 2 * X.shape[1] else "full"


class IsolationForestDetector(BaseDetector):
    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(
        self,
        n_estimators: int = 200,
        max_samples: int | str = "auto",
        n_components: int | None = None,
        contamination: float = 0.01,
        random_state: int | None = None,
    ):
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.n_components = n_components
        self.contamination = contamination
        self.random_state = random_state

    def _project(self, X: np.ndarray) -> np.ndarray:
        return X if self.projection_ is None else self.projection_.transform(X)

    def _fit(self, X: np.ndarray) -> None:
        self.projection_ = fit_projection(X, self.n_components)
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            random_state=self.random_state,
        ).fit(self._project(X))

    def _anomaly(self, X: np.ndarray) -> np.ndarray:
        return -self.forest_.score_samples(self._project(X))
