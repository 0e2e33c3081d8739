"""The processing pipeline with Kedro's runner on small generated tables, good and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from dqm_playground_ds.pipelines.data_processing import create_pipeline
from dqm_playground_ds.pipelines.data_processing.nodes import assign_split
from dqm_playground_ds.pipelines.data_processing.params import DataProcessingParams
from dqm_playground_ds.processing.labels import LabelError
from dqm_playground_ds.processing.split import SplitError
from tests.detection_data import ME_1D, ME_2D, golden_for, make_histograms, replace

PARAMS = {
    "split": {"name": "t", "train": {"runs": [1, 2]}, "apply": {"runs": [3]}},
    "labels": {"use_dcs": True, "bad_runs": [], "overlapping_ranges": "raise"},
    "quality": {"min_entries": 100, "min_entries_per_bin": 0.0},
    "min_train_lumisections": 5,
    "preprocessing": {"default": {"2d": {"shape": [4, 5]}}, "fine": {}},
}


@pytest.fixture(scope="module")
def hist() -> pd.DataFrame:
    return make_histograms({1: 12, 2: 12, 3: 10})


def run(hist, golden, dcs=None, params=None, split_definition=None, bad_runs=None) -> DataCatalog:
    catalog = DataCatalog(
        {
            "histograms": MemoryDataset(hist),
            "golden_json": MemoryDataset(golden),
            "dcs_json": MemoryDataset(dcs or {}),
            "split_definition": MemoryDataset(split_definition or {}),
            "bad_runs": MemoryDataset(bad_runs if bad_runs is not None else []),
            "params:data_processing": MemoryDataset(
                DataProcessingParams.model_validate(params or PARAMS)
            ),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog


def test_labels_split_features_and_references(hist):
    golden = {"1": [[1, 12]], "2": [[1, 10]], "3": [[1, 4], [7, 10]]}
    dcs = {"1": [[1, 12]], "2": [[1, 12]], "3": [[1, 10]]}
    catalog = run(hist, golden, dcs)
    ls = catalog["lumisections"].load()
    assert len(ls) == 34
    assert ls.set_index(["run", "lumi"]).loc[(3, 5), "label"] == "bad"
    assert ls.set_index(["run", "lumi"]).loc[(2, 11), "label_reason"] == "dcs_on_not_golden"
    assert (ls.loc[ls["run"] == 3, "split"] == "apply").all()
    # training LS: training runs, golden, quality ok; never a held-out run or a bad LS
    train = ls[ls["train"]]
    assert set(train["run"]) == {1, 2} and len(train) == 22 and (train["label"] == "good").all()
    features = catalog["me_features"].load()
    assert set(features) == {"default", "fine"}
    assert features["default"].mes[ME_2D].shape == (4, 5)
    assert features["fine"].mes[ME_2D].shape == (8, 10)
    np.testing.assert_array_equal(features["fine"].keys[["run", "lumi"]], ls[["run", "lumi"]])
    refs = catalog["me_references"].load().set_index("me")
    assert refs.loc[ME_1D, "n_train"] == 22
    assert refs.loc[ME_1D, "data"].sum() == pytest.approx(1.0)


def test_a_split_task_file_takes_precedence(hist):
    task = {"name": "task", "train": {"runs": [2, 3]}, "apply": {"runs": [1]}}
    ls = run(hist, golden_for(hist), split_definition=task)["lumisections"].load()
    assert set(ls.loc[ls["train"], "run"]) == {2, 3}


def test_flat_split_file_and_bad_runs_from_a_dataset(hist):
    """A split file with train_runs/apply_runs; bad runs from a file plus the parameter."""
    task = {"train_runs": [2, 3], "apply_runs": [1]}
    params = {**PARAMS, "labels": {**PARAMS.get("labels", {}), "bad_runs": [3]}}
    ls = run(hist, golden_for(hist), params=params, split_definition=task,
             bad_runs={"bad_runs": [1]})["lumisections"].load()  # fmt: skip
    assert set(ls.loc[ls["train"], "run"]) == {2}
    bad = {r: set(g["label_reason"]) for r, g in ls.groupby("run")}
    assert bad[1] == {"bad_run"} and bad[3] == {"bad_run"} and "bad_run" not in bad[2]
    with pytest.raises(ValueError, match="bad_runs dataset"):
        run(hist, golden_for(hist), bad_runs={"runs": [1]})
    with pytest.raises(ValueError, match="not"):
        run(hist, golden_for(hist), split_definition={"train_runs": [1], "train": {"runs": [2]}})


def test_runs_in_neither_side_are_dropped_or_applied(hist):
    golden = golden_for(hist)
    labelled = pd.DataFrame({"run": [1, 2, 3], "lumi": [1, 1, 1], "label": "good"})
    typed = DataProcessingParams.model_validate
    only_train = typed({"split": {"train": {"runs": [1]}}})
    assert assign_split(labelled, None, only_train)["split"].tolist() == ["train", "apply", "apply"]
    both = typed({"split": {"train": {"runs": [1]}, "apply": {"runs": [2]}}})
    assert assign_split(labelled, None, both)["run"].tolist() == [1, 2]
    with pytest.raises(ValueError, match="in both train and apply"):
        typed({"split": {"train": {"runs": [1]}, "apply": {"runs": [1]}}})
    with pytest.raises(SplitError, match="in both train and apply"):  # a split dataset
        assign_split(labelled, {"train": {"runs": [1]}, "apply": {"runs": [1]}}, only_train)
    assert golden  # the table's runs are all certified


def test_no_good_training_ls_is_a_clear_error(hist):
    golden = {"3": [[1, 10]]}  # runs 1 and 2 not certified: nothing good to train on
    with pytest.raises(ValueError, match="the split has no good training LS"):
        run(hist, golden)


def test_too_few_training_ls_after_quality_cuts(hist):
    params = {**PARAMS, "min_train_lumisections": 30}
    with pytest.raises(ValueError, match="only 24 good training LS pass the quality cuts"):
        run(hist, golden_for(hist), params=params)


def test_bad_golden_json_is_a_clear_error(hist):
    with pytest.raises(LabelError, match="golden JSON: run 1: ranges"):
        run(hist, {"1": [[1, 5], [3, 8]]})
    merged = {**PARAMS, "labels": {**PARAMS["labels"], "overlapping_ranges": "merge"}}
    ls = run(hist, {"1": [[1, 5], [3, 12]], "2": [[1, 12]]}, params=merged)["lumisections"].load()
    assert ls.loc[ls["run"] == 1, "label"].eq("good").all()


def test_bad_input_ls_are_kept_with_their_quality(hist):
    bad = replace(hist, 3, 1, ME_1D, np.zeros(40))
    bad = replace(bad, 3, 2, ME_1D, np.r_[np.nan, np.full(39, 100.0)])
    bad = replace(bad, 1, 3, ME_1D, np.full(40, 1.0))  # a training LS with 40 entries
    bad = bad[~((bad["run"] == 3) & (bad["lumi"] == 3) & (bad["me"] == ME_2D))]
    ls = run(bad, golden_for(bad))["lumisections"].load().set_index(["run", "lumi"])
    assert ls.loc[(3, 1), "quality"] == "empty"
    assert ls.loc[(3, 2), "quality"] == "invalid"
    assert ls.loc[(3, 3), "quality"] == "missing" and ME_2D in ls.loc[(3, 3), "quality_detail"]
    assert ls.loc[(1, 3), "quality"] == "low_stats" and not ls.loc[(1, 3), "train"]
    assert not ls.loc[[(3, 1), (3, 2), (3, 3)], "scorable"].any()
    assert ls.loc[(1, 3), "scorable"]  # low statistics can still be scored
