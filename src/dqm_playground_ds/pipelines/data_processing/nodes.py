"""Processing nodes: label each LS, split by run, fit preprocessing on training LS, build features.

Every node is a pure function of frames and :class:`~.params.DataProcessingParams`; the
domain work lives in :mod:`dqm_playground_ds.processing.labels`, :mod:`dqm_playground_ds.processing.split` and
:mod:`dqm_playground_ds.processing.preprocessing`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from dqm_playground_ds.histogram_tables import HistogramTable, as_table, lumisections
from dqm_playground_ds.pipelines.data_processing.params import DataProcessingParams
from dqm_playground_ds.processing.labels import LumiMask, label_lumisections, parse_bad_runs
from dqm_playground_ds.processing.preprocessing import FeatureSet, HistogramPreprocessor
from dqm_playground_ds.processing.split import APPLY, TRAIN, RunSplit

log = logging.getLogger(__name__)


def label_lumisections_node(
    histograms: HistogramTable | pd.DataFrame,
    golden_json: Mapping[str, Any],
    dcs_json: Mapping[str, Any] | None,
    params: DataProcessingParams,
    bad_runs: Any = None,
) -> pd.DataFrame:
    """good / bad / unknown for every LS of the histogram table (run-level rows are skipped).

    An empty ``dcs_json`` (``{}``) or ``labels.use_dcs: false`` means no DCS information. Bad runs
    are those of the ``bad_runs`` dataset (a JSON list of runs, or ``{"bad_runs": [...]}``) and of
    ``labels.bad_runs``.
    """
    p = params.labels
    overlap = p.overlapping_ranges
    setting = "data_processing.labels.overlapping_ranges: merge"
    golden = LumiMask.from_json(
        golden_json, name="golden JSON", overlap=overlap, overlap_setting=setting
    )
    dcs = None
    if p.use_dcs and dcs_json:
        dcs = LumiMask.from_json(
            dcs_json, name="DCS JSON", overlap=overlap, overlap_setting=setting
        )
    keys = lumisections(histograms)  # the key columns only
    out = label_lumisections(
        keys["run"].to_numpy(),
        keys["lumi"].to_numpy(),
        golden,
        dcs,
        parse_bad_runs(p.bad_runs) | _bad_runs_dataset(bad_runs),
        certified_runs=p.certified_runs,
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
    labelled: pd.DataFrame,
    split_definition: Mapping[str, Any] | None,
    params: DataProcessingParams,
) -> pd.DataFrame:
    """Add ``split`` (train/apply) by run, from ``split_definition`` (a task file or platform task
    converted to a mapping) if given, else ``params.split``.

    LS of runs in neither side go to apply when the split lists no apply runs, and are dropped
    (and logged) otherwise.
    """
    spec = split_definition or params.split
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
    histograms: HistogramTable | pd.DataFrame,
    lumisections: pd.DataFrame,
    params: DataProcessingParams,
) -> HistogramPreprocessor:
    """Binning and reference shape of every ME from the good training LS only."""
    pre = HistogramPreprocessor(
        params.preprocessing, params.quality.cuts(), chunk_size=params.chunk_size
    )
    return pre.fit(histograms, _training_keys(lumisections))


def build_features(
    histograms: HistogramTable | pd.DataFrame,
    lumisections: pd.DataFrame,
    preprocessor: HistogramPreprocessor,
    params: DataProcessingParams,
) -> tuple[dict[str, FeatureSet], pd.DataFrame]:
    """Per-ME feature matrices of every LS and the labelled LS table with its quality.

    ``train`` marks the LS the detectors learn from: training split, golden, quality ok. The
    counts are computed from the table when asked (``lazy``): the ``me_features`` dataset writes
    them one ME at a time, so this step never holds every ME's features at once.
    """
    keys = lumisections[["run", "lumi"]]
    features = preprocessor.transform(histograms, keys, lazy=True)
    first = next(iter(features.values()))
    quality, detail = first.ls_quality()
    detail = _explain_invalid(detail, histograms, keys)
    out = lumisections.reset_index(drop=True).assign(
        quality=pd.Series(quality, dtype="string"),
        quality_detail=pd.Series(detail, dtype="string"),
        scorable=first.scorable,
    )
    out["train"] = (out["split"] == TRAIN) & (out["label"] == "good") & (out["quality"] == "ok")
    n_train = int(out["train"].sum())
    minimum = params.min_train_lumisections
    if n_train < minimum:
        raise ValueError(
            f"only {n_train} good training LS pass the quality cuts (minimum "
            f"{minimum}); quality of training LS: "
            f"{out.loc[out['split'] == TRAIN, 'quality'].value_counts().to_dict()}"
        )
    log.info("%d LS, %d for training; quality: %s", len(out), n_train,
             out["quality"].value_counts().to_dict())  # fmt: skip
    return features, out


def _why_invalid(values: Any) -> str:
    v = np.asarray(values, dtype=np.float64)
    reasons = [
        f"{int(n)} {what} bin(s)"
        for what, n in (
            ("NaN", np.isnan(v).sum()),
            ("infinite", np.isinf(v).sum()),
            ("negative", (v < 0).sum()),
        )
        if n
    ]
    return ", ".join(reasons) or "non-finite or negative bins"


def _explain_invalid(
    detail: np.ndarray, histograms: HistogramTable | pd.DataFrame, keys: pd.DataFrame
) -> np.ndarray:
    """``me: invalid`` becomes ``me: invalid (2 NaN bin(s), 1 negative bin(s))``; reads the
    invalid histograms only (their ME, their runs)."""
    rows = [i for i, d in enumerate(detail) if d and ": invalid" in d]
    if not rows:
        return detail
    wanted: dict[str, set[int]] = {}
    for i in rows:
        for part in str(detail[i]).split("; "):
            me, _, reason = part.rpartition(": ")
            if reason == "invalid":
                wanted.setdefault(me, set()).add(int(keys["run"].iloc[i]))
    table = as_table(histograms)
    found: dict[tuple[int, int, str], Any] = {}
    for me, runs in wanted.items():
        got = table.read(me=me, runs=sorted(runs), columns=["run", "lumi", "me", "data"])
        for run, lumi, values in zip(got["run"], got["lumi"], got["data"], strict=True):
            found.setdefault((int(run), int(lumi), me), values)
    out = detail.copy()
    for i in rows:
        run, lumi = int(keys["run"].iloc[i]), int(keys["lumi"].iloc[i])
        parts = []
        for part in str(detail[i]).split("; "):
            me, _, reason = part.rpartition(": ")
            values = found.get((run, lumi, me)) if reason == "invalid" else None
            parts.append(part if values is None else f"{me}: invalid ({_why_invalid(values)})")
        out[i] = "; ".join(parts)
    return out


def me_references(preprocessor: HistogramPreprocessor) -> pd.DataFrame:
    """Reference shape per ME (original binning) for plots and injection."""
    refs = preprocessor.references()
    refs["data"] = [np.asarray(v, dtype=np.float64) for v in refs["data"]]
    return refs
