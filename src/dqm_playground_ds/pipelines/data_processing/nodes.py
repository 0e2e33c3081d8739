"""Processing nodes: label each LS, split by run, fit preprocessing on training LS, build features.

Every node is a pure function of frames and parameters (``params:data_processing``); the
domain work lives in :mod:`dqm_playground_ds.labels`, :mod:`dqm_playground_ds.split` and
:mod:`dqm_playground_ds.preprocessing`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from dqm_playground_ds.labels import LumiMask, label_lumisections, parse_bad_runs
from dqm_playground_ds.preprocessing import FeatureSet, HistogramPreprocessor
from dqm_playground_ds.split import APPLY, TRAIN, RunSplit

log = logging.getLogger(__name__)


def _lumisection_keys(histograms: pd.DataFrame) -> pd.DataFrame:
    keys = histograms.loc[histograms["lumi"] > 0, ["run", "lumi"]].drop_duplicates()
    return keys.sort_values(["run", "lumi"], ignore_index=True).astype("int64")


def label_lumisections_node(
    histograms: pd.DataFrame,
    golden_json: Mapping[str, Any],
    dcs_json: Mapping[str, Any] | None,
    params: dict[str, Any],
    bad_runs: Any = None,
) -> pd.DataFrame:
    """good / bad / unknown for every LS of the histogram table (run-level rows are skipped).

    An empty ``dcs_json`` (``{}``) or ``labels.use_dcs: false`` means no DCS information. Bad runs
    are those of the ``bad_runs`` dataset (a JSON list of runs, or ``{"bad_runs": [...]}``) and of
    ``labels.bad_runs``.
    """
    p = dict(params.get("labels") or {})
    overlap = p.get("overlapping_ranges", "raise")
    golden = LumiMask.from_json(golden_json, name="golden JSON", overlap=overlap)
    dcs = None
    if p.get("use_dcs", True) and dcs_json:
        dcs = LumiMask.from_json(dcs_json, name="DCS JSON", overlap=overlap)
    keys = _lumisection_keys(histograms)
    out = label_lumisections(
        keys["run"].to_numpy(),
        keys["lumi"].to_numpy(),
        golden,
        dcs,
        parse_bad_runs(p.get("bad_runs")) | _bad_runs_dataset(bad_runs),
        certified_runs=p.get("certified_runs", "golden"),
    )
    counts = out.groupby(["label", "label_reason"], observed=True).size().to_dict()
    log.info("labelled %d LS: %s", len(out), counts)
    return out


def _bad_runs_dataset(value: Any) -> frozenset[int]:
    if isinstance(value, Mapping):
        if set(value) - {"bad_runs"}:
            raise ValueError(
                f"bad_runs dataset: expected a list of runs or {{'bad_runs': [...]}}, got keys "
                f"{sorted(value)}"
            )
        value = value.get("bad_runs")
    try:
        return parse_bad_runs(value)
    except ValueError as exc:
        raise ValueError(f"bad_runs dataset: {exc}") from exc


def assign_split(
    labelled: pd.DataFrame, split_definition: Mapping[str, Any] | None, params: dict[str, Any]
) -> pd.DataFrame:
    """Add ``split`` (train/apply) by run, from ``split_definition`` (a task file or platform task
    converted to a mapping) if given, else ``params['split']``.

    LS of runs in neither side go to apply when the split lists no apply runs, and are dropped
    (and logged) otherwise.
    """
    spec = split_definition or params.get("split")
    source = "split_definition dataset" if split_definition else "parameters"
    if not spec:
        raise ValueError("no split: set data_processing.split or the split_definition dataset")
    split = RunSplit.from_mapping(spec)
    side = split.assign(labelled["run"], labelled["lumi"]).to_numpy(dtype=object)
    missing = pd.isna(side)
    if missing.any():
        if not (split.apply_runs or split.apply_lumis):
            side[missing] = APPLY
            missing[:] = False
        else:
            runs = sorted(set(labelled.loc[missing, "run"].tolist()))
            log.warning("split %r: %d LS of runs %s in neither side: dropped", split.name,
                        int(missing.sum()), runs)  # fmt: skip
    out = labelled.assign(split=pd.Series(side, dtype="string"))[~missing].reset_index(drop=True)
    log.info(
        "split %r from %s: %s",
        split.name,
        source,
        out.groupby(["split", "label"], observed=True).size().to_dict(),
    )
    return out


def _training_keys(lumisections: pd.DataFrame) -> pd.DataFrame:
    train = lumisections[(lumisections["split"] == TRAIN) & (lumisections["label"] == "good")]
    if train.empty:
        counts = lumisections.groupby(["split", "label"], observed=True).size().to_dict()
        raise ValueError(
            "the split has no good training LS (LS per split and label: "
            f"{counts}); check the split runs and the golden JSON"
        )
    return train[["run", "lumi"]]


def fit_preprocessor(
    histograms: pd.DataFrame, lumisections: pd.DataFrame, params: dict[str, Any]
) -> HistogramPreprocessor:
    """Binning and reference shape of every ME from the good training LS only."""
    pre = HistogramPreprocessor(
        params.get("preprocessing") or {"default": {}},
        params.get("quality") or {},
        chunk_size=int(params.get("chunk_size", 4096)),
    )
    return pre.fit(histograms, _training_keys(lumisections))


def build_features(
    histograms: pd.DataFrame,
    lumisections: pd.DataFrame,
    preprocessor: HistogramPreprocessor,
    params: dict[str, Any],
) -> tuple[dict[str, FeatureSet], pd.DataFrame]:
    """Per-ME feature matrices of every LS and the labelled LS table with its quality.

    ``train`` marks the LS the detectors learn from: training split, golden, quality ok.
    """
    keys = lumisections[["run", "lumi"]]
    features = preprocessor.transform(histograms, keys)
    first = next(iter(features.values()))
    quality, detail = first.ls_quality()
    out = lumisections.reset_index(drop=True).assign(
        quality=pd.Series(quality, dtype="string"),
        quality_detail=pd.Series(detail, dtype="string"),
        scorable=first.scorable,
    )
    out["train"] = (out["split"] == TRAIN) & (out["label"] == "good") & (out["quality"] == "ok")
    n_train = int(out["train"].sum())
    minimum = int(params.get("min_train_lumisections", 10))
    if n_train < minimum:
        raise ValueError(
            f"only {n_train} good training LS pass the quality cuts (minimum "
            f"{minimum}); quality of training LS: "
            f"{out.loc[out['split'] == TRAIN, 'quality'].value_counts().to_dict()}"
        )
    log.info("%d LS, %d for training; quality: %s", len(out), n_train,
             out["quality"].value_counts().to_dict())  # fmt: skip
    return features, out


def me_references(preprocessor: HistogramPreprocessor) -> pd.DataFrame:
    """Reference shape per ME (original binning) for plots and injection."""
    refs = preprocessor.references()
    refs["data"] = [np.asarray(v, dtype=np.float64) for v in refs["data"]]
    return refs
