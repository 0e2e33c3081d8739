"""Experiment tracking hook: one MLflow run (params, metrics, artifacts) per training run only."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Node, Pipeline
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset

from dqm_playground_ds.tracking import TrackingHook, flatten, strategy_metrics

mlflow = pytest.importorskip("mlflow", reason="tracking extra not installed")

METRICS = {
    "strategies": {
        "two_level": {
            "threshold": 1.5,
            "real": {"auc": 0.97, "run_auc": 1.0, "wp_fpr": 0.01, "n_pos": 10},
            "injected": {"shift": {"auc": 0.9}, "dead_region": {"auc": float("nan")}},
        }
    },
    "best_strategy": "two_level",
}


def _train(params):
    return {"fitted": True}


def _evaluate(models):
    return METRICS


def _pipeline(train: bool) -> Pipeline:
    first = Node(_train, "params:data_science", "strategy_models",
                 name="train_strategies" if train else "something_else")  # fmt: skip
    return Pipeline([first, Node(_evaluate, "strategy_models", "metrics", name="evaluate")])


def _run(tmp_path, train: bool, enabled: bool = True) -> None:
    params = {
        "tracking": {"enabled": enabled, "uri": (tmp_path / "mlruns").as_uri(), "experiment": "t"},
        "data_science": {"seed": 1, "strategies": {"two_level": {"detectors": [{"kind": "knn"}]}}},
        "data_processing": {"quality": {"min_entries": 100}},
    }
    hook = TrackingHook()
    hook.after_context_created(SimpleNamespace(params=params, project_path=tmp_path))
    catalog = DataCatalog(
        {
            "params:data_science": MemoryDataset(params["data_science"]),
            "metrics": JSONDataset(filepath=str(tmp_path / "metrics.json")),
        }
    )
    pipeline = _pipeline(train)
    run_params = {"session_id": "s1", "env": "test", "pipeline_name": None}
    hook.before_pipeline_run(run_params, pipeline, catalog)
    SequentialRunner().run(pipeline, catalog)
    hook.after_pipeline_run(run_params, pipeline, catalog)


def _runs(tmp_path):
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    return mlflow.search_runs(experiment_names=["t"], output_format="list")


def test_one_run_per_training_run_with_params_metrics_and_report(tmp_path):
    _run(tmp_path, train=True)
    _run(tmp_path, train=True)
    _run(tmp_path, train=False)  # inference or extraction: not a training
    runs = _runs(tmp_path)
    assert len(runs) == 2
    run = runs[0]
    assert run.data.params["data_science.seed"] == "1"
    assert run.data.params["data_processing.quality.min_entries"] == "100"
    assert run.data.metrics["two_level.real.auc"] == 0.97
    assert run.data.metrics["two_level.injected.shift.auc"] == 0.9
    assert "two_level.injected.dead_region.auc" not in run.data.metrics  # NaN is not logged
    assert run.data.tags["best_strategy"] == "two_level"
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)]
    assert "metrics.json" in artifacts
    assert json.loads((tmp_path / "metrics.json").read_text())["best_strategy"] == "two_level"


def test_off_by_default_nothing_is_written(tmp_path):
    _run(tmp_path, train=True, enabled=False)
    assert not (tmp_path / "mlruns").exists()


def test_flatten_and_metric_selection():
    assert flatten({"a": {"b": 1, "c": [1, 2]}}) == {"a.b": 1, "a.c": "[1, 2]"}
    m = strategy_metrics(METRICS)
    assert m["two_level.threshold"] == 1.5 and "two_level.real.n_pos" not in m
