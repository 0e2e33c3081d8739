"""Small generated stand-ins for the upstream outputs the visualization reads.

Same columns and types as the real tables (histograms, lumisections, me_references,
lumisection_predictions, me_scores, roc_curves, strategy_metrics, flagged_per_run, metrics), but
2 runs x 12 LS, 3 MEs (two 1D, one 2D) and 2 strategies, so that every plot is quick to build and
its expected content is known: run 2 (held out) has a bad block at LS 5-7 that both strategies flag.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dqm_playground_ds.detection.reference import Reference
from dqm_playground_ds.detection.verdicts import run_verdicts

RUNS = (1001, 1002)
N_LS = 12
BAD = {(1002, 5), (1002, 6), (1002, 7)}
STRATEGIES = ("ref", "iso")
ANOMALY_TYPES = ("dead_region", "shift")
ME_1D = ("Pixel/charge_PXLayer_1", "Strip/Summary_ClusterStoN_TIB")
ME_2D = "Pixel/clusterposition_zphi_PXLayer_1"
MES = (*ME_1D, ME_2D)
X_BINS_1D, X_BINS_2D, Y_BINS_2D = 20, 6, 5
BEST = "ref"


def _shape(me: str) -> np.ndarray:
    if me == ME_2D:
        return np.ones(X_BINS_2D * Y_BINS_2D)
    x = np.linspace(-2, 2, X_BINS_1D)
    return np.exp(-0.5 * (x - (0.5 if "Strip" in me else 0.0)) ** 2)


def histograms(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for run in RUNS:
        for lumi in range(1, N_LS + 1):
            for me in MES:
                shape = _shape(me)
                expected = 400 * shape / shape.sum()
                if (run, lumi) in BAD:
                    expected = (
                        expected
                        * np.r_[np.zeros(len(shape) // 3), np.ones(len(shape))][: len(shape)]
                    )
                data = rng.poisson(expected).astype(np.float64)
                two_d = me == ME_2D
                rows.append(
                    {
                        "run": run,
                        "lumi": lumi,
                        "me": me,
                        "dim": 2 if two_d else 1,
                        "entries": float(data.sum()),
                        "x_min": 0.0,
                        "x_max": 10.0,
                        "x_bins": X_BINS_2D if two_d else X_BINS_1D,
                        "y_min": -3.0 if two_d else np.nan,
                        "y_max": 3.0 if two_d else np.nan,
                        "y_bins": Y_BINS_2D if two_d else 0,
                        "data": data.tolist(),
                        "source": f"run{run}.root",
                    }
                )
    return pd.DataFrame(rows).astype(
        {"dim": "int8", "x_bins": "int32", "y_bins": "int32", "me": "string"}
    )


def lumisections() -> pd.DataFrame:
    rows = []
    for run in RUNS:
        for lumi in range(1, N_LS + 1):
            unknown = lumi == 1
            rows.append(
                {
                    "run": run,
                    "lumi": lumi,
                    "label": "unknown" if unknown else "bad" if (run, lumi) in BAD else "good",
                    "split": "train" if run == RUNS[0] else "apply",
                    "quality": "low_stats" if unknown else "ok",
                    "scorable": not unknown,
                    "train": run == RUNS[0] and not unknown,
                }
            )
    return pd.DataFrame(rows)


def me_references() -> pd.DataFrame:
    rows = []
    for me in MES:
        two_d = me == ME_2D
        shape = _shape(me)
        rows.append(
            {
                "me": me,
                "dim": 2 if two_d else 1,
                "x_min": 0.0,
                "x_max": 10.0,
                "x_bins": X_BINS_2D if two_d else X_BINS_1D,
                "y_min": -3.0 if two_d else np.nan,
                "y_max": 3.0 if two_d else np.nan,
                "y_bins": Y_BINS_2D if two_d else 0,
                "n_train": N_LS - 1,
                **Reference(
                    shape / shape.sum(), 400.0 * (N_LS - 1), np.zeros(len(shape))
                ).to_record(),
            }
        )
    return pd.DataFrame(rows)


def me_scores(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for strategy in STRATEGIES:
        for run in RUNS:
            for lumi in range(1, N_LS + 1):
                for k, me in enumerate(MES):
                    bad = (run, lumi) in BAD
                    score = rng.normal(0, 1) + (20 - 5 * k if bad else 0)
                    rows.append(
                        {"run": run, "lumi": lumi, "strategy": strategy, "me": me, "score": score}
                    )
    return pd.DataFrame(rows).astype({"strategy": "string", "me": "string"})


def lumisection_predictions(scores: pd.DataFrame) -> pd.DataFrame:
    ls = lumisections().set_index(["run", "lumi"])
    rows = []
    for (strategy, run, lumi), group in scores.groupby(["strategy", "run", "lumi"], sort=False):
        d = group.sort_values("score", ascending=False)
        score = float(np.exp(d["score"].max() / 5))
        meta = ls.loc[(run, lumi)]
        rows.append(
            {
                "run": run,
                "lumi": lumi,
                "strategy": strategy,
                "score": score,
                "threshold": 2.0,
                "is_anomalous": score > 2.0 or meta["quality"] != "ok",
                "top_mes": d["me"].astype(str).to_numpy()[:2],
                "me_scores": "{}",
                "label": meta["label"],
                "split": meta["split"],
                "quality": meta["quality"],
            }
        )
    return pd.DataFrame(rows).astype({"strategy": "string"})


def roc_curves() -> pd.DataFrame:
    frames = []
    fpr = np.r_[0.0, 0.01, 0.1, 0.5, 1.0]
    for strategy in STRATEGIES:
        for evaluation, atype in [("real", "labels")] + [("injected", t) for t in ANOMALY_TYPES]:
            frames.append(
                pd.DataFrame(
                    {
                        "fpr": fpr,
                        "tpr": np.r_[0.0, 0.6, 0.9, 0.97, 1.0],
                        "threshold": np.r_[np.inf, 3.0, 2.0, 1.0, 0.0],
                        "strategy": strategy,
                        "evaluation": evaluation,
                        "anomaly_type": atype,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def strategy_metrics() -> pd.DataFrame:
    rows = []
    for k, strategy in enumerate(STRATEGIES):
        for evaluation, atype in [("real", "labels")] + [("injected", t) for t in ANOMALY_TYPES]:
            auc = 0.97 - 0.05 * k
            rows.append(
                {
                    "strategy": strategy,
                    "evaluation": evaluation,
                    "anomaly_type": atype,
                    "n_pos": 3,
                    "n_neg": 8,
                    "auc": auc,
                    "auc_lo": auc - 0.02,
                    "auc_hi": min(auc + 0.02, 1.0),
                    "tpr_at_fpr_0.01": 0.6,
                    "achieved_fpr_0.01": 0.0,
                    "wp_tpr": 1.0,
                    "wp_fpr": 0.0,
                }
            )
    return pd.DataFrame(rows)


def flagged_per_run(predictions: pd.DataFrame) -> pd.DataFrame:
    g = predictions.groupby(["strategy", "run", "split"], sort=False)
    return g.agg(
        n_ls=("lumi", "size"),
        n_flagged=("is_anomalous", "sum"),
        n_bad=("label", lambda s: int((s == "bad").sum())),
    ).reset_index()


def make_inputs(seed: int = 0) -> dict[str, Any]:
    """Every upstream dataset of ``data_visualization`` by its catalog name."""
    rng = np.random.default_rng(seed)
    scores = me_scores(rng)
    predictions = lumisection_predictions(scores)
    return {
        "histograms": histograms(rng),
        "lumisections": lumisections(),
        "me_references": me_references(),
        "me_scores": scores,
        "lumisection_predictions": predictions,
        "roc_curves": roc_curves(),
        "strategy_metrics": strategy_metrics(),
        "flagged_per_run": flagged_per_run(predictions),
        "run_predictions": run_verdicts(predictions),
        "metrics": {
            "best_strategy": BEST,
            "best_strategy_criterion": "highest AUC on real labels",
            "targets": {"auc_ge_0.95_every_type": True},
        },
    }


def make_many_runs(n_runs: int, n_ls: int, seed: int = 0, first_run: int = 300000) -> dict:
    """The same upstream datasets for many short runs and one 1D ME (the shape of a year of
    data: hundreds of runs of a few LS), built vectorised. Every fourth run is held out and has
    its LS 2..3 flagged by both strategies (a bad block), so there are flagged LS in many runs."""
    rng = np.random.default_rng(seed)
    me = ME_1D[0]
    runs = np.repeat(np.arange(first_run, first_run + n_runs), n_ls)
    lumi = np.tile(np.arange(1, n_ls + 1), n_runs)
    held_out = (runs - first_run) % 4 == 3
    bad = held_out & (lumi >= 2) & (lumi <= 3)
    label = np.where(bad, "bad", "good").astype(object)
    label[lumi == 1] = "unknown"
    split = np.where(held_out, "apply", "train")
    quality = np.where(lumi == 1, "low_stats", "ok")
    shape = _shape(me)
    counts = rng.poisson(400 * shape / shape.sum(), size=(len(runs), len(shape))).astype(float)
    data = np.empty(len(runs), dtype=object)
    data[:] = list(counts)
    hist = pd.DataFrame(
        {
            "run": runs,
            "lumi": lumi,
            "me": me,
            "dim": np.int8(1),
            "entries": counts.sum(axis=1),
            "x_min": 0.0,
            "x_max": 10.0,
            "x_bins": np.int32(X_BINS_1D),
            "y_min": np.nan,
            "y_max": np.nan,
            "y_bins": np.int32(0),
            "data": data,
            "source": "many.root",
        }
    ).astype({"me": "string"})
    ls = pd.DataFrame(
        {
            "run": runs,
            "lumi": lumi,
            "label": label,
            "split": split,
            "quality": quality,
            "scorable": lumi != 1,
            "train": (split == "train") & (lumi != 1),
        }
    )
    scores, preds = [], []
    for strategy in STRATEGIES:
        s = rng.normal(0, 1, len(runs)) + np.where(bad, 20.0, 0.0)
        scores.append(
            pd.DataFrame({"run": runs, "lumi": lumi, "strategy": strategy, "me": me, "score": s})
        )
        score = np.exp(s / 5)
        top = np.empty(len(runs), dtype=object)
        top[:] = [np.array([me])] * len(runs)
        preds.append(
            pd.DataFrame(
                {
                    "run": runs,
                    "lumi": lumi,
                    "strategy": strategy,
                    "score": score,
                    "threshold": 2.0,
                    "is_anomalous": (score > 2.0) | (quality != "ok"),
                    "top_mes": top,
                    "me_scores": "{}",
                    "label": label,
                    "split": split,
                    "quality": quality,
                }
            )
        )
    me_scores_ = pd.concat(scores, ignore_index=True).astype({"strategy": "string", "me": "string"})
    predictions = pd.concat(preds, ignore_index=True).astype({"strategy": "string"})
    refs = me_references()
    return {
        "histograms": hist,
        "lumisections": ls,
        "me_references": refs[refs["me"] == me].reset_index(drop=True),
        "me_scores": me_scores_,
        "lumisection_predictions": predictions,
        "roc_curves": roc_curves(),
        "strategy_metrics": strategy_metrics(),
        "flagged_per_run": flagged_per_run(predictions),
        "run_predictions": run_verdicts(predictions),
        "metrics": {"best_strategy": BEST, "best_strategy_criterion": "highest AUC on real labels"},
    }
