"""Detection metrics against scikit-learn and by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from dqm_playground_ds.detection.evaluation import (
    auc,
    bootstrap_auc,
    fpr_at_tpr,
    per_run_counts,
    roc_points,
    summarize,
    tpr_at_fpr,
    working_point,
)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(300, bool), np.zeros(1000, bool)]
    s = np.r_[rng.normal(1.5, 1, 300), rng.normal(0, 1, 1000)]
    return y, np.round(s, 1)  # rounding makes ties


def test_auc_matches_sklearn_with_ties_and_infinities(data):
    y, s = data
    assert auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    s2 = s.copy()
    s2[:10] = np.inf  # an LS flagged by the quality cuts
    assert auc(y, s2) == pytest.approx(roc_auc_score(y, np.where(np.isinf(s2), 1e9, s2)))
    assert np.isnan(auc(np.ones(5, bool), np.arange(5.0)))
    with pytest.raises(ValueError, match="NaN"):
        auc(y, np.r_[np.nan, s[1:]])


def test_bootstrap_interval_contains_the_estimate(data):
    y, s = data
    lo, hi = bootstrap_auc(y, s, n_boot=200, seed=1)
    assert lo < auc(y, s) < hi and hi - lo < 0.1
    assert bootstrap_auc(y, s, n_boot=50, seed=3) == bootstrap_auc(y, s, n_boot=50, seed=3)


def test_tpr_at_fpr_matches_the_roc_curve(data):
    y, s = data
    fpr, tpr, _ = roc_curve(y, s)
    for target in (0.01, 0.05, 0.2):
        got, achieved = tpr_at_fpr(y, s, target)
        assert achieved <= target
        assert got == pytest.approx(tpr[fpr <= target].max(), abs=1e-12)
    # with 100 negatives, 0.1 % FPR can only mean zero false alarms
    t, a = tpr_at_fpr(
        np.r_[np.ones(5, bool), np.zeros(100, bool)],
        np.r_[np.arange(5.0) + 99, np.arange(100.0)],
        0.001,
    )
    assert a == 0.0 and t == pytest.approx(0.8)  # 99 ties the largest negative


def test_fpr_at_efficiency():
    y = np.r_[np.ones(10, bool), np.zeros(10, bool)]
    s = np.r_[np.arange(10.0), np.arange(10.0) - 4.5]  # positives 0..9, negatives -4.5..4.5
    assert fpr_at_tpr(y, s, 0.5) == 0.0  # threshold 5: no negative above
    assert fpr_at_tpr(y, s, 0.9) == pytest.approx(0.4)  # threshold 1: negatives 1.5..4.5
    assert fpr_at_tpr(y, s, 0.99) == pytest.approx(0.5)  # threshold 0


def test_roc_points_are_monotonic_and_span_the_square(data):
    y, s = data
    roc = roc_points(y, s, max_points=50)
    assert (np.diff(roc["fpr"]) >= 0).all() and (np.diff(roc["tpr"]) >= 0).all()
    assert roc.iloc[0][["fpr", "tpr"]].tolist() == [0, 0]
    assert roc.iloc[-1][["fpr", "tpr"]].tolist() == [1, 1]
    assert len(roc) <= 52
    area = np.trapezoid(roc["tpr"], roc["fpr"])
    assert area == pytest.approx(auc(y, s), abs=0.02)


def test_summary_and_working_point(data):
    y, s = data
    out = summarize(y, s, n_boot=20)
    assert {"auc", "auc_lo", "auc_hi", "tpr_at_fpr_0.01", "tpr_at_fpr_0.001", "achieved_fpr_0.01",
            "fpr_at_tpr_0.5", "fpr_at_tpr_0.9", "fpr_at_tpr_0.99"} <= set(out)  # fmt: skip
    assert (out["n_pos"], out["n_neg"]) == (300, 1000)
    wp = working_point(y, s > 2.0)
    assert wp["tpr"] == pytest.approx((s[y] > 2).mean()) and wp["fpr"] == pytest.approx(
        (s[~y] > 2).mean()
    )


def test_per_run_counts():
    p = pd.DataFrame(
        {
            "strategy": ["a"] * 5,
            "run": [1, 1, 1, 2, 2],
            "lumi": [1, 2, 3, 1, 2],
            "split": ["apply"] * 5,
            "label": ["good", "bad", "bad", "good", "unknown"],
            "is_anomalous": [True, True, False, False, True],
        }
    )
    out = per_run_counts(p).set_index("run")
    assert out.loc[
        1, ["n_ls", "n_flagged", "n_bad", "n_flagged_bad", "n_good", "n_flagged_good"]
    ].tolist() == [3, 2, 2, 1, 1, 1]
    assert out.loc[2, ["n_flagged", "n_flagged_good"]].tolist() == [1, 0]


def _table(oof_bad: int = 10) -> pd.DataFrame:
    from dqm_playground_ds.detection.evaluation import DEFAULT_TARGETS  # noqa: F401

    rows = []
    for name, real_auc, inj_auc in (("a", 0.9, 0.99), ("b", 0.7, 1.0)):
        rows.append({"strategy": name, "evaluation": "real_train_oof", "anomaly_type": "labels",
                     "auc": real_auc, "n_pos": oof_bad, "n_neg": 100, "run_auc": real_auc,
                     "tpr_at_fpr_0.01": 0.3, "wp_fpr": 0.01})  # fmt: skip
        for t in ("dead_region", "shift"):
            rows.append({"strategy": name, "evaluation": "injected", "anomaly_type": t,
                         "auc": inj_auc, "n_pos": 50, "n_neg": 50, "tpr_at_fpr_0.01": 0.9,
                         "wp_fpr": 0.01})  # fmt: skip
    return pd.DataFrame(rows)


def test_best_strategy_from_real_labels_of_training_runs_else_injections():
    from dqm_playground_ds.detection.evaluation import choose_best

    best = choose_best(_table())
    assert best["best_strategy"] == "a" and "real labels" in best["best_strategy_criterion"]
    assert best["targets"]["real_auc_ge"] is False  # 0.9 < 0.95
    assert choose_best(_table(), {"targets": {"real_auc_min": 0.85}})["targets"]["real_auc_ge"]
    few = choose_best(_table(oof_bad=2))  # too few labelled bad LS: injections decide
    assert few["best_strategy"] == "b" and "injected" in few["best_strategy_criterion"]
    assert few["targets"]["injected_auc_ge_every_type"] is True
    with pytest.raises(ValueError, match="unknown key"):
        choose_best(_table(), {"target": {}})
    with pytest.raises(ValueError, match="unknown key"):
        choose_best(_table(), {"targets": {"real_auc": 0.9}})
