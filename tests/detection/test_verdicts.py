"""Run verdicts calibrated on good training runs, and the ML certification JSON."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dqm_playground_ds.detection.verdicts import ml_certification, run_truth, run_verdicts
from dqm_playground_ds.processing.labels import LumiMask


def predictions() -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(0)
    for run in range(1, 21):  # 20 good training runs, scores around 0
        for lumi in range(1, 6):
            rows.append((run, lumi, rng.normal(0, 0.1), False, "train", "good", "golden", "ok"))
    for lumi in range(1, 6):
        rows.append((100, lumi, 5.0, True, "apply", "bad", "bad_run", "ok"))  # a bad run
        flagged = lumi in (2, 3)
        rows.append((101, lumi, 3.0 if flagged else 0.0, flagged, "apply", "good", "golden", "ok"))
        rows.append((102, lumi, 0.0, False, "apply", "good", "golden", "ok"))
        rows.append((103, lumi, np.nan, True, "apply", "bad", "dcs_on_not_golden", "empty"))
    cols = ["run", "lumi", "score", "is_anomalous", "split", "label", "label_reason", "quality"]
    return pd.DataFrame(rows, columns=cols).assign(strategy="s")


def test_verdicts():
    v = run_verdicts(predictions(), false_alarm_rate=0.05, min_flagged=2).set_index("run")
    assert v.loc[100, "verdict"] == "bad"
    assert v.loc[101, "verdict"] == "partially_bad" and v.loc[101, "n_flagged"] == 2
    assert v.loc[102, "verdict"] == "good"
    assert v.loc[103, "verdict"] == "bad"  # every LS fails the quality cuts: no score
    assert np.isnan(v.loc[103, "run_score"])
    train = v[v["split"] == "train"]
    assert (train["verdict"] == "bad").sum() <= 1  # 5 % of 20 good training runs
    thr = v["run_threshold"].iloc[0]
    assert train["run_score"].max() >= thr >= np.sort(train["run_score"])[-2]
    with pytest.raises(ValueError, match="min_flagged"):
        run_verdicts(predictions(), min_flagged=0)
    with pytest.raises(ValueError, match="min_flagged_fraction"):
        run_verdicts(predictions(), min_flagged_fraction=2)
    # 2 of 5 flagged LS is below a 50 % fraction: the run passes
    strict = run_verdicts(predictions(), min_flagged_fraction=0.5).set_index("run")
    assert strict.loc[101, "verdict"] == "good"


def test_run_truth():
    t = run_truth(predictions()).set_index("run")["run_label"]
    assert t[100] == "bad" and t[102] == "good" and t[103] == "mixed"


def test_certification_lists_the_good_ls_as_ranges():
    p = predictions()
    v = run_verdicts(p)
    cert = ml_certification(p, v, "s")
    assert "100" not in cert and "103" not in cert  # bad runs
    assert cert["101"] == [[1, 1], [4, 5]]  # flagged LS 2-3 left out
    assert cert["102"] == [[1, 5]]
    within = LumiMask.from_json({"102": [[2, 3]]}, name="golden")
    assert ml_certification(p, v, "s", within) == {"102": [[2, 3]]}
