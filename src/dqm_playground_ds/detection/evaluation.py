"""Detection metrics with their uncertainty: AUC (+ bootstrap interval), TPR at fixed FPR, false-alarm
rate at fixed efficiency, ROC points, per-run flag counts.

Scores are "higher = more anomalous"; ``+inf`` is a legal score (an LS flagged by the quality cuts
whatever its model score), NaN is not (such rows are dropped and counted by the caller). The AUC is
the Mann-Whitney statistic on ranks, so ties count one half and infinities need no special case.
Operating points are conservative: "TPR at 1 % FPR" uses the threshold that lets at most 1 % of the
negatives *strictly* above it, and the achieved FPR is reported too, since with 200 negatives
"0.1 % FPR" can only mean zero false alarms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field
from scipy.stats import rankdata

from dqm_playground_ds.config import Config


def _split(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=bool)
    s = np.asarray(s, dtype=np.float64)
    if np.isnan(s).any():
        raise ValueError("scores contain NaN; drop or flag those LS before evaluating")
    return s[y], s[~y]


def auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC AUC; NaN when one class is empty."""
    pos, neg = _split(y, s)
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def bootstrap_auc(
    y: np.ndarray, s: np.ndarray, n_boot: int = 200, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of the AUC, resampling positives and negatives separately."""
    pos, neg = _split(y, s)
    if pos.size == 0 or neg.size == 0 or n_boot <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.empty(n_boot)
    labels = np.r_[np.ones(pos.size, bool), np.zeros(neg.size, bool)]
    for b in range(n_boot):
        sp = pos[rng.integers(pos.size, size=pos.size)]
        sn = neg[rng.integers(neg.size, size=neg.size)]
        values[b] = auc(labels, np.concatenate([sp, sn]))
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def tpr_at_fpr(y: np.ndarray, s: np.ndarray, fpr: float) -> tuple[float, float]:
    """(TPR, achieved FPR) at the threshold letting at most ``fpr`` of negatives above it."""
    pos, neg = _split(y, s)
    if pos.size == 0 or neg.size == 0:
        return float("nan"), float("nan")
    neg = np.sort(neg)
    allowed = int(np.floor(fpr * neg.size))
    threshold = neg[neg.size - 1 - allowed]
    return float((pos > threshold).mean()), float((neg > threshold).mean())


def fpr_at_tpr(y: np.ndarray, s: np.ndarray, tpr: float) -> float:
    """False-alarm rate at the highest threshold that still flags ``tpr`` of the positives."""
    pos, neg = _split(y, s)
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    pos = np.sort(pos)[::-1]
    need = int(np.ceil(tpr * pos.size))
    threshold = pos[max(need, 1) - 1]
    return float((neg >= threshold).mean())


def roc_points(y: np.ndarray, s: np.ndarray, max_points: int = 200) -> pd.DataFrame:
    """(fpr, tpr, threshold) along the ROC curve, thinned to about ``max_points`` points."""
    pos, neg = _split(y, s)
    if pos.size == 0 or neg.size == 0:
        return pd.DataFrame({"fpr": [], "tpr": [], "threshold": []})
    thresholds = np.unique(np.concatenate([pos, neg]))[::-1]
    if thresholds.size > max_points:
        idx = np.unique(np.linspace(0, thresholds.size - 1, max_points).round().astype(int))
        thresholds = thresholds[idx]
    ps, ns = np.sort(pos), np.sort(neg)
    tpr = 1 - np.searchsorted(ps, thresholds, side="left") / ps.size
    fpr = 1 - np.searchsorted(ns, thresholds, side="left") / ns.size
    return pd.DataFrame(
        {
            "fpr": np.r_[0.0, fpr, 1.0],
            "tpr": np.r_[0.0, tpr, 1.0],
            "threshold": np.r_[np.inf, thresholds, -np.inf],
        }
    )


def summarize(
    y: np.ndarray,
    s: np.ndarray,
    *,
    fprs: Sequence[float] = (0.01, 0.001),
    efficiencies: Sequence[float] = (0.5, 0.9, 0.99),
    n_boot: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Every metric of the evaluation protocol for one score vector."""
    y = np.asarray(y, dtype=bool)
    lo, hi = bootstrap_auc(y, s, n_boot=n_boot, seed=seed)
    out: dict[str, Any] = {
        "n_pos": int(y.sum()),
        "n_neg": int((~y).sum()),
        "auc": auc(y, s),
        "auc_lo": lo,
        "auc_hi": hi,
    }
    for f in fprs:
        tpr, achieved = tpr_at_fpr(y, s, f)
        out[f"tpr_at_fpr_{f:g}"] = tpr
        out[f"achieved_fpr_{f:g}"] = achieved
    for e in efficiencies:
        out[f"fpr_at_tpr_{e:g}"] = fpr_at_tpr(y, s, e)
    return out


def working_point(y: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    """TPR and FPR of a fixed decision."""
    y = np.asarray(y, dtype=bool)
    flagged = np.asarray(flagged, dtype=bool)
    return {
        "tpr": float(flagged[y].mean()) if y.any() else float("nan"),
        "fpr": float(flagged[~y].mean()) if (~y).any() else float("nan"),
    }


def per_run_counts(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per (strategy, run): LS, flagged LS, and flagged LS by label."""
    p = predictions
    grouped = p.assign(
        flagged=p["is_anomalous"].astype(bool),
        bad=p["label"].eq("bad").astype(bool),
        good=p["label"].eq("good").astype(bool),
    )
    grouped["flagged_bad"] = grouped["flagged"] & grouped["bad"]
    grouped["flagged_good"] = grouped["flagged"] & grouped["good"]
    out = grouped.groupby(["strategy", "run", "split"], observed=True, sort=True).agg(
        n_ls=("lumi", "size"),
        n_flagged=("flagged", "sum"),
        n_bad=("bad", "sum"),
        n_flagged_bad=("flagged_bad", "sum"),
        n_good=("good", "sum"),
        n_flagged_good=("flagged_good", "sum"),
    )
    return out.reset_index()


class Targets(Config):
    """The project's targets (issue 10): real data, run-wise, and the injected benchmark."""

    real_auc_min: float = Field(0.95, ge=0, le=1)
    real_tpr_at_fpr_001_min: float = Field(0.5, ge=0, le=1, alias="real_tpr_at_fpr_0.01_min")
    real_run_auc_min: float = Field(0.9, ge=0, le=1)
    real_wp_fpr_max: float = Field(0.015, ge=0, le=1)
    injected_auc_min: float = Field(0.95, ge=0, le=1)
    injected_local_tpr_at_fpr_001_min: float = Field(
        0.8, ge=0, le=1, alias="injected_local_tpr_at_fpr_0.01_min"
    )


class BestStrategyCriteria(Config):
    """Real out-of-fold labels choose when the training runs hold this many bad LS."""

    min_bad_lumisections: int = Field(5, ge=1)
    targets: Targets = Targets()


DEFAULT_TARGETS: dict[str, float] = Targets().model_dump(by_alias=True)
LOCAL_TYPES = ("dead_region", "hot_spot")


def _real_targets(table: pd.DataFrame, best: str, targets: Mapping[str, float]) -> dict[str, bool]:
    """Targets on real labels: the apply runs' when labelled, else the training runs' out of fold."""
    real = table[(table["strategy"] == best) & (table["evaluation"] == "real")]
    if real.empty:
        real = table[(table["strategy"] == best) & (table["evaluation"] == "real_train_oof")]
    if not (len(real) and real["n_pos"].iloc[0] > 0 and real["n_neg"].iloc[0] > 0):
        return {}
    r = real.iloc[0]
    out = {
        "real_auc_ge": bool(r["auc"] >= targets["real_auc_min"]),
        "real_tpr_at_fpr_0.01_ge": bool(
            r["tpr_at_fpr_0.01"] >= targets["real_tpr_at_fpr_0.01_min"]
        ),
    }
    if "run_auc" in r and pd.notna(r["run_auc"]):
        out["real_run_auc_ge"] = bool(r["run_auc"] >= targets["real_run_auc_min"])
    out["real_wp_fpr_le"] = bool(r["wp_fpr"] <= targets["real_wp_fpr_max"])
    return out


def _injected_targets(
    inj: pd.DataFrame, best: str, targets: Mapping[str, float]
) -> dict[str, bool]:
    b = inj[inj["strategy"] == best].set_index("anomaly_type")
    if not len(b):
        return {}
    out = {"injected_auc_ge_every_type": bool((b["auc"] >= targets["injected_auc_min"]).all())}
    local = [t for t in LOCAL_TYPES if t in b.index]
    if local:
        tpr = b.loc[local, "tpr_at_fpr_0.01"]
        out["injected_local_tpr_at_fpr_0.01_ge"] = bool(
            (tpr >= targets["injected_local_tpr_at_fpr_0.01_min"]).all()
        )
    return out


def choose_best(
    table: pd.DataFrame, params: BestStrategyCriteria | Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The best strategy and whether it meets the targets.

    With real labels in the training runs (at least ``min_bad_lumisections`` bad LS with
    out-of-fold scores), the best strategy has the highest out-of-fold LS-level AUC on them (ties:
    run-level AUC); otherwise the highest minimum AUC over the injected anomaly types. The labels
    of the apply runs never choose: they stay an independent check.
    """
    criteria = (
        params if isinstance(params, BestStrategyCriteria)
        else BestStrategyCriteria.model_validate(dict(params or {}))
    )  # fmt: skip
    targets = criteria.targets.model_dump(by_alias=True)
    min_bad = criteria.min_bad_lumisections
    if table.empty:
        return {"best_strategy": None}
    oof = table[table["evaluation"] == "real_train_oof"]
    inj = table[table["evaluation"] == "injected"]
    inj_worst = inj.groupby("strategy")["auc"].min() if len(inj) else pd.Series(dtype=float)
    if len(oof) and (oof["n_pos"] >= min_bad).any():
        ranked = oof[oof["n_pos"] >= min_bad].assign(
            run_auc=lambda d: d.get("run_auc", pd.Series(np.nan, index=d.index)).fillna(0.0),
            inj=lambda d: d["strategy"].map(inj_worst).fillna(0.0),
        )
        ranked = ranked.sort_values(["auc", "run_auc", "inj"], ascending=False, kind="stable")
        best = str(ranked["strategy"].iloc[0])
        criterion = (
            "highest out-of-fold LS-level AUC on the real labels of the training runs "
            "(folds by run)"
        )
    elif len(inj_worst):
        best = str(inj_worst.sort_values(ascending=False, kind="stable").index[0])
        criterion = "highest minimum AUC over injected anomaly types (no labelled training runs)"
    else:
        return {"best_strategy": None}
    out = {**_real_targets(table, best, targets), **_injected_targets(inj, best, targets)}
    return {
        "best_strategy": best,
        "best_strategy_criterion": criterion,
        "targets": out,
        "target_values": targets,
    }
