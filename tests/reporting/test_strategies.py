"""Which strategies are shown and whose flags the report follows."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from dqm_playground_ds.reporting.strategies import (
    choose_report_strategy,
    present_strategies,
    select_strategies,
)

PREDS = pd.DataFrame({"strategy": ["b", "a", "b", "c"]})


def test_given_then_best_then_first():
    assert choose_report_strategy(PREDS, {"best_strategy": "a"}, "c") == "c"
    assert choose_report_strategy(PREDS, {"best_strategy": "a"}, None) == "a"
    assert choose_report_strategy(PREDS, {"best_strategy": "gone"}, None) == "b"
    assert choose_report_strategy(PREDS, None, None) == "b"
    with pytest.raises(ValueError, match="'x' not among the predictions"):
        choose_report_strategy(PREDS, {}, "x")
    with pytest.raises(ValueError, match="empty"):
        choose_report_strategy(PREDS.iloc[:0], {}, None)


def test_selection_keeps_the_order_asked_and_warns_of_absent_ones(caplog):
    assert present_strategies(PREDS) == ["b", "a", "c"]
    assert select_strategies(PREDS, None) == ["b", "a", "c"]
    with caplog.at_level(logging.WARNING):
        assert select_strategies(PREDS, ["c", "zz", "b"]) == ["c", "b"]
    assert "zz" in caplog.text
