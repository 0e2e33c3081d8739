"""Per-LS predictions of a fitted strategy: score, threshold, flag, the MEs behind the flag.

The rules a shifter relies on live here, not in a node: an LS failing the quality cuts is flagged
when ``flag_quality_failures`` (its ``top_mes`` are then the MEs that failed), flags need
``consecutive`` LS above threshold, training LS carry out-of-fold scores.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from dqm_playground_ds.detection.combine import top_mes
from dqm_playground_ds.detection.strategy import Strategy, StrategyScores
from dqm_playground_ds.detection.thresholds import persistent
from dqm_playground_ds.processing.preprocessing import FeatureSet

PREDICTION_DTYPES = {
    "run": "int64",
    "lumi": "int64",
    "strategy": "string",
    "score": "float64",
    "threshold": "float64",
    "is_anomalous": "bool",
    "label": "string",
    "split": "string",
    "quality": "string",
}
LABEL_COLUMNS = ["run", "lumi", "label", "label_reason", "split", "quality"]


def check_aligned(features: FeatureSet, lumisections: pd.DataFrame) -> None:
    a = features.keys[["run", "lumi"]].to_numpy()
    b = lumisections[["run", "lumi"]].to_numpy()
    if a.shape != b.shape or not (a == b).all():
        raise ValueError("me_features and lumisections are not aligned; rerun data_processing")


def decide(
    model: Strategy, score: np.ndarray, keys: pd.DataFrame, quality_ok: np.ndarray, flag_q: bool
) -> np.ndarray:
    """Above threshold for ``consecutive`` LS, or (``flag_q``) failing the quality cuts."""
    above = np.nan_to_num(score, nan=-np.inf) > model.threshold
    flags = persistent(above, keys["run"].to_numpy(), keys["lumi"].to_numpy(),
                       model.spec.consecutive)  # fmt: skip
    return flags | (~quality_ok if flag_q else False)


def me_scores_json(sc: StrategyScores) -> list[str]:
    """Per-ME standardised scores of every LS as JSON (unscored MEs left out).

    The text ``json.dumps({me: round(score, 3), ...})`` gives, built column by column: one
    dict and one encoder call per LS made this the slowest serial part of scoring 100k LS.
    """
    columns = []
    for j, me in enumerate(sc.mes):
        prefix = json.dumps(str(me)) + ": "
        values = sc.importance[:, j].tolist()
        columns.append(
            [None if math.isnan(v) else prefix + _json_float(round(v, 3)) for v in values]
        )
    if not columns:
        return ["{}"] * len(sc.importance)
    return [
        "{" + ", ".join([p for p in parts if p is not None]) + "}"
        for parts in zip(*columns, strict=True)
    ]


def _json_float(v: float) -> str:
    if math.isfinite(v):
        return repr(v)
    return "Infinity" if v > 0 else "-Infinity"


def strategy_predictions(
    name: str,
    model: Strategy,
    features: FeatureSet,
    lumisections: pd.DataFrame,
    sc: StrategyScores,
    flag_quality_failures: bool,
    with_json: bool,
) -> pd.DataFrame:
    keys = lumisections[["run", "lumi"]].reset_index(drop=True)
    quality_ok = (lumisections["quality"] == "ok").to_numpy()
    tops = top_mes(sc.importance, sc.mes, model.spec.top_n_mes)
    for row in np.flatnonzero(~quality_ok):
        tops[row] = features.failing_mes(int(row))
    frame = keys.assign(
        strategy=name,
        score=sc.score,
        threshold=model.threshold,
        is_anomalous=decide(model, sc.score, keys, quality_ok, flag_quality_failures),
        top_mes=tops,
    )
    if with_json:
        frame["me_scores"] = me_scores_json(sc)
    return frame


def with_labels(predictions: pd.DataFrame, lumisections: pd.DataFrame) -> pd.DataFrame:
    """Label, reason, split and quality of every LS beside its predictions, typed."""
    info = lumisections[[c for c in LABEL_COLUMNS if c in lumisections]]
    out = predictions.merge(info, on=["run", "lumi"], how="left", validate="many_to_one")
    extra = {"label_reason": "string"} if "label_reason" in out else {}
    return out.astype(PREDICTION_DTYPES | extra)


def me_score_table(
    model: Strategy, sc: StrategyScores, keys: pd.DataFrame, name: str
) -> pd.DataFrame:
    """Long table (run, lumi, strategy, me, score, raw_<detector>...)."""
    n, mes = len(keys), sc.mes
    out = pd.DataFrame(
        {
            "run": np.tile(keys["run"].to_numpy(), len(mes)),
            "lumi": np.tile(keys["lumi"].to_numpy(), len(mes)),
            "strategy": name,
            "me": np.repeat(np.asarray(mes, dtype=object), n),
            "score": sc.importance.T.reshape(-1),
        }
    )
    columns = model.columns
    for det in dict.fromkeys(d for _, d in columns):
        raw = np.full((len(mes), n), np.nan)
        for k, (me, d) in enumerate(columns):
            if d == det:
                raw[mes.index(me)] = sc.raw[:, k]
        out[f"raw_{det}"] = raw.reshape(-1)
    return out.astype({"strategy": "string", "me": "string"})


def own_rows(features: FeatureSet, context: FeatureSet) -> np.ndarray:
    """Row of ``context`` with the (run, lumi) of each row of ``features``; -1 if none."""
    idx = pd.MultiIndex.from_frame(context.keys[["run", "lumi"]].astype("int64"))
    return idx.get_indexer(pd.MultiIndex.from_frame(features.keys[["run", "lumi"]].astype("int64")))


INJECTION_SCORE_DTYPES = {"anomaly_type": "string", "me": "string", "strategy": "string",
                          "quality": "string", "top_me": "string"}  # fmt: skip


def injection_predictions(
    name: str, model: Strategy, features: FeatureSet, injections: pd.DataFrame, sc: StrategyScores
) -> pd.DataFrame:
    quality, _ = features.ls_quality()
    tops = top_mes(sc.importance, sc.mes, 1)
    return injections.assign(
        strategy=name,
        score=sc.score,
        threshold=model.threshold,
        quality=quality,
        top_me=[t[0] if t else "" for t in tops],
    )


def json_safe(value: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python, recursively."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
