"""Fitted estimators <-> JSON + named arrays, with no pickle anywhere.

A fitted object becomes ``{"__estimator__": name, "params": ..., "state": ...}``: ``name`` is
looked up in :data:`CLASSES` (an explicit allow-list, never an import path from the file), the
constructor gets ``params`` and the fitted attributes come back from ``state``. Arrays go to an
``.npz`` written and read with ``allow_pickle=False``: object arrays are refused at save time.

Three scikit-learn estimators keep a search tree (a compiled object) beside their fitted data:
``NearestNeighbors``, ``LocalOutlierFactor`` and ``KernelDensity`` are stored as their training
matrix and parameters and the tree is rebuilt on load (deterministic: the same neighbours, the same
distances). ``IsolationForest`` (its trees are compiled objects whose layout changes between
scikit-learn releases) is stored as the flat node arrays of :mod:`~dqm_playground_ds.models.forest`
(format version 2) and comes back as an :class:`IsolationForestArrays` that scores exactly like it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.decomposition import NMF, PCA
from sklearn.ensemble import IsolationForest
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KernelDensity, LocalOutlierFactor, NearestNeighbors
from sklearn.neural_network import MLPRegressor

from dqm_playground_ds.detection.combine import ScoreCombiner
from dqm_playground_ds.detection.detectors import REGISTRY
from dqm_playground_ds.models.forest import IsolationForestArrays


class ModelFormatError(ValueError):
    """A model cannot be written in, or read from, the stable format; the message says what."""


_PROJECT = {cls.__name__: cls for cls, _, _ in REGISTRY.values()} | {"ScoreCombiner": ScoreCombiner}
# sklearn estimators restored by setting their fitted attributes
_ATTRIBUTE = {
    "PCA": PCA,
    "NMF": NMF,
    "GaussianMixture": GaussianMixture,
    "MLPRegressor": MLPRegressor,
}
# sklearn estimators rebuilt from their stored training matrix: name -> (class, data of a fitted one)
_REFIT: dict[str, tuple[type, Callable[[Any], np.ndarray]]] = {
    "NearestNeighbors": (NearestNeighbors, lambda m: m._fit_X),
    "LocalOutlierFactor": (LocalOutlierFactor, lambda m: m._fit_X),
    "KernelDensity": (KernelDensity, lambda m: np.asarray(m.tree_.data)),
}
# flat arrays standing for a compiled estimator (format version 2): name -> class
_ARRAYS = {"IsolationForestArrays": IsolationForestArrays}
CLASSES = {**_PROJECT, **_ARRAYS, **{f"sklearn.{k}": v for k, v in _ATTRIBUTE.items()}}
CLASSES |= {f"sklearn.{k}": v for k, (v, _) in _REFIT.items()}
# training-time bookkeeping that scoring never reads (optimiser state, loss curves, RNGs)
_SKIP = {
    "_optimizer",
    "_random_state",
    "loss_curve_",
    "validation_scores_",
    "best_validation_score_",
    "_best_coefs",
    "_best_intercepts",
    "_no_improvement_count",
    "best_loss_",
    "t_",
    "_label_binarizer",
    "_validation_fraction_indices",
}


def _name_of(obj: Any) -> str | None:
    cls = type(obj)
    if cls.__name__ in _PROJECT and _PROJECT[cls.__name__] is cls:
        return cls.__name__
    for table in (_ATTRIBUTE, {k: v for k, (v, _) in _REFIT.items()}):
        if cls.__name__ in table and table[cls.__name__] is cls:
            return f"sklearn.{cls.__name__}"
    return None


class Encoder:
    """Collects the arrays of one model while turning objects into JSON values."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def __call__(self, value: Any, key: str) -> Any:  # noqa: PLR0911
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
            return int(value)
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, (float, np.floating)):
            v = float(value)
            return v if math.isfinite(v) else {"__float__": repr(v)}
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                if all(isinstance(v, str) for v in value.ravel()):
                    value = value.astype(str)
                else:
                    raise ModelFormatError(f"{key}: object array cannot be stored without pickle")
            if key in self.arrays:
                raise ModelFormatError(f"{key}: array key used twice")
            self.arrays[key] = value
            return {"__array__": key}
        if isinstance(value, tuple):
            return {"__tuple__": [self(v, f"{key}.{i}") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self(v, f"{key}.{i}") for i, v in enumerate(value)]
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise ModelFormatError(f"{key}: dict keys must be strings")
            return {"__dict__": {k: self(v, f"{key}.{k}") for k, v in value.items()}}
        return self._estimator(value, key)

    def _estimator(self, obj: Any, key: str) -> Any:
        if isinstance(obj, IsolationForest):
            obj = IsolationForestArrays.from_sklearn(obj)
        if isinstance(obj, IsolationForestArrays):
            return {
                "__estimator__": "IsolationForestArrays",
                "params": self(
                    {"n_features_in": obj.n_features_in, "denominator": obj.denominator},
                    f"{key}.params",
                ),
                "state": self(dict(obj.arrays), f"{key}.state"),
            }
        name = _name_of(obj)
        if name is None:
            raise ModelFormatError(
                f"{key}: {type(obj).__module__}.{type(obj).__name__} has no codec in the stable "
                "model format (see docs/models.md)"
            )
        params = obj.get_params(deep=False)
        if name.removeprefix("sklearn.") in _REFIT:
            _, data = _REFIT[name.removeprefix("sklearn.")]
            state: dict[str, Any] = {"X": data(obj)}
            if isinstance(obj, KernelDensity):
                params = {**params, "bandwidth": float(obj.bandwidth_)}
            if isinstance(obj, (NearestNeighbors, LocalOutlierFactor)):
                params = {**params, "n_neighbors": int(obj.n_neighbors)}
        else:
            state = {
                k: v
                for k, v in vars(obj).items()
                if k not in params and k not in _SKIP and not k.startswith("__")
            }
        return {
            "__estimator__": name,
            "params": self(params, f"{key}.params"),
            "state": self(state, f"{key}.state"),
        }


def decode(value: Any, arrays: dict[str, np.ndarray]) -> Any:  # noqa: PLR0911
    """Inverse of :class:`Encoder` (``arrays`` from the model's npz)."""
    if isinstance(value, list):
        return [decode(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        key = value["__array__"]
        if key not in arrays:
            raise ModelFormatError(f"array {key!r} missing from the model's arrays file")
        return arrays[key]
    if "__float__" in value:
        return float(value["__float__"])
    if "__tuple__" in value:
        return tuple(decode(v, arrays) for v in value["__tuple__"])
    if "__dict__" in value:
        return {k: decode(v, arrays) for k, v in value["__dict__"].items()}
    if "__estimator__" in value:
        return _build(value, arrays)
    raise ModelFormatError(f"unknown JSON node with keys {sorted(value)}")


def _build(node: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    name = node["__estimator__"]
    if name not in CLASSES:
        raise ModelFormatError(f"unknown estimator {name!r}; known: {sorted(CLASSES)}")
    cls = CLASSES[name]
    params = decode(node["params"], arrays)
    state = decode(node["state"], arrays)
    if name in _ARRAYS:
        return cls(**params, **state)
    obj = cls(**params)
    short = name.removeprefix("sklearn.")
    if name.startswith("sklearn.") and short in _REFIT:
        return obj.fit(state["X"])
    obj.__dict__.update(state)
    return obj
