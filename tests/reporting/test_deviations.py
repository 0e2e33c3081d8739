"""chi2/ndf per (LS, ME) against the reference: the reference test's statistic, not another one."""

from __future__ import annotations

import numpy as np

from dqm_playground_ds.detection.detectors import ReferenceTest
from dqm_playground_ds.detection.reference import Reference
from dqm_playground_ds.reporting.deviations import me_deviation_table, quality_ok_keys, wide
from dqm_playground_ds.schema import data_matrix
from tests import viz_inputs


def test_chi2_is_the_reference_tests_statistic():
    inputs = viz_inputs.make_inputs()
    hist, ls = inputs["histograms"], inputs["lumisections"]
    train = ls[ls["train"]][["run", "lumi"]]
    refs, detectors = {}, {}
    for me in viz_inputs.MES:
        rows = hist[hist["me"] == me].merge(train, on=["run", "lumi"])
        refs[me] = Reference.fit(data_matrix(rows), rows["run"].to_numpy())
        detectors[me] = ReferenceTest(statistic="chi2").fit(data_matrix(rows), rows["run"])
    table = me_deviation_table(hist, refs)
    assert len(table) == len(hist) and set(table["me"]) == set(viz_inputs.MES)
    for me in viz_inputs.MES:
        rows = hist[hist["me"] == me]
        mine = table[table["me"] == me]
        np.testing.assert_array_equal(mine["run"], rows["run"])
        np.testing.assert_array_equal(
            mine["chi2_ndf"], detectors[me].anomaly_score(data_matrix(rows))
        )
    # the bad block (a third of the bins empty) stands out in every ME
    bad = table.merge(ls[ls["label"] == "bad"][["run", "lumi"]])
    good = table.merge(ls[ls["label"] == "good"][["run", "lumi"]])
    assert bad["chi2_ndf"].min() > 1.5 * good["chi2_ndf"].max()


def test_mes_without_reference_or_other_binning_are_left_out():
    inputs = viz_inputs.make_inputs()
    hist = inputs["histograms"]
    me = viz_inputs.ME_1D[0]
    refs = {me: Reference(np.full(3, 1 / 3), 1e4, np.zeros(3))}  # 3 bins, the ME has 20
    assert me_deviation_table(hist, refs).empty
    assert list(me_deviation_table(hist, {}).columns) == [
        "run",
        "lumi",
        "me",
        "entries",
        "chi2_ndf",
    ]


def test_quality_keys_and_wide_tables():
    ls = viz_inputs.lumisections()
    keys = quality_ok_keys(ls)
    assert len(keys) == (ls["quality"] == "ok").sum()
    assert len(quality_ok_keys(ls.drop(columns=["quality"]))) == len(ls)
    t = me_deviation_table(viz_inputs.make_inputs()["histograms"], {})
    assert wide(t, "entries").empty
