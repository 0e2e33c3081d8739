"""Inference nodes: a frozen model scores only the runs it has not scored yet.

The decisions are the training run's own node functions (``score_lumisections``, ``judge_runs``,
``certify_lumisections``) with the decision parameters stored in the model, so a run gets the
same LS scores, flags, run verdict and certification it would have got as a held-out run of the
training. Run verdicts are calibrated on the training runs' out-of-fold scores the model carries.

The ledger (``07_model_output/inference/scored_runs``) gets one partition per batch: the runs a
model version scored. A run in it is not scored again by that version; another version (a new
training) scores it afresh.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from dqm_playground_ds.histogram_tables import HistogramTable, as_table
from dqm_playground_ds.models import FrozenModel, ModelStore, check_compatible
from dqm_playground_ds.pipelines.data_processing.nodes import label_lumisections_node
from dqm_playground_ds.pipelines.data_processing.params import DataProcessingParams
from dqm_playground_ds.pipelines.data_science.nodes import (
    certify_lumisections,
    judge_runs,
    score_lumisections,
)
from dqm_playground_ds.pipelines.data_science.params import DataScienceParams
from dqm_playground_ds.pipelines.inference.params import InferenceParams
from dqm_playground_ds.processing.preprocessing import FeatureSet
from dqm_playground_ds.processing.split import APPLY

log = logging.getLogger(__name__)

LEDGER_COLUMNS = ("model", "model_version", "run", "n_lumisections", "scored_at")


def select_model(frozen_models: ModelStore, params: InferenceParams) -> FrozenModel:
    """``inference.model``: a name (latest version), ``name@version``, or a model folder path/URI."""
    model = frozen_models.load(params.model)
    log.info("inference with model %s version %s (trained on runs %s)", model.name,
             model.version, model.meta.get("training", {}).get("runs"))  # fmt: skip
    return model


def _load_partitions(partitions: Mapping[str, Callable[[], pd.DataFrame]]) -> pd.DataFrame:
    frames = [load() for _, load in sorted(partitions.items())]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def select_new_runs(
    histograms: HistogramTable | pd.DataFrame,
    scored_runs: Mapping[str, Callable[[], pd.DataFrame]],
    model: FrozenModel,
    params: InferenceParams,
) -> pd.DataFrame:
    """Histograms of the runs this model version has not scored (nor trained on, by default).

    The model's MEs and binnings are checked against these runs: a mismatch stops the run.
    """
    ledger = _load_partitions(scored_runs)
    done: set[int] = set()
    if not ledger.empty:
        mine = (ledger["model"] == model.name) & (ledger["model_version"] == model.version)
        done = set(ledger.loc[mine, "run"].astype("int64").tolist())
    if params.skip_training_runs:
        done |= set(model.meta.get("training", {}).get("runs", []))
    table = as_table(histograms)
    all_runs = sorted(set(table.read(columns=["run"])["run"].astype("int64").tolist()))
    new = table.read(runs=[r for r in all_runs if r not in done])  # the new runs' bins only
    log.info("inference: %d run(s) in the data, %d new: %s", len(all_runs),
             new["run"].nunique(), sorted(set(new["run"].tolist()))[:20])  # fmt: skip
    check_compatible(model.binning, new, f"model {model.name}@{model.version}")
    return new


def prepare_new_lumisections(
    new_histograms: pd.DataFrame,
    model: FrozenModel,
    golden_json: Mapping[str, Any],
    dcs_json: Mapping[str, Any] | None,
    params: DataProcessingParams,
    bad_runs: Any = None,
) -> tuple[dict[str, FeatureSet], pd.DataFrame]:
    """Labels (if the runs are certified already), split ``apply``, the model's preprocessing."""
    variant = model.strategy.spec.preprocessing
    if new_histograms.empty:
        return {}, pd.DataFrame()
    labelled = label_lumisections_node(new_histograms, golden_json, dcs_json, params, bad_runs)
    ls = labelled.assign(split=pd.Series(APPLY, index=labelled.index, dtype="string"))
    features = model.preprocessor.transform(new_histograms, ls[["run", "lumi"]])[variant]
    quality, detail = features.ls_quality()
    ls = ls.reset_index(drop=True).assign(
        quality=pd.Series(quality, dtype="string"),
        quality_detail=pd.Series(detail, dtype="string"),
        scorable=features.scorable,
        train=False,
    )
    return {variant: features}, ls


