"""Processing + detection with Kedro's runner on a small generated table with planted problems."""

from __future__ import annotations

import numpy as np
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from dqm_playground_ds.frame_parts import as_frame
from dqm_playground_ds.pipelines.data_processing import create_pipeline as processing
from dqm_playground_ds.pipelines.data_processing.params import DataProcessingParams
from dqm_playground_ds.pipelines.data_science import create_pipeline as detection
from dqm_playground_ds.pipelines.data_science.params import DataScienceParams
from tests.detection_data import ME_1D, ME_2D, NX, NY, get, make_histograms, replace
from tests.pipelines.data_processing.test_pipeline import PARAMS as PROCESSING

REFERENCE = [
    {"name": "chi2", "kind": "reference_test", "params": {"statistic": "chi2"}},
    {"name": "scan", "kind": "reference_test", "params": {"statistic": "scan"}},
    {"name": "integral", "kind": "integral_ratio"},
]
DETECTION = {
    "seed": 1,
    "calibration_folds": 3,
    "active_strategies": None,
    "flag_quality_failures": True,
    "me_scores_json": True,
    "strategies": {
        "reference": {
            "preprocessing": "fine",
            "detectors": REFERENCE,
            "combination": {"method": "max_z"},
        },
        "reference_gmm_persistent": {
            "preprocessing": "fine",
            "detectors": REFERENCE,
            "combination": {"method": "gmm"},
            "threshold": {"false_alarm_rate": 0.05, "consecutive": 2},
        },
        "two_level": {
            "preprocessing": "default",
            "detectors": [
                {"name": "ls_knn", "kind": "knn", "params": {"n_neighbors": 5}},
                {"name": "run_knn", "kind": "run_knn", "params": {"n_neighbors": 1}},
                {"name": "within", "kind": "within_run"},
            ],
            "combination": {"method": "mean_z"},
        },
        "pca_gmm": {
            "preprocessing": "default",
            "detectors": [
                {"name": "pca", "kind": "pca", "params": {"n_components": 3}, "max_train": 40}
            ],
            "combination": {"method": "gmm"},
        },
    },
    "injection": {"enabled": True, "types": ["dead_region", "shift"], "n_per_type": 15},
    "evaluation": {"n_bootstrap": 20, "roc_points": 50},
}
BAD_LS = [(4, 5), (4, 6), (4, 7)]  # a shifted charge ME: not golden, DCS on
DEAD_LS = (5, 3)  # half the 2D map dead


