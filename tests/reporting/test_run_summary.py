"""The run table: LS per label, flags and verdict of the report strategy, detail runs."""

from __future__ import annotations

import pandas as pd

from dqm_playground_ds.reporting.run_summary import (
    RUN_SUMMARY_COLUMNS,
    detail_runs,
    ls_ratio_table,
    run_ranges,
    summarise_runs,
)
from tests import viz_inputs


def test_counts_flags_verdicts_and_detail_runs():
    inputs = viz_inputs.make_inputs()
    preds, ls = inputs["lumisection_predictions"], inputs["lumisections"]
    s = summarise_runs(preds, ls, "ref", 1, [1001], inputs["run_predictions"])
    assert list(s.columns) == [*RUN_SUMMARY_COLUMNS, "verdict", "run_score_ratio"]
    assert s["run"].tolist() == [1001, 1002]
    for row in s.to_dict(orient="records"):
        mine = preds[(preds["strategy"] == "ref") & (preds["run"] == row["run"])]
        labels = ls[ls["run"] == row["run"]]["label"].value_counts()
        assert row["n_flagged"] == int(mine["is_anomalous"].sum())
        assert row["max_score_ratio"] == (mine["score"] / mine["threshold"]).max()
        assert (row["good"], row["bad"], row["unknown"]) == tuple(
            int(labels.get(k, 0)) for k in ("good", "bad", "unknown")
        )
        assert row["n_ls"] == len(labels.index.repeat(labels))
    by_run = s.set_index("run")
    assert by_run.loc[1002, "detail_reason"] == "most flagged"  # the bad block
    assert by_run.loc[1001, "detail_reason"] == "named"
    assert detail_runs(s) == [1001, 1002]
    assert by_run.loc[1002, "split"] == "apply"
    v = inputs["run_predictions"].set_index(["strategy", "run"]).loc["ref"]
    assert by_run["verdict"].tolist() == v.loc[[1001, 1002], "verdict"].tolist()


def test_most_flagged_ranked_by_flags_then_score_then_run():
    preds = pd.DataFrame(
        {
            "run": [1, 1, 2, 2, 3, 3],
            "lumi": [1, 2, 1, 2, 1, 2],
            "strategy": "s",
            "score": [5.0, 5.0, 9.0, 1.0, 7.0, 1.0],
            "threshold": 2.0,
            "is_anomalous": [True, True, True, False, True, False],
        }
    )
    ls = preds[["run", "lumi"]].assign(label="good")
    assert detail_runs(summarise_runs(preds, ls, "s", 1)) == [1]  # two flagged LS
    assert detail_runs(summarise_runs(preds, ls, "s", 2)) == [1, 2]  # then the larger ratio
    assert detail_runs(summarise_runs(preds, ls, "s", 0)) == []
    assert detail_runs(summarise_runs(preds, ls, "s", 0, [3, 99])) == [3]  # 99: not a run


def test_ratio_table_and_run_ranges():
    inputs = viz_inputs.make_inputs()
    d = ls_ratio_table(inputs["lumisection_predictions"], inputs["lumisections"], "ref")
    assert list(d.columns) == ["run", "lumi", "ratio", "label"] and len(d) == 24
    assert run_ranges([]) == "none" and run_ranges([5]) == "5" and run_ranges([1, 4]) == "2 (1-4)"
