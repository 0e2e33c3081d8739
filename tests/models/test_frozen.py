"""The stable model format: every detector family round-trips exactly, old fixtures still load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dqm_playground_ds.models import (
    FORMAT_VERSION,
    ModelFormatError,
    freeze,
    load_model,
    read_meta,
    save_model,
)
from dqm_playground_ds.pipelines.data_processing import nodes as proc
from dqm_playground_ds.pipelines.data_processing.params import DataProcessingParams
from dqm_playground_ds.pipelines.data_science import nodes as sci
from dqm_playground_ds.pipelines.data_science.params import DataScienceParams
from tests.detection_data import golden_for, make_histograms

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
PROCESSING = {
    "split": {"name": "t", "train": {"runs": [1, 2, 3]}, "apply": {"runs": [4]}},
    "labels": {"use_dcs": False},
    "quality": {"min_entries": 10},
    "preprocessing": {"default": {"2d": {"rebin": [2, 2]}}, "fine": {}},
}


def _strategy(detectors, method="max_z", preprocessing="default"):
    return {
        "preprocessing": preprocessing,
        "detectors": detectors,
        "combination": {"method": method},
    }


STRATEGIES = {
    "knn_lof_kde": _strategy(
        [
            {"name": "knn", "kind": "knn", "params": {"n_neighbors": 4}},
            {"name": "lof", "kind": "lof", "params": {"n_neighbors": 5, "n_components": 3}},
        ],
        "kde",
    ),
    "recon_gmm": _strategy(
        [
            {"name": "pca", "kind": "pca", "params": {"n_components": 2}},
            {"name": "nmf", "kind": "nmf", "params": {"n_components": 2, "max_iter": 50}},
            {
                "name": "ae",
                "kind": "autoencoder",
                "params": {"hidden_layer_sizes": [6, 2, 6], "max_iter": 20},
            },
        ],
        "gmm",
    ),
    "forest": _strategy(  # format 2: the trees as flat arrays (models/forest.py)
        [
            {"name": "if", "kind": "isolation_forest", "params": {"n_estimators": 10}},
            {
                "name": "if_pca",
                "kind": "isolation_forest",
                "params": {"n_estimators": 10, "n_components": 3},
            },
        ]
    ),
    "run_aware_mean": _strategy(
        [
            {"name": "run_knn", "kind": "run_knn", "params": {"n_neighbors": 2}},
            {"name": "within", "kind": "within_run", "params": {"statistic": "scan"}},
            {"name": "chi2", "kind": "reference_test", "params": {"statistic": "chi2"}},
            {"name": "integral", "kind": "integral_ratio"},
        ],
        "mean_z",
        "fine",
    ),
}


@pytest.fixture(scope="module")
def trained():
    hist = make_histograms({1: 10, 2: 10, 3: 10, 4: 8}, entries=2000.0, seed=5, run_scale=0.02)
    pp = DataProcessingParams.model_validate(PROCESSING)
    labelled = proc.label_lumisections_node(hist, golden_for(hist), {}, pp, [])
    split = proc.assign_split(labelled, {}, pp)
    pre = proc.fit_preprocessor(hist, split, pp)
    features, ls = proc.build_features(hist, split, pre, pp)
    params = {"seed": 3, "calibration_folds": 2, "strategies": STRATEGIES}
    typed = DataScienceParams.model_validate(params)
    models = sci.train_strategies(features, ls, typed)
    preds, _ = sci.score_lumisections(models, features, ls, typed)
    return hist, pre, features, ls, models, preds, params


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_detector_family_round_trips_to_identical_scores(trained, tmp_path, name):
    hist, pre, features, ls, models, preds, params = trained
    save_model(freeze(name, models[name], pre, preds, params), tmp_path / name)
    with np.load(tmp_path / name / "arrays.npz", allow_pickle=False) as z:  # no pickle inside
        assert all(z[k].dtype != object for k in z.files)
    model = load_model(tmp_path / name)
    variant = model.strategy.spec.preprocessing
    fresh = model.preprocessor.transform(hist, ls[["run", "lumi"]])[variant]
    got = model.strategy.anomaly_scores(fresh, use_oof=False)
    want = models[name].anomaly_scores(features[variant], use_oof=False)
    np.testing.assert_array_equal(got.score, want.score)
    np.testing.assert_array_equal(got.raw, want.raw)
    assert model.meta["training"]["runs"] == [1, 2, 3]
    assert model.meta["threshold"] == models[name].threshold
    train = preds[(preds["strategy"] == name) & (preds["split"] == "train")]
    np.testing.assert_array_equal(model.training_predictions["score"], train["score"])
    assert list(model.training_predictions["quality"]) == list(train["quality"])


def test_what_the_format_cannot_hold_is_refused_with_its_name(trained, tmp_path):
    _, pre, _, _, models, preds, params = trained
    model = freeze("forest", models["forest"], pre, preds, params)
    model.strategy.detector_sets[0].models_[pre.mes_[0]].forest_ = object()
    with pytest.raises(ModelFormatError, match=r"builtins\.object has no codec"):
        save_model(model, tmp_path / "f")
    assert not (tmp_path / "f" / "model.json").exists()


def _fixture_folders() -> list[Path]:
    return sorted(p.parent for p in FIXTURES.glob("v*/*/model.json"))


def test_there_is_a_fixture_of_the_current_format_version():
    versions = {read_meta(p)["format_version"] for p in _fixture_folders()}
    assert FORMAT_VERSION in versions and min(versions) == 1


@pytest.mark.parametrize("folder", _fixture_folders(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_models_written_by_earlier_versions_load_and_give_their_scores(folder):
    model = load_model(folder)
    expected = json.loads((folder / "expected.json").read_text())
    hist = pd.read_parquet(folder / "inputs.parquet")
    keys = pd.DataFrame(expected["keys"], columns=["run", "lumi"])
    features = model.preprocessor.transform(hist, keys)[model.strategy.spec.preprocessing]
    score = model.strategy.anomaly_scores(features, use_oof=False).score
    np.testing.assert_allclose(score, expected["score"], rtol=1e-9, atol=1e-12)
    assert model.strategy.threshold == expected["threshold"]


def test_unreadable_models_are_refused_clearly(tmp_path):
    with pytest.raises(ModelFormatError, match=r"no model\.json"):
        load_model(tmp_path)
    folder = next(iter(_fixture_folders()))
    doc = json.loads((folder / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**doc, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(ModelFormatError, match=r"format_version .* unknown to this reader"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({**doc, "format": "something-else"}))
    with pytest.raises(ModelFormatError, match="format 'something-else'"):
        load_model(tmp_path)
