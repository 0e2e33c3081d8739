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

PROJECT_CHUNK = 8192  # rows upcast to float64 at a time when projecting (bounded memory)


def fit_projection(X: np.ndarray, n_components: int | None) -> PCA | None:
    """A PCA with at most ``n_components`` (None = no projection), fitted in float64.

    Features are stored as float32; a float32 PCA projects in float32, whose rounding differs
    between BLAS implementations by ~1 ulp (~1e-6 of a kNN distance): in float64 the projection
    is the same to ~1e-15 in numpy, the DIALS handler and an ONNX graph of the detector."""
    if n_components is None:
        return None
    k = max(1, min(n_components, X.shape[0] - 1, X.shape[1]))
    X = np.asarray(X, dtype=np.float64)
    return PCA(n_components=k, svd_solver=pca_solver(X, k), random_state=0).fit(X)


def project(pca: PCA | None, X: np.ndarray, chunk: int = PROJECT_CHUNK) -> np.ndarray:
    """``pca.transform(X)`` in the PCA's own dtype, ``chunk`` rows at a time.

    Float64 for a PCA fitted here; float32 for one frozen before (model format <= 2 fixtures
    score as they were written). Only one chunk of X is upcast at a time."""
    if pca is None:
        return X
    dtype = pca.components_.dtype
    out = np.empty((len(X), int(pca.n_components_)), dtype=dtype)
    for start in range(0, len(X), chunk):
        out[start : start + chunk] = pca.transform(X[start : start + chunk].astype(dtype))
    return out


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
        return project(self.projection_, X)

    def _fit(self, X: np.ndarray) -> None:
        self.projection_ = fit_projection(X, self.n_components)
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            random_state=self.random_state,
        ).fit(self._project(X))

    def _anomaly(self, X: np.ndarray) -> np.ndarray:
        return -self.forest_.score_samples(self._project(X))