def _decision(model: FrozenModel) -> DataScienceParams:
    """The training run's decision settings, checked as the training run checked them."""
    return DataScienceParams.model_validate(model.decision_params)


def score_new_lumisections(
    model: FrozenModel, new_features: dict[str, FeatureSet], new_lumisections: pd.DataFrame
) -> pd.DataFrame:
    """LS predictions exactly as the training run's ``score_lumisections`` writes them."""
    if new_lumisections.empty:
        return pd.DataFrame()
    predictions, _ = score_lumisections(
        {model.name: model.strategy}, new_features, new_lumisections, _decision(model)
    )
    return predictions.assign(model_version=pd.Series(model.version, index=predictions.index,
                                                     dtype="string"))  # fmt: skip


def judge_new_runs(model: FrozenModel, new_predictions: pd.DataFrame) -> pd.DataFrame:
    """Run verdicts by ``judge_runs``, calibrated on the model's training runs (then dropped)."""
    if new_predictions.empty:
        return pd.DataFrame()
    training = model.training_predictions.assign(strategy=model.name)
    new = new_predictions.drop(columns=["model_version"])
    verdicts = judge_runs(pd.concat([training, new], ignore_index=True), _decision(model))
    verdicts = verdicts[verdicts["run"].isin(set(new["run"].tolist()))].reset_index(drop=True)
    return verdicts.assign(model_version=pd.Series(model.version, index=verdicts.index,
                                                   dtype="string"))  # fmt: skip


def record_batch(
    model: FrozenModel, new_predictions: pd.DataFrame, new_run_predictions: pd.DataFrame
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """One partition of LS predictions, run predictions and ledger rows for this batch."""
    if new_predictions.empty:
        log.info("inference: no new run to score")
        return {}, {}, {}
    runs = new_predictions.groupby("run").size()
    batch = f"{model.name}__{model.version}__{int(runs.index.min())}-{int(runs.index.max())}"
    ledger = pd.DataFrame(
        {
            "model": model.name,
            "model_version": model.version,
            "run": runs.index.to_numpy(dtype="int64"),
            "n_lumisections": runs.to_numpy(dtype="int64"),
            "scored_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    log.info("inference batch %s: %d run(s), %d LS", batch, len(runs), len(new_predictions))
    return {batch: new_predictions}, {batch: new_run_predictions}, {batch: ledger}


def _latest(previous: pd.DataFrame, new: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    frames = [f for f in (previous, new) if not f.empty]
    if not frames:
        return pd.DataFrame()
    both = pd.concat(frames, ignore_index=True)
    return both.drop_duplicates(keys, keep="last").reset_index(drop=True)


def certify_inferred(
    model: FrozenModel,
    previous_predictions: Mapping[str, Callable[[], pd.DataFrame]],
    new_predictions: pd.DataFrame,
    previous_run_predictions: Mapping[str, Callable[[], pd.DataFrame]],
    new_run_predictions: pd.DataFrame,
    golden_json: Mapping[str, Any],
    dcs_json: Mapping[str, Any] | None,
) -> dict[str, dict[str, list[list[int]]]]:
    """The ML certification JSON of every run this model version scored, by
    ``certify_lumisections`` (same format and settings as the training run)."""
    keep = ["strategy", "run", "lumi"]
    preds = _latest(_load_partitions(previous_predictions), new_predictions, keep)
    runs = _latest(_load_partitions(previous_run_predictions), new_run_predictions, keep[:2])
    if preds.empty:
        return {}
    mine = (preds["strategy"] == model.name) & (preds["model_version"] == model.version)
    preds = preds[mine]
    runs = runs[(runs["strategy"] == model.name) & (runs["model_version"] == model.version)]
    dcs = None if dcs_json is None else dict(dcs_json)
    return certify_lumisections(preds, runs, dict(golden_json), dcs, _decision(model))
