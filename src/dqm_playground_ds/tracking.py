"""Experiment tracking (optional, off by default): every training run becomes one MLflow run.

``tracking.enabled: true`` (conf/base/parameters_tracking.yml, or ``--params tracking.enabled=true``)
and ``pip install -e ".[tracking]"``. A run that trains (its pipeline has ``train_strategies``)
logs to ``tracking.uri`` (default: a local file store ``mlruns/``):

* parameters: ``data_processing`` and ``data_science``, flattened (``data_science.seed``...);
* metrics per strategy: real labels (``<strategy>.real.auc``, ``.run_auc``, ``.wp_fpr``...) and per
  injected anomaly type (``<strategy>.injected.<type>.auc``...), plus the best strategy;
* artifacts: the report, metrics.json, strategy_metrics.csv and the frozen model folders of the run
  (``models/<name>/``).

A small hook on plain ``mlflow`` rather than kedro-mlflow: kedro-mlflow 2.0.3 resolves with
kedro 1.7 but pulls mlflow 3.17.2, which downgrades this project's pyarrow 26 to 25.
MLflow 3 refuses its file store unless ``MLFLOW_ALLOW_FILE_STORE=true``: the hook sets it for
``file:`` URIs (use ``sqlite:///mlflow.db`` with the full ``mlflow`` package instead).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from pydantic import BaseModel, ValidationError

from dqm_playground_ds.config import Config
from dqm_playground_ds.hooks import _filepath

log = logging.getLogger(__name__)

TRAINING_NODE = "train_strategies"
ARTIFACTS = ("report_html", "metrics", "strategy_metrics")
METRIC_KEYS = ("auc", "run_auc", "wp_tpr", "wp_fpr", "tpr_at_fpr_0.01", "fpr_at_tpr_0.9")


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings (and typed parameter models) -> ``{"a.b.c": leaf}`` (lists as JSON text)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(by_alias=True)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, (list, tuple)):
        value = json.dumps(value, default=str)
    return {prefix: value}


def strategy_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numbers worth comparing between trainings, from ``metrics.json``."""
    out: dict[str, float | None] = {}
    for name, entry in (metrics.get("strategies") or {}).items():
        for kind in ("real", "real_train_oof"):
            for key in METRIC_KEYS:
                out[f"{name}.{kind}.{key}"] = (entry.get(kind) or {}).get(key)
        for atype, res in (entry.get("injected") or {}).items():
            for key in METRIC_KEYS:
                out[f"{name}.injected.{atype}.{key}"] = res.get(key)
        out[f"{name}.threshold"] = entry.get("threshold")
    return {
        k.replace("@", "_"): float(v)
        for k, v in out.items()
        if isinstance(v, (int, float)) and math.isfinite(v)
    }


class TrackingSettings(Config):
    """``params:tracking`` (read by the hook, not by a node: checked here, unknown keys refused)."""

    enabled: bool = False
    uri: str | None = None  # null: local file store <project>/mlruns; or sqlite:///..., http://...
    experiment: str = "dqm-playground-ds"


class TrackingHook:
    """One MLflow run per training run, when ``tracking.enabled``."""

    def __init__(self) -> None:
        self._settings: dict[str, Any] = {}
        self._params: dict[str, Any] = {}
        self._project = Path.cwd()
        self._run: Any = None  # mlflow.ActiveRun while a training run is tracked

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._params = dict(context.params)
        try:
            settings = TrackingSettings.model_validate(self._params.get("tracking") or {})
        except ValidationError as exc:
            raise ValueError(f"parameters 'tracking': {exc}") from None
        self._settings = settings.model_dump()
        self._project = Path(context.project_path)

    def _active(self, pipeline: Any) -> bool:
        return bool(self._settings.get("enabled")) and any(
            n.name == TRAINING_NODE for n in pipeline.nodes
        )

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if not self._active(pipeline):
            return
        try:
            import mlflow
        except ImportError as exc:
            raise RuntimeError(
                'tracking.enabled is true but mlflow is not installed: pip install -e ".[tracking]"'
            ) from exc
        uri = str(self._settings.get("uri") or (self._project / "mlruns").as_uri())
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(str(self._settings.get("experiment", "dqm-playground-ds")))
        self._run = mlflow.start_run(run_name=run_params.get("session_id"))
        params = {}
        for group in ("data_processing", "data_science"):
            params.update(flatten(self._params.get(group) or {}, group))
        mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})
        mlflow.set_tags({"kedro.env": str(run_params.get("env")),
                         "kedro.pipeline": str(run_params.get("pipeline_name"))})  # fmt: skip
        log.info("tracking: MLflow run %s in %s", self._run.info.run_id, uri)

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if self._run is None:
            return
        import mlflow

        try:
            if "metrics" in pipeline.all_outputs():
                metrics = catalog.get("metrics").load()
                mlflow.log_metrics(strategy_metrics(metrics))
                best = metrics.get("best_strategy")
                if best:
                    mlflow.set_tag("best_strategy", str(best))
            for name in ARTIFACTS:
                if name in pipeline.all_outputs() and catalog.get(name) is not None:
                    path = _filepath(catalog.get(name))
                    if path and Path(path).is_file():
                        mlflow.log_artifact(path)
            if "frozen_models" in pipeline.all_outputs():
                self._log_models(catalog)
        finally:
            mlflow.end_run()
            self._run = None

    def _log_models(self, catalog: Any) -> None:
        import mlflow

        store = catalog.get("frozen_models").load()
        for name in store.names():
            folder = store.path(name)
            if folder.stat().st_mtime >= self._run.info.start_time / 1000 - 1:  # this run's
                mlflow.log_artifacts(str(folder), artifact_path=f"models/{name}")

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any], pipeline: Any,
                          catalog: Any) -> None:  # fmt: skip
        if self._run is None:
            return
        import mlflow

        mlflow.end_run(status="FAILED")
        self._run = None