@pytest.fixture(scope="module")
def result() -> DataCatalog:
    hist = make_histograms({1: 25, 2: 25, 3: 25, 4: 12, 5: 12}, seed=3)
    for run, lumi in BAD_LS:
        hist = replace(hist, run, lumi, ME_1D, np.roll(get(hist, run, lumi, ME_1D), 3))
    dead = get(hist, *DEAD_LS, ME_2D).reshape(NY, NX)
    dead[: NY // 2] = 0
    hist = replace(hist, *DEAD_LS, ME_2D, dead.reshape(-1))
    golden = {"1": [[1, 25]], "2": [[1, 25]], "3": [[1, 25]], "4": [[1, 4], [8, 12]],
              "5": [[1, 2], [4, 12]]}  # fmt: skip
    dcs = {str(r): [[1, 25]] for r in range(1, 6)}
    split = {"name": "t", "train": {"runs": [1, 2, 3]}, "apply": {"runs": [4, 5]}}
    catalog = DataCatalog(
        {
            "histograms": MemoryDataset(hist),
            "golden_json": MemoryDataset(golden),
            "dcs_json": MemoryDataset(dcs),
            "split_definition": MemoryDataset({}),
            "bad_runs": MemoryDataset([]),
            "me_group_fits": MemoryDataset({}),  # no ME group fan-out
            "params:data_processing": MemoryDataset(
                DataProcessingParams.model_validate({**PROCESSING, "split": split})
            ),
            "params:data_science": MemoryDataset(DataScienceParams.model_validate(DETECTION)),
        }
    )
    pipeline = processing() + detection()
    for name in pipeline.all_outputs():  # keep the intermediate results for the assertions
        catalog[name] = Kept(copy_mode="assign")
    SequentialRunner().run(pipeline, catalog)
    return catalog


class Kept(MemoryDataset):
    """A memory dataset the runner cannot release."""

    def _release(self) -> None:
        pass


def test_predictions_table(result):
    p = as_frame(result["lumisection_predictions"].load())
    for column in ("run", "lumi", "strategy", "score", "threshold", "is_anomalous", "top_mes",
                   "label", "me_scores", "split", "quality"):  # fmt: skip
        assert column in p.columns
    assert len(p) == 4 * 99 and set(p["strategy"]) == set(DETECTION["strategies"])
    ref = p[p["strategy"] == "reference"].set_index(["run", "lumi"])
    for ls in BAD_LS:
        assert ref.loc[ls, "is_anomalous"] and ref.loc[ls, "top_mes"][0] == ME_1D
    assert ref.loc[DEAD_LS, "is_anomalous"] and ref.loc[DEAD_LS, "top_mes"][0] == ME_2D
    held_good = ref[(ref["split"] == "apply") & (ref["label"] == "good")]
    assert held_good["is_anomalous"].mean() <= 0.1
    # persistence: an isolated flag (the one dead LS) is dropped, the 3-LS block stays
    pers = p[p["strategy"] == "reference_gmm_persistent"].set_index(["run", "lumi"])
    assert pers.loc[BAD_LS, "is_anomalous"].all() and not pers.loc[DEAD_LS, "is_anomalous"]


def test_training_ls_carry_out_of_fold_scores(result):
    model = result["strategy_models"].load()["reference"]
    features = result["me_features"].load()["fine"]
    p = as_frame(result["lumisection_predictions"].load())
    ref = p[p["strategy"] == "reference"].reset_index(drop=True)
    ls = result["lumisections"].load()
    np.testing.assert_array_equal(ref[["run", "lumi"]], ls[["run", "lumi"]])
    oof = model.anomaly_scores(features, use_oof=True).score
    in_sample = model.anomaly_scores(features, use_oof=False).score
    train = ls["train"].to_numpy()
    np.testing.assert_allclose(ref["score"].to_numpy()[train], oof[train], rtol=1e-9)
    assert not np.allclose(oof[train], in_sample[train])  # the final models saw those LS
    assert (oof[train] > model.threshold).mean() <= 0.05  # the target rate, out of fold


def test_injections_only_in_held_out_good_ls(result):
    ls = result["lumisections"].load().set_index(["run", "lumi"])
    inj = result["injections"].load()
    assert len(inj) == 30
    info = ls.loc[list(map(tuple, inj[["run", "lumi"]].to_numpy()))]
    assert (info["split"] == "apply").all() and (info["label"] == "good").all()
    assert (info["quality"] == "ok").all()


def test_metrics_only_on_held_out_runs(result):
    table = result["strategy_metrics"].load()
    ls = result["lumisections"].load()
    held = ls[ls["split"] == "apply"]
    real = table[(table["evaluation"] == "real") & (table["strategy"] == "reference")].iloc[0]
    assert real["n_pos"] == (held["label"] == "bad").sum() == 4
    assert real["n_neg"] == (held["label"] == "good").sum()
    inj = table[table["evaluation"] == "injected"]
    assert set(inj["anomaly_type"]) == {"dead_region", "shift"}
    assert (inj["n_neg"] == ((held["label"] == "good") & (held["quality"] == "ok")).sum()).all()
    assert real["auc"] == pytest.approx(1.0)
    metrics = result["metrics"].load()
    assert metrics["best_strategy"] in DETECTION["strategies"]
    assert set(metrics["strategies"]["reference"]["injected"]) == {"dead_region", "shift"}
    runs = result["flagged_per_run"].load()
    assert set(runs["run"]) == {1, 2, 3, 4, 5}
    me_scores = as_frame(result["me_scores"].load())
    assert {"run", "lumi", "strategy", "me", "score", "raw_chi2"} <= set(me_scores.columns)


def test_strategy_parameters_are_validated():
    parse = DataScienceParams.model_validate
    with pytest.raises(
        ValueError,
        match=r"unknown key\(s\) 'active_strategis' \(did you mean 'active_strategies'\?\)",
    ):
        parse({**DETECTION, "active_strategis": ["reference"]})
    with pytest.raises(ValueError, match=r"active_strategies \['nope'\] not among"):
        parse({**DETECTION, "active_strategies": ["nope"]})
    bad = {"strategies": {"s": {"detectors": [{"kind": "pca", "params": {"k": 1}}]}}}
    with pytest.raises(ValueError, match=r"strategy 's' detector 0: .*unknown parameter"):
        parse(bad)
    with pytest.raises(ValueError, match="strategy 's': no detectors"):
        parse({"strategies": {"s": {"detectors": []}}})
    with pytest.raises(ValueError, match="no strategy is declared"):
        parse({}).strategy_specs()


def test_run_verdicts_and_ml_certification(result):
    runs = result["run_predictions"].load()
    assert {"run", "strategy", "run_score", "n_ls", "n_flagged", "verdict", "run_threshold"} <= set(
        runs.columns
    )
    assert len(runs) == 5 * len(DETECTION["strategies"])
    ref = runs[runs["strategy"] == "reference"].set_index("run")
    assert ref.loc[4, "verdict"] in ("partially_bad", "bad") and ref.loc[4, "n_flagged"] >= 3
    assert ref.loc[[1, 2, 3], "verdict"].eq("good").sum() >= 2
    cert = result["ml_certification"].load()
    assert set(cert) == set(DETECTION["strategies"])
    lumis = {lumi for a, b in cert["reference"].get("4", []) for lumi in range(a, b + 1)}
    assert not lumis & {5, 6, 7}  # the flagged LS are not certified good
    assert "1" in cert["reference"]


def test_best_strategy_from_injections_when_training_runs_have_no_bad_labels(result):
    metrics = result["metrics"].load()
    assert "injected" in metrics["best_strategy_criterion"]
    table = result["strategy_metrics"].load()
    assert "real_train_oof" not in set(table["evaluation"])  # runs 1-3 are all golden


def _run(hist, split, golden, dcs, science=None):
    catalog = DataCatalog(
        {
            "histograms": MemoryDataset(hist),
            "golden_json": MemoryDataset(golden),
            "dcs_json": MemoryDataset(dcs),
            "split_definition": MemoryDataset({}),
            "bad_runs": MemoryDataset([]),
            "me_group_fits": MemoryDataset({}),  # no ME group fan-out
            "params:data_processing": MemoryDataset(
                DataProcessingParams.model_validate({**PROCESSING, "split": split})
            ),
            "params:data_science": MemoryDataset(
                DataScienceParams.model_validate(science or DETECTION)
            ),
        }
    )
    pipeline = processing() + detection()
    for name in pipeline.all_outputs():
        catalog[name] = Kept(copy_mode="assign")
    SequentialRunner().run(pipeline, catalog)
    return catalog


def test_one_training_run_and_a_single_ls_run(caplog):
    """Documented behaviour: LS-block folds (logged), run-level term vs the one run (logged)."""
    hist = make_histograms({1: 30, 4: 12, 6: 1}, seed=5)
    for run, lumi in BAD_LS:
        hist = replace(hist, run, lumi, ME_1D, np.roll(get(hist, run, lumi, ME_1D), 3))
    golden = {"1": [[1, 30]], "4": [[1, 4], [8, 12]], "6": [[1, 1]]}
    dcs = {"1": [[1, 30]], "4": [[1, 12]], "6": [[1, 1]]}
    split = {"name": "t", "train": {"runs": [1]}, "apply": {"runs": [4, 6]}}
    with caplog.at_level("WARNING"):
        out = _run(hist, split, golden, dcs)
    assert "blocks of consecutive LS" in caplog.text
    assert "one training run" in caplog.text
    p = as_frame(out["lumisection_predictions"].load())
    single = p[(p["run"] == 6)]
    assert np.isfinite(single["score"]).all()  # the within-run term is neutral, not NaN
    runs = out["run_predictions"].load()
    assert set(runs.loc[runs["strategy"] == "two_level", "run"]) == {1, 4, 6}


def test_labelled_training_runs_choose_the_best_strategy_out_of_fold():
    """Bad LS in training runs get out-of-fold scores and decide the best strategy."""
    hist = make_histograms({1: 25, 2: 25, 3: 25, 4: 12, 5: 12, 7: 25}, seed=3)
    bad = [(7, lumi) for lumi in range(5, 12)]
    for run, lumi in BAD_LS + bad:
        hist = replace(hist, run, lumi, ME_1D, np.roll(get(hist, run, lumi, ME_1D), 3))
    golden = {"1": [[1, 25]], "2": [[1, 25]], "3": [[1, 25]], "4": [[1, 4], [8, 12]],
              "5": [[1, 12]], "7": [[1, 4], [12, 25]]}  # fmt: skip
    dcs = {str(r): [[1, 25]] for r in (1, 2, 3, 4, 5, 7)}
    split = {"name": "t", "train": {"runs": [1, 2, 3, 7]}, "apply": {"runs": [4, 5]}}
    science = {**DETECTION, "injection": {"enabled": False}}
    out = _run(hist, split, golden, dcs, science)
    p = as_frame(out["lumisection_predictions"].load())
    train_bad = p[(p["run"] == 7) & (p["label"] == "bad") & (p["strategy"] == "reference")]
    assert len(train_bad) == 7 and np.isfinite(train_bad["score"]).all()
    model = out["strategy_models"].load()["reference"]
    assert len(model.oof_keys) == 100 and model.oof_good.sum() == 93  # the 7 bad LS: scored only
    metrics = out["metrics"].load()
    assert "real labels of the training runs" in metrics["best_strategy_criterion"]
    oof = metrics["strategies"][metrics["best_strategy"]]["real_train_oof"]
    best_auc = oof["auc"]
    assert all(best_auc >= m["real_train_oof"]["auc"] for m in metrics["strategies"].values())
