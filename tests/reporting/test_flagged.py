"""The flagged-LS table: every LS the report strategy flags, its leading MEs and the agreement."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dqm_playground_ds.reporting.flagged import flagged_table, me_list, short_mes
from tests import viz_inputs


def test_every_flagged_ls_once_with_agreement_and_short_me_names():
    preds = viz_inputs.make_inputs()["lumisection_predictions"]
    table = flagged_table(preds, "ref")
    chosen = preds[(preds["strategy"] == "ref") & preds["is_anomalous"]]
    assert len(table) == len(chosen)
    assert list(zip(table["run"], table["LS"], strict=True)) == sorted(
        zip(chosen["run"], chosen["lumi"], strict=True)
    )
    both = preds[preds["is_anomalous"]].groupby(["run", "lumi"]).size()
    for run, ls, by in zip(table["run"], table["LS"], table["flagged by"], strict=True):
        assert by == f"{both[(run, ls)]} / 2"
    np.testing.assert_allclose(
        table["score / threshold"], table["score"] / 2.0
    )  # threshold 2 in the inputs
    row = chosen.set_index(["run", "lumi"]).loc[(table.loc[0, "run"], table.loc[0, "LS"])]
    assert table.loc[0, "top MEs"] == ", ".join(m.rsplit("/", 1)[-1] for m in row["top_mes"])


def test_quality_failures_keep_their_failing_mes():
    preds = pd.DataFrame(
        {
            "run": [1, 1],
            "lumi": [1, 2],
            "strategy": "s",
            "score": [0.5, 3.0],
            "threshold": 1.0,
            "is_anomalous": [True, True],
            "top_mes": [np.array(["Pixel/a", "Strip/b"]), np.array(["Pixel/a"])],
            "quality": ["low_stats", "ok"],
        }
    )
    other = preds.assign(strategy="t", is_anomalous=[False, True])
    table = flagged_table(pd.concat([preds, other], ignore_index=True), "s")
    assert table["top MEs"].tolist() == ["a, b", "a"]
    assert table["flagged by"].tolist() == ["1 / 2", "2 / 2"]
    assert table["quality"].tolist() == ["low_stats", "ok"]
    assert table["label"].isna().all()  # a column the predictions lack is shown empty


def test_me_lists_from_arrays_and_csv_text():
    assert me_list(np.array(["A/x", "B/y"])) == ["A/x", "B/y"]
    assert me_list("A/x; B/y") == ["A/x", "B/y"]
    assert me_list(float("nan")) == [] and me_list(None) == [] and me_list("") == []
    assert short_mes("A/x; B/y") == "x, y"
