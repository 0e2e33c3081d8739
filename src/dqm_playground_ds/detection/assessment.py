"""How good is each strategy: real labels (held-out runs, and training runs out of fold), run-level
AUC, and every injected anomaly type against the held-out good LS it was injected into.

Quality-flagged LS score ``+inf`` when ``flag_quality_failures`` (they are flagged whatever the
model says), so the figures describe what a shifter gets, not the model alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dqm_playground_ds.detection.evaluation import (
    BestStrategyCriteria,
    auc,
    choose_best,
    per_run_counts,
    roc_points,
    summarize,
    working_point,
)
from dqm_playground_ds.detection.predictions import json_safe
from dqm_playground_ds.detection.verdicts import run_scores
from dqm_playground_ds.processing.split import APPLY, TRAIN


def decision_score(score: pd.Series, quality: pd.Series, flag_q: bool) -> np.ndarray:
    """Model score, +inf for LS the quality cuts flag; NaN only if unscorable and not flagged."""
    s = score.to_numpy(dtype=np.float64).copy()
    if flag_q:
        s[(quality != "ok").to_numpy()] = np.inf
    return s


@dataclass
class Assessment:
    """Accumulates the rows of the metrics table and the ROC points of every evaluation."""

    n_bootstrap: int
    roc_points: int
    seed: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    rocs: list[pd.DataFrame] = field(default_factory=list)

    def add(self, strategy: str, kind: str, atype: str, y: np.ndarray, s: np.ndarray,
            flags: np.ndarray, raw_flags: np.ndarray) -> dict[str, Any]:  # fmt: skip
        """AUC with interval, TPR at fixed FPR, working point with and without persistence."""
        keep = ~np.isnan(s)
        res = summarize(y[keep], s[keep], n_boot=self.n_bootstrap, seed=self.seed)
        res["n_unscored"] = int((~keep).sum())
        res["n_pos_quality_flagged"] = int(np.isinf(s[keep][y[keep]]).sum())
        wp, raw = working_point(y, flags), working_point(y, raw_flags)
        res["wp_tpr"], res["wp_fpr"] = wp["tpr"], wp["fpr"]
        res["wp_tpr_single_ls"], res["wp_fpr_single_ls"] = raw["tpr"], raw["fpr"]
        self.rows.append({"strategy": strategy, "evaluation": kind, "anomaly_type": atype, **res})
        roc = roc_points(y[keep], s[keep], self.roc_points)
        self.rocs.append(roc.assign(strategy=strategy, evaluation=kind, anomaly_type=atype))
        return res

    def add_run_auc(self, strategy: str, kind: str, extra: dict[str, Any]) -> None:
        for row in self.rows:
            if row["strategy"] == strategy and row["evaluation"] == kind:
                row.update(extra)


def _real(a: Assessment, name: str, pr: pd.DataFrame, threshold: float, flag_q: bool) -> dict:
    """LS-level figures on the labelled LS of the apply runs and, out of fold, the training runs."""
    entry: dict[str, Any] = {}
    for kind, part in (("real", pr[pr["split"] == APPLY]), ("real_train_oof", pr[pr["split"] == TRAIN])):  # fmt: skip
        labelled = part[part["label"].isin(["good", "bad"])]
        y = (labelled["label"] == "bad").to_numpy()
        if kind == "real_train_oof" and not (y.any() and (~y).any()):
            continue  # no labels for the training runs: judged on injections only
        s = decision_score(labelled["score"], labelled["quality"], flag_q)
        above = np.nan_to_num(s, nan=-np.inf) > threshold
        entry[kind] = a.add(
            name, kind, "labels", y, s, labelled["is_anomalous"].to_numpy(bool), above
        )
    return entry


def _run_level(a: Assessment, name: str, pr: pd.DataFrame, entry: dict[str, Any]) -> None:
    """Run AUC: the bad-runs list against runs whose LS are all golden, by the run score."""
    runs = run_scores(pr)
    for kind, side in (("real", APPLY), ("real_train_oof", TRAIN)):
        if kind not in entry:
            continue
        part = runs[(runs["split"] == side) & runs["run_label"].isin(["good", "bad"])]
        yr = (part["run_label"] == "bad").to_numpy()
        sr = part["run_score"].to_numpy(dtype=np.float64)
        keep = np.isfinite(sr)
        extra = {
            "run_auc": auc(yr[keep], sr[keep]) if keep.any() else float("nan"),
            "n_bad_runs": int(yr[keep].sum()),
            "n_good_runs": int((~yr[keep]).sum()),
        }
        entry[kind].update(extra)
        a.add_run_auc(name, kind, extra)


def _injected(a: Assessment, name: str, pr: pd.DataFrame, inj: pd.DataFrame, threshold: float,
              flag_q: bool) -> dict[str, Any]:  # fmt: skip
    """Each anomaly type against the uninjected held-out good LS (the same LS it went into)."""
    held = pr[pr["split"] == APPLY]
    neg_s = held[(held["label"] == "good") & (held["quality"] == "ok")]["score"].to_numpy(
        np.float64
    )
    out = {}
    for atype, grp in inj.groupby("anomaly_type", observed=True, sort=False):
        pos_s = decision_score(grp["score"], grp["quality"], flag_q)
        y = np.r_[np.ones(len(pos_s), bool), np.zeros(len(neg_s), bool)]
        s = np.r_[pos_s, neg_s]
        flags = np.nan_to_num(s, nan=-np.inf) > threshold
        out[str(atype)] = a.add(name, "injected", str(atype), y, s, flags, flags)
    return out


def assess_strategies(
    predictions: pd.DataFrame,
    injection_scores: pd.DataFrame,
    *,
    flag_quality_failures: bool,
    n_bootstrap: int,
    roc_points: int,
    seed: int,
    criteria: BestStrategyCriteria,
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(metrics.json, per-strategy table, ROC points, flags per run), best strategy chosen."""
    a = Assessment(n_bootstrap, roc_points, seed)
    strategies = {}
    for name, pr in predictions.groupby("strategy", observed=True, sort=False):
        threshold = float(pr["threshold"].iloc[0])
        train = pr[(pr["split"] != APPLY) & (pr["label"] == "good") & (pr["quality"] == "ok")]
        entry: dict[str, Any] = {
            "threshold": threshold,
            "train_flag_rate_out_of_fold": float(train["is_anomalous"].mean()),
        }
        entry.update(_real(a, str(name), pr, threshold, flag_quality_failures))
        _run_level(a, str(name), pr, entry)
        inj = injection_scores[injection_scores["strategy"] == name]
        entry["injected"] = _injected(a, str(name), pr, inj, threshold, flag_quality_failures)
        strategies[str(name)] = entry
    table = pd.DataFrame(a.rows)
    metrics = {"strategies": strategies, **choose_best(table, criteria)}
    run_counts = per_run_counts(predictions)
    metrics["flagged_per_run"] = run_counts.to_dict(orient="records")
    roc = pd.concat(a.rocs, ignore_index=True) if a.rocs else pd.DataFrame()
    return json_safe(metrics), table, roc, run_counts
