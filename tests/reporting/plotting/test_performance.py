"""ROC curves per strategy and the AUC bar chart."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dqm_playground_ds.reporting.plotting import RocCurve, plot_auc_bars, plot_roc


def test_roc_linear_and_log_panels(style, rendered):
    fpr, tpr = np.array([0, 0.01, 0.2, 1.0]), np.array([0, 0.5, 0.9, 1.0])
    curves = [
        RocCurve("real labels", fpr, tpr, 0.95, 0.93, 0.97, emphasis=True),
        RocCurve("dead region", fpr, tpr**0.5, 0.99),
        RocCurve("shift", fpr, tpr**2),
    ]
    fig = plot_roc(curves, title="reference", style=style)
    lin, log = fig.axes
    assert log.get_xscale() == "log"
    legend = [t.get_text() for t in lin.get_legend().get_texts()]
    assert legend == ["real labels: AUC 0.950 [0.930, 0.970]", "dead region: AUC 0.990", "shift"]
    assert lin.lines[0].get_color() == "black"  # the real-label curve stands out
    assert len(lin.lines) == 3 + 1 and len(log.lines) == 3 + 1  # + chance line / 1% mark
    rendered(fig)


def test_auc_bars_one_per_strategy_and_type(style, rendered):
    table = pd.DataFrame(
        {
            "strategy": ["a", "a", "a", "b", "b", "b"],
            "anomaly_type": ["real labels", "dead_region", "shift"] * 2,
            "auc": [0.9, 0.99, 0.8, 0.95, 0.97, np.nan],
            "auc_lo": [0.85, 0.98, 0.7, 0.9, 0.96, np.nan],
            "auc_hi": [0.95, 1.0, 0.9, 0.99, 0.98, np.nan],
        }
    )
    fig = plot_auc_bars(table, style=style)
    (ax,) = fig.axes
    assert len(ax.patches) == 6
    assert [t.get_text() for t in ax.get_xticklabels()] == ["real labels", "dead region", "shift"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["AUC 0.95", "a", "b"]
    assert ax.get_ylim()[0] <= 0.65
    rendered(fig)
