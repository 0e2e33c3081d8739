"""Local outliers: Local Outlier Factor or mean distance to the k nearest good training LS.

Neighbour methods catch LS that sit in an empty region *between* populated ones (a run with its
own conditions), which global models such as PCA or Isolation Forest average over. Distances are
Euclidean on normalised histograms, optionally in a PCA projection (``n_components``) that keeps
the cost linear in the number of scored LS and drops noise-only directions.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors
from sklearn.utils._param_validation import Interval, StrOptions

from dqm_playground_ds.detection.detectors.base import BaseDetector
from dqm_playground_ds.detection.detectors.isolation import fit_projection, project


class NeighborsDetector(BaseDetector):
    """``method="lof"`` (density ratio) or ``"knn"`` (mean distance to the k nearest)."""

    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "method": [StrOptions({"lof", "knn"})],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(
        self,
        method: str = "lof",
        n_neighbors: int = 20,
        n_components: int | None = None,
        contamination: float = 0.01,
    ):
        self.method = method
        self.n_neighbors = n_neighbors
        self.n_components = n_components
        self.contamination = contamination

    def _project(self, X: np.ndarray) -> np.ndarray:
        return project(self.projection_, X)

    def _fit(self, X: np.ndarray) -> None:
        self.projection_ = fit_projection(X, self.n_components)
        Z = self._project(X)
        self.n_neighbors_ = min(self.n_neighbors, len(X) - 1)
        if self.method == "lof":
            self.model_ = LocalOutlierFactor(n_neighbors=self.n_neighbors_, novelty=True).fit(Z)
        else:
            self.model_ = NearestNeighbors(n_neighbors=self.n_neighbors_).fit(Z)

    def _anomaly(self, X: np.ndarray) -> np.ndarray:
        Z = self._project(X)
        if self.method == "lof":
            return -self.model_.score_samples(Z)
        dist, _ = self.model_.kneighbors(Z)
        return dist.mean(axis=1)
