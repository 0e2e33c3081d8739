"""Run-wise cross-validation on the real 2017 set (benchmarks/real_detection.py); skipped if absent."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "real_detection", ROOT / "benchmarks" / "real_detection.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not module.REAL.is_dir():
        pytest.skip(f"{module.REAL} is not present")
    return module


def test_run_aware_strategy_beats_the_pooled_reference_on_real_data(bench, caplog):
    data = bench.load_real(bench.REAL)
    proc, sci = bench.load_params()
    sci = {**sci, "active_strategies": ["two_level", "reference_gmm"],
           "injection": {"enabled": False}}  # fmt: skip
    runs = np.unique(data["histograms"]["run"].to_numpy())
    fold_of = np.random.default_rng(1000).permutation(len(runs)) % 3
    preds, verdicts = [], []
    for f in range(3):
        p, v, best = bench.run_fold(data, runs[fold_of != f], runs[fold_of == f], proc, sci)
        assert best == "two_level"  # chosen from the training runs' labels, out of fold
        assert not set(p["run"]) & set(runs[fold_of != f])  # no training run in the test fold
        preds.append(p)
        verdicts.append(v)
    # one ME: the ME-balance detector of reference_gmm sees nothing and has no vote
    assert "integral on MainDiagonal Position gives the same score" in caplog.text
    table = bench.metrics(pd.concat(preds), pd.concat(verdicts), data, n_boot=20)
    m = table.set_index("strategy")
    assert m.loc["two_level", "n_bad"] >= 25 and m.loc["two_level", "n_bad_runs"] >= 12
    assert m.loc["two_level", "auc"] >= 0.88
    assert m.loc["two_level", "run_auc"] >= 0.85
    assert m.loc["two_level", "auc"] > m.loc["reference_gmm", "auc"] + 0.1
    assert m.loc["two_level", "wp_fpr_good"] <= 0.03
