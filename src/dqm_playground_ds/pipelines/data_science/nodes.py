"""Detection nodes: train every strategy, score LS, inject anomalies, evaluate.

Parameters come from ``params:data_science``; the domain work lives in
:mod:`dqm_playground_ds.detectors`, :mod:`dqm_playground_ds.combine`,
:mod:`dqm_playground_ds.thresholds`, :mod:`dqm_playground_ds.injection` and
:mod:`dqm_playground_ds.evaluation`.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from dqm_playground_ds.combine import top_mes
from dqm_playground_ds.detectors.ensemble import (
    Strategy,
    StrategySpec,
    assign_folds,
    fit_strategy,
)
from dqm_playground_ds.evaluation import per_run_counts, roc_points, summarize, working_point
from dqm_playground_ds.injection import ANOMALY_TYPES, inject_table
from dqm_playground_ds.preprocessing import FeatureSet, HistogramPreprocessor
from dqm_playground_ds.split import APPLY
from dqm_playground_ds.thresholds import persistent

log = logging.getLogger(__name__)


def strategy_specs(params: dict[str, Any]) -> list[StrategySpec]:
    """The strategies to run: ``active_strategies`` (null = all declared), in declared order."""
    declared = params.get("strategies") or {}
    active = params.get("active_strategies")
    names = list(declared) if active is None else list(active)
    unknown = [n for n in names if n not in declared]
    if unknown or not names:
        raise ValueError(f"active_strategies {unknown or names} not among {list(declared)}")
    return [StrategySpec.from_dict(n, declared[n]) for n in names]


def _check_aligned(features: FeatureSet, lumisections: pd.DataFrame) -> None:
    a = features.keys[["run", "lumi"]].to_numpy()
    b = lumisections[["run", "lumi"]].to_numpy()
    if a.shape != b.shape or not (a == b).all():
        raise ValueError("me_features and lumisections are not aligned; rerun data_processing")


def train_strategies(
    me_features: dict[str, FeatureSet], lumisections: pd.DataFrame, params: dict[str, Any]
) -> dict[str, Strategy]:
    """Fit every active strategy on the training LS, calibrated on out-of-fold scores."""
    train_rows = np.flatnonzero(lumisections["train"].to_numpy(dtype=bool))
    folds = assign_folds(lumisections.iloc[train_rows], int(params.get("calibration_folds", 2)))
    seed = int(params.get("seed", 0))
    cache: dict[str, Any] = {}
    models = {}
    for spec in strategy_specs(params):
        if spec.preprocessing not in me_features:
            raise ValueError(
                f"strategy {spec.name!r}: preprocessing {spec.preprocessing!r} not among "
                f"{sorted(me_features)}"
            )
        features = me_features[spec.preprocessing]
        _check_aligned(features, lumisections)
        models[spec.name] = fit_strategy(spec, features, train_rows, folds, cache, seed)
        log.info("strategy %s: threshold %.4g", spec.name, models[spec.name].threshold)
    return models


def _decide(
    model: Strategy, score: np.ndarray, keys: pd.DataFrame, quality_ok: np.ndarray, flag_q: bool
) -> np.ndarray:
    above = np.nan_to_num(score, nan=-np.inf) > model.threshold
    flags = persistent(above, keys["run"].to_numpy(), keys["lumi"].to_numpy(),
                       model.spec.consecutive)  # fmt: skip
    return flags | (~quality_ok if flag_q else False)


def score_lumisections(
    strategy_models: dict[str, Strategy],
    me_features: dict[str, FeatureSet],
    lumisections: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predictions per (LS, strategy) and the per-ME score table.

    Training LS carry their out-of-fold scores. An LS failing the quality cuts is flagged when
    ``flag_quality_failures`` (its ``top_mes`` are then the failing MEs) and scored when possible.
    """
    flag_q = bool(params.get("flag_quality_failures", True))
    with_json = bool(params.get("me_scores_json", True))
    keys = lumisections[["run", "lumi"]].reset_index(drop=True)
    quality_ok = (lumisections["quality"] == "ok").to_numpy()
    preds, long = [], []
    cache: dict = {}  # strategies sharing detectors score them once
    for name, model in strategy_models.items():
        features = me_features[model.spec.preprocessing]
        _check_aligned(features, lumisections)
        sc = model.score(features, cache=cache)
        flagged = _decide(model, sc.score, keys, quality_ok, flag_q)
        tops = top_mes(sc.importance, sc.mes, model.spec.top_n_mes)
        for row in np.flatnonzero(~quality_ok):
            tops[row] = features.failing_mes(row)
        frame = keys.assign(
            strategy=name,
            score=sc.score,
            threshold=model.threshold,
            is_anomalous=flagged,
            top_mes=tops,
        )
        if with_json:
            frame["me_scores"] = [
                json.dumps(
                    {
                        m: round(float(v), 3)
                        for m, v in zip(sc.mes, row, strict=True)
                        if not math.isnan(v)
                    }
                )
                for row in sc.importance
            ]
        preds.append(frame)
        long.append(_me_score_table(model, sc, keys, name))
    predictions = pd.concat(preds, ignore_index=True)
    info = lumisections[["run", "lumi", "label", "split", "quality"]]
    predictions = predictions.merge(info, on=["run", "lumi"], how="left", validate="many_to_one")
    predictions = predictions.astype(
        {
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
    )
    for name, grp in predictions.groupby("strategy", observed=True):
        log.info("strategy %s: %d of %d LS flagged", name, int(grp["is_anomalous"].sum()), len(grp))
    return predictions, pd.concat(long, ignore_index=True)


def _me_score_table(model: Strategy, sc: Any, keys: pd.DataFrame, name: str) -> pd.DataFrame:
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


def inject_anomalies(
    histograms: pd.DataFrame,
    lumisections: pd.DataFrame,
    preprocessor: HistogramPreprocessor,
    params: dict[str, Any],
) -> tuple[dict[str, FeatureSet], pd.DataFrame]:
    """Synthetic anomalies in held-out good LS (apply split, golden, quality ok), as features."""
    p = dict(params.get("injection") or {})
    columns = ["sample", "run", "lumi", "anomaly_type", "me", "magnitude"]
    held = lumisections[
        (lumisections["split"] == APPLY)
        & (lumisections["label"] == "good")
        & (lumisections["quality"] == "ok")
    ]
    if not p.get("enabled", True) or held.empty:
        log.warning("no injection: disabled or no held-out good LS (%d)", len(held))
        return {}, pd.DataFrame(columns=columns)
    kinds = list(p.get("types") or ANOMALY_TYPES)
    rng = np.random.default_rng(int(params.get("seed", 0)))
    table, info = inject_table(
        histograms,
        held[["run", "lumi"]],
        kinds,
        int(p.get("n_per_type", 200)),
        preprocessor.reference_,
        rng,
        p.get("params") or {},
    )
    features = preprocessor.transform(table, keys=info[["sample"]], key_columns=["sample"])
    for fs in features.values():
        fs.keys = info.copy()
    log.info("injected %d anomalies into %d held-out good LS", len(info), len(held))
    return features, info


def score_injections(
    strategy_models: dict[str, Strategy],
    injected_features: dict[str, FeatureSet],
    injections: pd.DataFrame,
) -> pd.DataFrame:
    """Score of every injected sample under every strategy (never with out-of-fold lookups)."""
    frames = []
    cache: dict = {}
    for name, model in strategy_models.items():
        features = injected_features.get(model.spec.preprocessing)
        if features is None or len(features) == 0:
            continue
        sc = model.score(features, use_oof=False, cache=cache)
        quality, _ = features.ls_quality()
        tops = top_mes(sc.importance, sc.mes, 1)
        frames.append(
            injections.assign(
                strategy=name,
                score=sc.score,
                threshold=model.threshold,
                quality=quality,
                top_me=[t[0] if t else "" for t in tops],
            )
        )
    if not frames:
        return pd.DataFrame(
            columns=[*injections.columns, "strategy", "score", "threshold", "quality", "top_me"]
        )
    out = pd.concat(frames, ignore_index=True)
    return out.astype({"anomaly_type": "string", "me": "string", "strategy": "string",
                       "quality": "string", "top_me": "string"})  # fmt: skip


def _decision_score(score: pd.Series, quality: pd.Series, flag_q: bool) -> np.ndarray:
    """Model score, +inf for LS the quality cuts flag; NaN only if unscorable and not flagged."""
    s = score.to_numpy(dtype=np.float64).copy()
    if flag_q:
        s[(quality != "ok").to_numpy()] = np.inf
    return s


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def evaluate(
    lumisection_predictions: pd.DataFrame,
    injection_scores: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Metrics on real labels (held-out runs) and on each injected anomaly type.

    Negatives of the injection benchmark are the same held-out good LS the anomalies were injected
    into (uninjected). Returns (metrics.json, per-strategy table, ROC points, flags per run).
    """
    p = dict(params.get("evaluation") or {})
    flag_q = bool(params.get("flag_quality_failures", True))
    n_boot, n_roc, seed = int(p.get("n_bootstrap", 200)), int(p.get("roc_points", 200)), 0
    preds = lumisection_predictions
    rows, rocs, strategies = [], [], {}
    for name, pr in preds.groupby("strategy", observed=True, sort=False):
        held = pr[pr["split"] == APPLY]
        entry: dict[str, Any] = {"threshold": float(pr["threshold"].iloc[0])}
        train = pr[(pr["split"] != APPLY) & (pr["label"] == "good") & (pr["quality"] == "ok")]
        entry["train_flag_rate_out_of_fold"] = float(train["is_anomalous"].mean())

        def add(kind: str, atype: str, y: np.ndarray, s: np.ndarray, flags: np.ndarray,
                raw_flags: np.ndarray, name: str = str(name)) -> dict[str, Any]:  # fmt: skip
            keep = ~np.isnan(s)
            res = summarize(y[keep], s[keep], n_boot=n_boot, seed=seed)
            res["n_unscored"] = int((~keep).sum())
            res["n_pos_quality_flagged"] = int(np.isinf(s[keep][y[keep]]).sum())
            wp, raw = working_point(y, flags), working_point(y, raw_flags)
            res["wp_tpr"], res["wp_fpr"] = wp["tpr"], wp["fpr"]
            res["wp_tpr_single_ls"], res["wp_fpr_single_ls"] = raw["tpr"], raw["fpr"]
            rows.append({"strategy": name, "evaluation": kind, "anomaly_type": atype, **res})
            roc = roc_points(y[keep], s[keep], n_roc)
            rocs.append(roc.assign(strategy=name, evaluation=kind, anomaly_type=atype))
            return res

        labelled = held[held["label"].isin(["good", "bad"])]
        y = (labelled["label"] == "bad").to_numpy()
        s = _decision_score(labelled["score"], labelled["quality"], flag_q)
        above = np.nan_to_num(s, nan=-np.inf) > entry["threshold"]
        entry["real"] = add("real", "labels", y, s, labelled["is_anomalous"].to_numpy(bool), above)

        neg = held[(held["label"] == "good") & (held["quality"] == "ok")]
        neg_s = neg["score"].to_numpy(dtype=np.float64)
        inj = injection_scores[injection_scores["strategy"] == name]
        entry["injected"] = {}
        for atype, grp in inj.groupby("anomaly_type", observed=True, sort=False):
            pos_s = _decision_score(grp["score"], grp["quality"], flag_q)
            y = np.r_[np.ones(len(pos_s), bool), np.zeros(len(neg_s), bool)]
            s = np.r_[pos_s, neg_s]
            flags = np.nan_to_num(s, nan=-np.inf) > entry["threshold"]
            entry["injected"][str(atype)] = add("injected", str(atype), y, s, flags, flags)
        strategies[str(name)] = entry

    table = pd.DataFrame(rows)
    metrics = {"strategies": strategies, **_best(table)}
    run_counts = per_run_counts(preds)
    metrics["flagged_per_run"] = run_counts.to_dict(orient="records")
    roc = pd.concat(rocs, ignore_index=True) if rocs else pd.DataFrame()
    return _clean(metrics), table, roc, run_counts


def _best(table: pd.DataFrame) -> dict[str, Any]:
    """Best strategy = highest worst-case AUC over the injected types; the issue's targets."""
    inj = table[table["evaluation"] == "injected"] if len(table) else table
    if inj.empty:
        return {"best_strategy": None}
    worst = inj.groupby("strategy")["auc"].min().sort_values(ascending=False)
    best = str(worst.index[0])
    b = inj[inj["strategy"] == best].set_index("anomaly_type")
    local = [t for t in ("dead_region", "hot_spot") if t in b.index]
    return {
        "best_strategy": best,
        "best_strategy_criterion": "highest minimum AUC over injected anomaly types",
        "targets": {
            "auc_ge_0.95_every_type": bool((b["auc"] >= 0.95).all()),
            "tpr_ge_0.8_at_1pct_fpr_dead_region_hot_spot": bool(
                (b.loc[local, "tpr_at_fpr_0.01"] >= 0.8).all()
            ),
        },
    }
