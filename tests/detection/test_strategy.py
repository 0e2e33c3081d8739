"""Strategies fitted and scored over several processes give the same numbers as over one."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from dqm_playground_ds.pipelines.data_processing import nodes as proc
from dqm_playground_ds.pipelines.data_processing.params import DataProcessingParams
from dqm_playground_ds.pipelines.data_science import nodes as sci
from dqm_playground_ds.pipelines.data_science.params import DataScienceParams
from dqm_playground_ds.workers import resolve_jobs, usable_cpus
from tests.detection_data import golden_for, make_histograms

STRATEGIES = {
    "ref": {"preprocessing": "fine", "detectors": [
        {"name": "chi2", "kind": "reference_test", "params": {"statistic": "chi2"}},
        {"name": "integral", "kind": "integral_ratio"}]},
    "two_level": {"preprocessing": "default", "detectors": [
        {"name": "ls_knn", "kind": "knn", "params": {"n_neighbors": 5}},
        {"name": "run_knn", "kind": "run_knn", "params": {"n_neighbors": 1}},
        {"name": "within", "kind": "within_run"}], "combination": {"method": "mean_z"}},
    "pca": {"preprocessing": "default", "detectors": [
        {"name": "pca", "kind": "pca", "params": {"n_components": 2}}],
        "combination": {"method": "gmm"}},
}  # fmt: skip


def _predict(hist, features, ls, n_jobs: int) -> pd.DataFrame:
    sp = DataScienceParams.model_validate({"seed": 4, "n_jobs": n_jobs, "strategies": STRATEGIES})
    models = sci.train_strategies(features, ls, sp)
    return sci.score_lumisections(models, features, ls, sp)[0]


@pytest.fixture(scope="module")
def prepared():
    hist = make_histograms({1: 15, 2: 15, 3: 15, 4: 10}, seed=8)
    pp = DataProcessingParams.model_validate(
        {
            "split": {"name": "t", "train": {"runs": [1, 2, 3]}, "apply": {"runs": [4]}},
            "preprocessing": {"default": {}, "fine": {}},
        }
    )
    split = proc.assign_split(
        proc.label_lumisections_node(hist, golden_for(hist), {}, pp), None, pp
    )
    pre = proc.fit_preprocessor(hist, split, pp)
    features, ls = proc.build_features(hist, split, pre, pp)
    return hist, features, ls


def test_results_do_not_depend_on_the_number_of_workers(prepared):
    one = _predict(*prepared, n_jobs=1)
    two = _predict(*prepared, n_jobs=2)
    pd.testing.assert_frame_equal(one, two)  # same scores, thresholds, flags, top MEs, JSON


def test_n_jobs_setting():
    assert resolve_jobs(3) == 3 and resolve_jobs(None) == usable_cpus() == resolve_jobs(-1)
    assert 1 <= usable_cpus() <= (os.cpu_count() or 1)
    with pytest.raises(ValueError, match="n_jobs must be >= 1, -1 or null"):
        DataScienceParams.model_validate({"n_jobs": 0})


def test_mapped_features_give_the_same_numbers_and_reach_workers_as_paths(prepared, tmp_path):
    import pickle

    from dqm_playground_ds.detection.strategy import _detector_input, _MappedRows
    from dqm_playground_ds.processing.feature_store import read_features, write_features

    hist, features, ls = prepared
    write_features(tmp_path / "features", features)
    mapped = read_features(tmp_path / "features")
    fs = mapped["fine"]
    rows = np.arange(len(fs))
    task_input = _detector_input(fs, fs.me_names[-1], "values", rows, None, in_worker=True)
    assert isinstance(task_input, _MappedRows)
    assert len(pickle.dumps(task_input)) < 2000 + rows.nbytes  # the rows, not the bins
    np.testing.assert_array_equal(task_input.get(), fs.mes[fs.me_names[-1]].values(rows))
    reference = _predict(hist, features, ls, n_jobs=1)
    pd.testing.assert_frame_equal(_predict(hist, mapped, ls, n_jobs=2), reference)
    pd.testing.assert_frame_equal(_predict(hist, mapped, ls, n_jobs=1), reference)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_out_of_fold_scores_are_those_of_one_model_per_fold(prepared, n_jobs):
    """The folds' models are fitted and scored as tasks of one pool: the out-of-fold scores
    must be those of fitting each fold's model on the other folds and scoring its own LS."""
    from dqm_playground_ds.detection.strategy import (
        DetectorSpec,
        MEDetectorSet,
        assign_folds,
        fit_detector_set,
    )

    _, features, ls = prepared
    fs = features["default"]
    train = np.flatnonzero(ls["train"].to_numpy())
    folds = assign_folds(ls.iloc[train], 3)
    oof_rows = np.flatnonzero(ls["split"].to_numpy() == "train")  # also LS that do not train
    oof_folds = np.array([folds[train == r][0] if r in train else r % 3 for r in oof_rows])
    for spec in (
        DetectorSpec.from_dict({"name": "w", "kind": "within_run"}, "w"),
        DetectorSpec.from_dict({"name": "k", "kind": "knn", "max_train": 20}, "k"),
    ):
        final, oof = fit_detector_set(spec, fs, train, folds, 3, oof_rows, oof_folds, n_jobs)
        expected = np.full_like(oof, np.nan)
        for f in range(3):
            part = MEDetectorSet(spec, 3).fit(fs, train[folds != f])
            held = oof_folds == f
            expected[held] = part.anomaly_scores(fs, oof_rows[held])
        np.testing.assert_array_equal(oof, expected)
        whole = MEDetectorSet(spec, 3).fit(fs, train)
        np.testing.assert_array_equal(final.anomaly_scores(fs), whole.anomaly_scores(fs))
        assert not np.isnan(oof[np.isin(oof_rows, train)]).all()


def test_scoring_in_batches_equals_scoring_every_ls_at_once(prepared, tmp_path, monkeypatch):
    """A worker scores an ME by batches of LS (whole runs for run-aware detectors), each read
    from the feature store when scored: the scores are those of one call on every LS."""
    from dqm_playground_ds.detection import strategy
    from dqm_playground_ds.processing.feature_store import read_features, write_features

    _, features, ls = prepared
    write_features(tmp_path / "features", features)
    fs = read_features(tmp_path / "features")["default"]
    train = np.flatnonzero(ls["train"].to_numpy())
    for kind, params in (("within_run", {}), ("run_knn", {"n_neighbors": 1}), ("knn", {})):
        spec = strategy.DetectorSpec.from_dict({"name": kind, "kind": kind, "params": params}, kind)
        det = strategy.MEDetectorSet(spec, 0).fit(fs, train)
        rows = np.flatnonzero(fs.scorable)
        whole = det.anomaly_scores(fs, rows)
        monkeypatch.setattr(strategy, "SCORE_CHUNK_ROWS", 20)  # several batches of 15-LS runs
        for in_worker in (False, True):
            tasks = [(det.models_[det.mes_[j]],
                      *det._score_args(fs, j, rows, None, None, in_worker)) for j in range(len(det.mes_))]  # fmt: skip
            if in_worker:
                assert isinstance(tasks[0][1], strategy._MappedRows)
            got = np.column_stack([strategy._anomaly(*t) for t in tasks])
            # float32 features: a kNN distance of 0 can come out as 4e-9 in another batch
            np.testing.assert_allclose(got, whole, rtol=1e-6, atol=1e-6)
        monkeypatch.undo()
