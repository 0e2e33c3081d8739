"""Per-ME anomaly detectors (scikit-learn outlier-detector API) and their registry.

Each detector family lives in its own module; :data:`REGISTRY` maps the name used in parameters to
the class, its fixed keyword arguments and the input it needs from a feature set: ``counts``
(statistics-aware tests), ``values`` (normalised histograms) or ``integral_ratio``. Detectors with
``uses_groups`` (run_aware.py) also receive the run of every LS when fitted and scored.
"""

from __future__ import annotations

from typing import Any

from dqm_playground_ds.detection.detectors.base import BaseDetector, top_n_mean
from dqm_playground_ds.detection.detectors.isolation import IsolationForestDetector
from dqm_playground_ds.detection.detectors.neighbors import NeighborsDetector
from dqm_playground_ds.detection.detectors.reconstruction import (
    MLPAutoencoder,
    NMFReconstruction,
    PCAReconstruction,
)
from dqm_playground_ds.detection.detectors.reference import ReferenceTest
from dqm_playground_ds.detection.detectors.robust import RobustZScore
from dqm_playground_ds.detection.detectors.run_aware import (
    RunContext,
    RunNeighbors,
    WithinRunDeviation,
)

INPUTS = ("counts", "values", "integral_ratio")

# name -> (class, fixed kwargs, input)
REGISTRY: dict[str, tuple[type[BaseDetector], dict[str, Any], str]] = {
    "reference_test": (ReferenceTest, {}, "counts"),
    "pca": (PCAReconstruction, {}, "values"),
    "nmf": (NMFReconstruction, {}, "values"),
    "autoencoder": (MLPAutoencoder, {}, "values"),
    "isolation_forest": (IsolationForestDetector, {}, "values"),
    "lof": (NeighborsDetector, {"method": "lof"}, "values"),
    "knn": (NeighborsDetector, {"method": "knn"}, "values"),
    "integral_ratio": (RobustZScore, {}, "integral_ratio"),
    "run_knn": (RunNeighbors, {}, "values"),
    "within_run": (WithinRunDeviation, {}, "counts"),
}


def make_detector(kind: str, params: dict[str, Any] | None = None) -> tuple[BaseDetector, str]:
    """A fresh detector and the input it takes; unknown kinds and parameters fail here."""
    if kind not in REGISTRY:
        raise ValueError(f"unknown detector {kind!r}; known: {sorted(REGISTRY)}")
    cls, fixed, needs = REGISTRY[kind]
    params = dict(params or {})
    if "hidden_layer_sizes" in params:
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    valid = set(cls().get_params())
    unknown = set(params) - valid
    if unknown:
        raise ValueError(f"detector {kind!r}: unknown parameter(s) {sorted(unknown)}")
    return cls(**fixed, **params), needs


__all__ = [
    "INPUTS",
    "REGISTRY",
    "BaseDetector",
    "IsolationForestDetector",
    "MLPAutoencoder",
    "NMFReconstruction",
    "NeighborsDetector",
    "PCAReconstruction",
    "ReferenceTest",
    "RobustZScore",
    "RunContext",
    "RunNeighbors",
    "WithinRunDeviation",
    "make_detector",
    "top_n_mean",
]
