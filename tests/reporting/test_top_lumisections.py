"""Which flagged LS get detail plots: the peak of each block, quality failures and training LS
left out, highest score first."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dqm_playground_ds.reporting.top_lumisections import (
    TOP_COLUMNS,
    flagged_blocks,
    leading_me,
    select_top_lumisections,
    top_prefix,
)


def _preds(rows) -> pd.DataFrame:
    """rows: (run, lumi, score, flagged, top_mes, split, quality) for strategy s; t flags all."""
    out = []
    for run, lumi, score, flag, tops, split, quality in rows:
        base = {"run": run, "lumi": lumi, "threshold": 1.0, "label": "bad", "split": split}
        out.append({**base, "strategy": "s", "score": score, "is_anomalous": flag,
                    "top_mes": np.array(tops, dtype=object), "quality": quality})  # fmt: skip
        out.append({**base, "strategy": "t", "score": 9.0, "is_anomalous": True,
                    "top_mes": np.array(tops, dtype=object), "quality": quality})  # fmt: skip
    return pd.DataFrame(out)


ROWS = [
    (1, 1, 50.0, True, [], "apply", "low_stats"),  # quality failure: highest score, skipped
    (1, 2, 5.0, True, ["A", "B"], "apply", "ok"),
    (1, 3, 8.0, True, ["A"], "apply", "ok"),  # peak of the block 2-4 (leading ME A)
    (1, 4, 6.0, True, ["A"], "apply", "ok"),
    (1, 5, 7.0, True, ["B"], "apply", "ok"),  # consecutive, but another leading ME: own block
    (1, 7, 2.0, False, ["A"], "apply", "ok"),  # not flagged
    (2, 1, 30.0, True, ["C"], "train", "ok"),  # a training LS: skipped by default
    (3, 9, 3.0, True, ["C", "A"], "apply", "ok"),
]


def test_one_peak_per_block_quality_failures_and_training_ls_left_out():
    top = select_top_lumisections(_preds(ROWS), "s", n=5)
    assert list(top.columns) == TOP_COLUMNS
    assert list(zip(top["run"], top["lumi"], strict=True)) == [(1, 3), (1, 5), (3, 9)]
    assert list(top["rank"]) == [1, 2, 3]
    assert (top["block_first"].tolist(), top["block_last"].tolist()) == ([2, 5, 9], [4, 5, 9])
    assert top["top_mes"].tolist() == ["A", "B", "C; A"]  # every leading ME, not only the first
    assert top["n_strategies_flagging"].tolist() == [2, 2, 2]


def test_each_selection_can_be_switched_off():
    preds = _preds(ROWS)
    every = select_top_lumisections(
        preds, "s", n=10, splits=None, exclude_quality_failures=False, distinct_blocks=False
    )
    assert every["score"].tolist() == [50.0, 30.0, 8.0, 7.0, 6.0, 5.0, 3.0]
    assert every.loc[0, "quality"] == "low_stats" and every.loc[0, "top_mes"] == ""
    assert len(select_top_lumisections(preds, "s", n=2)) == 2
    with_train = select_top_lumisections(preds, "s", n=10, splits=["apply", "train"])
    assert (2, 1) in set(zip(with_train["run"], with_train["lumi"], strict=True))


def test_nothing_flagged_gives_an_empty_table_with_the_columns():
    preds = _preds([(1, 1, 0.1, False, ["A"], "apply", "ok")])
    top = select_top_lumisections(preds, "s", n=5)
    assert top.empty and list(top.columns) == TOP_COLUMNS


def test_blocks_leading_me_and_prefix():
    lumi = np.array([1, 2, 3, 5, 6])
    lead = np.array(["A", "A", "B", "B", "B"], dtype=object)
    assert flagged_blocks(lumi, lead).tolist() == [1, 1, 2, 3, 3]
    assert flagged_blocks(np.array([]), np.array([])).size == 0
    assert leading_me(np.array(["X", "Y"])) == "X" and leading_me(None) == ""
    assert top_prefix(3, 315322, 42) == "03_run315322_ls0042"
