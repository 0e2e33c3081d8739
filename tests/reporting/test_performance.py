"""Performance as the report shows it: curves per strategy, AUC order, the metric tables."""

from __future__ import annotations

from dqm_playground_ds.reporting.performance import (
    REAL_COLUMNS,
    auc_table,
    curve_label,
    injected_auc,
    real_metrics,
    roc_curves_of,
)
from tests import viz_inputs


def test_curves_of_a_strategy_real_labels_first_with_their_auc():
    m = viz_inputs.strategy_metrics()
    curves = roc_curves_of(viz_inputs.roc_curves(), m, "iso")
    assert [c.label for c in curves] == ["real labels", "dead region", "shift"]
    assert curves[0].emphasis and not curves[1].emphasis
    assert curves[0].auc == m[(m["strategy"] == "iso") & (m["evaluation"] == "real")]["auc"].iloc[0]


def test_auc_order_and_tables():
    m = viz_inputs.strategy_metrics()
    table, order = auc_table(m)
    assert order == ["real labels", "dead region", "shift"]
    assert set(table["anomaly_type"]) == set(order)
    real = real_metrics(m)
    assert list(real.columns) == list(REAL_COLUMNS) and len(real) == 2
    pivot = injected_auc(m)
    assert list(pivot.columns) == ["strategy", "dead_region", "shift"]
    assert injected_auc(m[m["evaluation"] == "real"]).empty
    assert curve_label("injected", "hot_spot") == "hot spot"
