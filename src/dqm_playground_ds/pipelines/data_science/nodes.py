"""Detection nodes: train every strategy, score LS, inject anomalies, evaluate.

Parameters come from ``params:data_science``; the domain work lives in
:mod:`dqm_playground_ds.detection.detectors`, :mod:`dqm_playground_ds.detection.combine`,
:mod:`dqm_playground_ds.detection.thresholds`, :mod:`dqm_playground_ds.detection.injection` and
:mod:`dqm_playground_ds.detection.evaluation`.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from dqm_playground_ds.detection.combine import top_mes
from dqm_playground_ds.detection.evaluation import (
    auc,
    choose_best,
    per_run_counts,
    roc_points,
    summarize,
    working_point,
)
from dqm_playground_ds.detection.injection import ANOMALY_TYPES, inject_table
from dqm_playground_ds.detection.strategy import (
    Strategy,
    StrategySpec,
    assign_folds,
    fit_strategy,
)
from dqm_playground_ds.detection.thresholds import persistent
from dqm_playground_ds.detection.verdicts import ml_certification, run_scores, run_verdicts
from dqm_playground_ds.processing.labels import LumiMask
from dqm_playground_ds.processing.preprocessing import FeatureSet, HistogramPreprocessor
from dqm_playground_ds.processing.split import APPLY, TRAIN

log = logging.getLogger(__name__)


KNOWN_PARAMETERS = frozenset({
    "seed", "calibration_folds", "active_strategies", "flag_quality_failures", "me_scores_json",
    "strategies", "injection", "evaluation", "best_strategy", "run_verdicts", "certification",
})  # fmt: skip


def strategy_specs(params: dict[str, Any]) -> list[StrategySpec]:
    """The strategies to run: ``active_strategies`` (null = all declared), in declared order.

    An unknown top-level key of ``data_science`` (a typo such as ``active_strategis``) is an error:
    silently ignoring it would run something other than what the user asked for.
    """
    unknown = sorted(set(params) - KNOWN_PARAMETERS)
    if unknown:
        raise ValueError(
            f"data_science: unknown parameter(s) {unknown}; known: {sorted(KNOWN_PARAMETERS)}"
        )
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
    """Fit every active strategy on the good training LS, calibrated on out-of-fold scores.

    Every scorable LS of the training split (bad ones too) gets an out-of-fold score, by folds of
    whole runs, so that the real labels of training runs can judge the strategies.
    """
    train_mask = lumisections["train"].to_numpy(dtype=bool)
    in_split = (lumisections["split"] == TRAIN).to_numpy(dtype=bool)
    scorable = lumisections["scorable"].to_numpy(dtype=bool) if "scorable" in lumisections else True
    oof_rows = np.flatnonzero(in_split & (scorable | train_mask))
    oof_folds = assign_folds(lumisections.iloc[oof_rows], int(params.get("calibration_folds", 3)))
    train_rows = np.flatnonzero(train_mask)
    folds = oof_folds[np.searchsorted(oof_rows, train_rows)]
    seed = int(params.get("seed", 20180417))
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
        models[spec.name] = fit_strategy(
            spec, features, train_rows, folds, cache, seed, oof_rows, oof_folds
        )
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
    cols = ["run", "lumi", "label", "label_reason", "split", "quality"]
    info = lumisections[[c for c in cols if c in lumisections]]
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
        | ({"label_reason": "string"} if "label_reason" in predictions else {})
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


def _own_rows(features: FeatureSet, context: FeatureSet) -> np.ndarray:
    """Row of ``context`` with the (run, lumi) of each row of ``features``; -1 if none."""
    idx = pd.MultiIndex.from_frame(context.keys[["run", "lumi"]].astype("int64"))
    return idx.get_indexer(pd.MultiIndex.from_frame(features.keys[["run", "lumi"]].astype("int64")))


def score_injections(
    strategy_models: dict[str, Strategy],
    injected_features: dict[str, FeatureSet],
    injections: pd.DataFrame,
    me_features: dict[str, FeatureSet] | None = None,
) -> pd.DataFrame:
    """Score of every injected sample under every strategy (never with out-of-fold lookups).

    Run-aware detectors score an injected LS in its run: the real LS of that run (``me_features``),
    the injected one in place of its original.
    """
    frames = []
    cache: dict = {}
    for name, model in strategy_models.items():
        features = injected_features.get(model.spec.preprocessing)
        if features is None or len(features) == 0:
            continue
        context = None
        if me_features and model.spec.preprocessing in me_features:
            ctx = me_features[model.spec.preprocessing]
            context = (ctx, _own_rows(features, ctx))
        sc = model.score(features, use_oof=False, cache=cache, context=context)
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

        for kind, part in (("real", held), ("real_train_oof", pr[pr["split"] == TRAIN])):
            labelled = part[part["label"].isin(["good", "bad"])]
            y = (labelled["label"] == "bad").to_numpy()
            if kind == "real_train_oof" and not (y.any() and (~y).any()):
                continue  # no labels for the training runs: judged on injections only
            s = _decision_score(labelled["score"], labelled["quality"], flag_q)
            above = np.nan_to_num(s, nan=-np.inf) > entry["threshold"]
            flags = labelled["is_anomalous"].to_numpy(bool)
            entry[kind] = add(kind, "labels", y, s, flags, above)
        runs = run_scores(pr)
        for kind, side in (("real", APPLY), ("real_train_oof", TRAIN)):
            part = runs[(runs["split"] == side) & runs["run_label"].isin(["good", "bad"])]
            yr = (part["run_label"] == "bad").to_numpy()
            sr = part["run_score"].to_numpy(dtype=np.float64)
            keep = np.isfinite(sr)
            if kind not in entry:
                continue
            extra = {
                "run_auc": auc(yr[keep], sr[keep]) if keep.any() else float("nan"),
                "n_bad_runs": int(yr[keep].sum()),
                "n_good_runs": int((~yr[keep]).sum()),
            }
            entry[kind].update(extra)
            for row in rows:
                if row["strategy"] == name and row["evaluation"] == kind:
                    row.update(extra)

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
    metrics = {"strategies": strategies, **choose_best(table, params.get("best_strategy") or {})}
    run_counts = per_run_counts(preds)
    metrics["flagged_per_run"] = run_counts.to_dict(orient="records")
    roc = pd.concat(rocs, ignore_index=True) if rocs else pd.DataFrame()
    return _clean(metrics), table, roc, run_counts


def judge_runs(lumisection_predictions: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """Per (run, strategy): run score, LS counts, flagged LS, run threshold and verdict."""
    p = dict(params.get("run_verdicts") or {})
    unknown = set(p) - {"false_alarm_rate", "min_flagged_lumisections", "min_flagged_fraction"}
    if unknown:
        raise ValueError(
            f"data_science.run_verdicts: unknown key(s) {sorted(unknown)}; expected "
            "false_alarm_rate, min_flagged_lumisections, min_flagged_fraction"
        )
    out = run_verdicts(
        lumisection_predictions,
        float(p.get("false_alarm_rate", 0.05)),
        int(p.get("min_flagged_lumisections", 2)),
        float(p.get("min_flagged_fraction", 0.05)),
    )
    for name, grp in out.groupby("strategy", observed=True):
        log.info("strategy %s: run verdicts %s", name, grp["verdict"].value_counts().to_dict())
    return out


def certify_lumisections(
    lumisection_predictions: pd.DataFrame,
    run_predictions: pd.DataFrame,
    golden_json: dict[str, Any],
    dcs_json: dict[str, Any] | None,
    params: dict[str, Any],
) -> dict[str, dict[str, list[list[int]]]]:
    """ML certification JSON per strategy: the LS it calls good (``certification.within``:
    ``none``, ``dcs`` or ``golden`` keeps only LS also in that mask)."""
    within = str((params.get("certification") or {}).get("within", "none"))
    masks = {"none": None, "golden": golden_json, "dcs": dcs_json}
    if within not in masks:
        raise ValueError(
            f"data_science.certification.within must be none, dcs or golden, got {within!r}"
        )
    mask = None
    if within != "none":
        if not masks[within]:
            raise ValueError(f"certification.within={within}: the {within} JSON is empty")
        mask = LumiMask.from_json(masks[within], name=f"{within} JSON", overlap="merge")
    out = {}
    for name in lumisection_predictions["strategy"].unique():
        out[str(name)] = ml_certification(lumisection_predictions, run_predictions, str(name), mask)
    return out
