"""What a shifter reads in the predictions: quality failures flagged with the failing MEs named,
and figures that count them as detected (+inf), through the real processing and detection nodes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dqm_playground_ds.detection.assessment import assess_strategies, decision_score
from dqm_playground_ds.detection.evaluation import BestStrategyCriteria, choose_best
from dqm_playground_ds.pipelines.data_processing import nodes as proc
from dqm_playground_ds.pipelines.data_processing.params import DataProcessingParams
from dqm_playground_ds.pipelines.data_science import nodes as sci
from dqm_playground_ds.pipelines.data_science.params import DataScienceParams
from tests.detection_data import ME_1D_B, get, golden_for, make_histograms, replace

STARVED = (4, 3)  # an LS whose ME_1D_B holds a handful of entries: fails the quality cuts
NO_INJECTIONS = pd.DataFrame(columns=["strategy", "anomaly_type", "score", "quality"])


@pytest.fixture(scope="module")
def predicted():
    hist = make_histograms({1: 20, 2: 20, 3: 20, 4: 8}, seed=5)
    few = np.zeros_like(get(hist, *STARVED, ME_1D_B))
    few[10:13] = 3  # 9 entries < min_entries 100
    hist = replace(hist, *STARVED, ME_1D_B, few)
    pp = DataProcessingParams.model_validate(
        {
            "split": {"name": "t", "train": {"runs": [1, 2, 3]}, "apply": {"runs": [4]}},
            "labels": {"bad_runs": [4]},
            "preprocessing": {"fine": {}},
        }
    )
    sp = DataScienceParams.model_validate(
        {
            "seed": 2,
            "strategies": {
                "ref": {
                    "preprocessing": "fine",
                    "detectors": [
                        {"name": "chi2", "kind": "reference_test", "params": {"statistic": "chi2"}}
                    ],
                }
            },
            "injection": {"enabled": False},
            "evaluation": {"n_bootstrap": 5},
        }
    )
    labelled = proc.label_lumisections_node(hist, golden_for(hist), {}, pp, [])
    split = proc.assign_split(labelled, None, pp)
    pre = proc.fit_preprocessor(hist, split, pp)
    features, ls = proc.build_features(hist, split, pre, pp)
    models = sci.train_strategies(features, ls, sp)
    preds, _ = sci.score_lumisections(models, features, ls, sp)
    return preds, sp


def _row(preds: pd.DataFrame, run: int, lumi: int) -> pd.Series:
    return preds[(preds["run"] == run) & (preds["lumi"] == lumi)].iloc[0]


def test_a_quality_failure_is_flagged_with_the_failing_me_named(predicted):
    preds, _ = predicted
    starved = _row(preds, *STARVED)
    assert starved["quality"] != "ok" and bool(starved["is_anomalous"])
    assert list(starved["top_mes"]) == [ME_1D_B]  # the ME that failed, not the model's ranking
    assert (preds.loc[preds["quality"] == "ok", "top_mes"].map(len) == 3).all()  # top_n_mes


def test_quality_failures_score_inf_in_the_figures(predicted):
    preds, _sp = predicted
    s = decision_score(preds["score"], preds["quality"], True)
    failed = (preds["quality"] != "ok").to_numpy()
    assert failed.any() and np.isinf(s[failed]).all() and np.isfinite(s[~failed]).all()
    _metrics, table, _, _ = assess_strategies(preds, NO_INJECTIONS,
        flag_quality_failures=True, n_bootstrap=5, roc_points=20, seed=0,
        criteria=BestStrategyCriteria())  # fmt: skip
    real = table[table["evaluation"] == "real"].iloc[0]
    assert real["n_pos_quality_flagged"] == 1  # the starved LS of the bad run
    unflagged = assess_strategies(preds, NO_INJECTIONS,
        flag_quality_failures=False, n_bootstrap=5, roc_points=20, seed=0,
        criteria=BestStrategyCriteria())[1]  # fmt: skip
    assert unflagged[unflagged["evaluation"] == "real"].iloc[0]["n_pos_quality_flagged"] == 0


def _injected_table(worst: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "strategy": name,
                "evaluation": "injected",
                "anomaly_type": f"t{i}",
                "auc": a,
                "n_pos": 50,
                "n_neg": 50,
                "tpr_at_fpr_0.01": 0.9,
                "wp_fpr": 0.01,
            }
            for name, aucs in worst.items()
            for i, a in enumerate(aucs)
        ]
    )


def test_without_labels_the_best_strategy_has_the_highest_worst_type_auc():
    table = _injected_table({"spiky": [0.999, 0.60], "even": [0.90, 0.91]})
    assert choose_best(table)["best_strategy"] == "even"  # a max over types would pick "spiky"


def test_the_default_targets_are_the_projects():
    table = _injected_table({"a": [0.951, 0.96]})
    assert choose_best(table)["targets"]["injected_auc_ge_every_type"] is True
    table = _injected_table({"a": [0.949, 0.96]})
    assert choose_best(table)["targets"]["injected_auc_ge_every_type"] is False
    assert BestStrategyCriteria().targets.real_auc_min == 0.95


def test_me_scores_json_is_json_dumps_of_the_rounded_scores():
    import json
    import math

    from dqm_playground_ds.detection.predictions import me_scores_json
    from dqm_playground_ds.detection.strategy import StrategyScores

    rng = np.random.default_rng(3)
    imp = rng.normal(0, 3, size=(400, 4)) * rng.choice([1e-4, 1, 1e5], size=(400, 4))
    imp[rng.random((400, 4)) < 0.3] = np.nan
    imp[0] = [np.inf, -np.inf, 0.0, -0.0]
    imp[1] = np.nan
    mes = ["A/one", 'B/"quoted"', "C/ünïcode", "D/x"]
    sc = StrategyScores(imp, imp, imp[:, 0], mes, imp)
    expected = [
        json.dumps(
            {m: round(float(v), 3) for m, v in zip(mes, row, strict=True) if not math.isnan(v)}
        )
        for row in imp
    ]
    assert me_scores_json(sc) == expected
    assert me_scores_json(StrategyScores(imp[:, :0], imp[:, :0], imp[:, 0], [], imp[:, :0]))[
        :2
    ] == ["{}", "{}"]
