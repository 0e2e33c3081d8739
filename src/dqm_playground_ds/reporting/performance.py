"""Detection performance as the report shows it: ROC curves, AUC bars and metric tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dqm_playground_ds.reporting.plotting import RocCurve

#: columns of the real-label metrics table, in order (those present are shown)
REAL_COLUMNS = (
    "strategy",
    "n_pos",
    "n_neg",
    "auc",
    "auc_lo",
    "auc_hi",
    "tpr_at_fpr_0.01",
    "achieved_fpr_0.01",
    "wp_tpr",
    "wp_fpr",
)


def curve_label(evaluation: str, anomaly_type: str) -> str:
    """``real labels`` for the real-label evaluation, else the injected type in words."""
    return "real labels" if evaluation == "real" else anomaly_type.replace("_", " ")


def roc_curves_of(
    roc_curves: pd.DataFrame, strategy_metrics: pd.DataFrame, strategy: str
) -> list[RocCurve]:
    """The ROC curves of one strategy with their AUC and interval, real labels first."""
    m = strategy_metrics.set_index(["strategy", "evaluation", "anomaly_type"])
    curves = []
    d = roc_curves[roc_curves["strategy"] == strategy]
    for (evaluation, atype), c in d.groupby(["evaluation", "anomaly_type"], sort=False):
        key = (strategy, evaluation, atype)
        stats = m.loc[key] if key in m.index else {}
        curves.append(
            RocCurve(
                curve_label(str(evaluation), str(atype)),
                c["fpr"].to_numpy(),
                c["tpr"].to_numpy(),
                float(stats.get("auc", np.nan)),
                float(stats.get("auc_lo", np.nan)),
                float(stats.get("auc_hi", np.nan)),
                emphasis=evaluation == "real",
            )
        )
    curves.sort(key=lambda c: not c.emphasis)
    return curves


def auc_table(strategy_metrics: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The metrics with ``anomaly_type`` as curve labels, and the order of the types (real
    labels first) for the AUC bars."""
    t = strategy_metrics.assign(
        anomaly_type=[
            curve_label(str(e), str(a))
            for e, a in zip(
                strategy_metrics["evaluation"], strategy_metrics["anomaly_type"], strict=True
            )
        ]
    )
    order = list(dict.fromkeys(["real labels", *t["anomaly_type"]]))
    return t, [o for o in order if (t["anomaly_type"] == o).any()]


def real_metrics(strategy_metrics: pd.DataFrame) -> pd.DataFrame:
    """Metrics on the real labels, the columns of :data:`REAL_COLUMNS` that are present."""
    real = strategy_metrics[strategy_metrics["evaluation"] == "real"]
    return real[[c for c in REAL_COLUMNS if c in real]]


def injected_auc(strategy_metrics: pd.DataFrame) -> pd.DataFrame:
    """AUC per strategy (rows) and injected anomaly type (columns); empty without injection."""
    inj = strategy_metrics[strategy_metrics["evaluation"] == "injected"]
    if inj.empty:
        return pd.DataFrame()
    return inj.pivot_table(
        index="strategy", columns="anomaly_type", values="auc", sort=False
    ).reset_index()
