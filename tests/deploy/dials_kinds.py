"""Generated data and strategies covering every detector kind and combination of the project,
trained by the real node functions (shared by the DIALS package tests, numpy and ONNX)."""

from __future__ import annotations

from typing import Any

from dqm_playground_ds.models import FrozenModel, freeze
from dqm_playground_ds.pipelines.data_processing import nodes as proc
from dqm_playground_ds.pipelines.data_processing.params import DataProcessingParams
from dqm_playground_ds.pipelines.data_science import nodes as sci
from dqm_playground_ds.pipelines.data_science.params import DataScienceParams
from tests.detection_data import golden_for, make_histograms

# every detector kind and combination, on generated data (two 1D MEs and a 2D map, 4 runs)
PROCESSING = {
    "split": {"name": "t", "train": {"runs": [1, 2, 3]}, "apply": {"runs": [4, 5]}},
    "labels": {"use_dcs": False},
    "quality": {"min_entries": 10},
    "preprocessing": {"default": {"2d": {"rebin": [2, 2]}}, "fine": {}},
}


def _strategy(detectors, method="max_z", preprocessing="default", consecutive=1):
    return {"preprocessing": preprocessing, "detectors": detectors,
            "combination": {"method": method}, "threshold": {"consecutive": consecutive}}  # fmt: skip


KINDS = {
    "neighbours_kde": _strategy(
        [{"name": "knn", "kind": "knn", "params": {"n_neighbors": 4}},
         {"name": "lof", "kind": "lof", "params": {"n_neighbors": 5, "n_components": 3}}], "kde"),
    "reconstruction_gmm": _strategy(
        [{"name": "pca", "kind": "pca", "params": {"n_components": 2, "top_n": 5}},
         {"name": "nmf", "kind": "nmf", "params": {"n_components": 2, "max_iter": 50}},
         {"name": "ae", "kind": "autoencoder",
          "params": {"hidden_layer_sizes": [6, 2, 6], "max_iter": 20, "activation": "relu"}}],
        "gmm"),
    "forest": _strategy(
        [{"name": "if", "kind": "isolation_forest", "params": {"n_estimators": 20}},
         {"name": "if_pca", "kind": "isolation_forest",
          "params": {"n_estimators": 20, "n_components": 3}}]),
    "run_aware": _strategy(
        [{"name": "run_knn", "kind": "run_knn", "params": {"n_neighbors": 2}},
         {"name": "within", "kind": "within_run", "params": {"statistic": "scan"}},
         {"name": "chi2", "kind": "reference_test", "params": {"statistic": "chi2"}},
         {"name": "max_pull", "kind": "reference_test", "params": {"statistic": "max_pull"}},
         {"name": "top_n", "kind": "reference_test", "params": {"statistic": "top_n"}},
         {"name": "norm", "kind": "reference_test",
          "params": {"statistic": "chi2_norm", "method": "poisson"}},
         {"name": "integral", "kind": "integral_ratio", "params": {"side": "low"}}],
        "mean_z", "fine"),
    "causal": _strategy(
        [{"name": "run_knn", "kind": "run_knn", "params": {"n_neighbors": 2, "mode": "causal"}},
         {"name": "within", "kind": "within_run", "params": {"statistic": "chi2",
                                                             "mode": "causal"}}],
        "mean_z", "fine", consecutive=2),
}  # fmt: skip


def generated() -> tuple[Any, ...]:
    """Five runs (1-3 train, 4-5 apply), three MEs, a few empty LS."""
    hist = make_histograms({1: 10, 2: 10, 3: 10, 4: 8, 5: 6}, entries=2000.0, seed=5,
                           run_scale=0.02)  # fmt: skip
    hist.loc[hist.index[:3], "data"] = hist.loc[hist.index[:3], "data"].map(lambda d: d * 0)
    pp = DataProcessingParams.model_validate(PROCESSING)
    labelled = proc.label_lumisections_node(hist, golden_for(hist), {}, pp, [])
    split = proc.assign_split(labelled, {}, pp)
    pre = proc.fit_preprocessor(hist, split, pp)
    features, ls = proc.build_features(hist, split, pre, pp)
    return hist, pre, features, ls


def train_kinds(generated: tuple[Any, ...]) -> dict[str, FrozenModel]:
    """Every strategy of :data:`KINDS`, frozen."""
    _, pre, features, ls = generated
    params = {"seed": 3, "calibration_folds": 2, "strategies": KINDS}
    typed = DataScienceParams.model_validate(params)
    models = sci.train_strategies(features, ls, typed)
    preds, _ = sci.score_lumisections(models, features, ls, typed)
    return {name: freeze(name, models[name], pre, preds, params) for name in KINDS}
