"""The bundled sample's known bad LS are found by the best strategy (reference_gmm), with the ME
that carries the injected problem on top, and the held-out good LS are rarely flagged.

Runs the real processing and detection pipelines (conf/base parameters, one strategy, no injection
benchmark: ~10 s) on the histograms read from the bundled DQMIO files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from dqm_playground_ds.frame_parts import as_frame
from dqm_playground_ds.pipelines.data_processing import create_pipeline as processing
from dqm_playground_ds.pipelines.data_processing.params import DataProcessingParams
from dqm_playground_ds.pipelines.data_science import create_pipeline as detection
from dqm_playground_ds.pipelines.data_science.params import DataScienceParams
from dqm_playground_ds.readers.dqmio import read_dqmio

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "01_raw"
STRATEGY = "reference_gmm"


def _params(name: str) -> dict:
    text = (ROOT / "conf" / "base" / f"parameters_{name}.yml").read_text()
    return yaml.safe_load(text)[name]


@pytest.fixture(scope="module")
def predictions() -> pd.DataFrame:
    files = sorted((RAW / "dqmio").glob("*.root"))
    if not files:
        pytest.skip("bundled sample not generated")
    hist = pd.concat([read_dqmio(f) for f in files], ignore_index=True)
    science = {**_params("data_science"), "active_strategies": [STRATEGY]}
    science["injection"] = {"enabled": False}
    catalog = DataCatalog(
        {
            "histograms": MemoryDataset(hist),
            "golden_json": MemoryDataset(json.loads((RAW / "labels" / "golden.json").read_text())),
            "dcs_json": MemoryDataset(json.loads((RAW / "labels" / "dcs_on.json").read_text())),
            "split_definition": MemoryDataset({}),
            "bad_runs": MemoryDataset([]),
            "me_group_fits": MemoryDataset({}),  # no ME group fan-out
            "params:data_processing": MemoryDataset(
                DataProcessingParams.model_validate(_params("data_processing"))
            ),
            "params:data_science": MemoryDataset(DataScienceParams.model_validate(science)),
        }
    )
    pipeline = (processing() + detection()).only_nodes("label_lumisections", "assign_split",
        "fit_preprocessor", "build_features", "train_strategies", "score_lumisections")  # fmt: skip
    out = SequentialRunner().run(pipeline, catalog)
    return as_frame(out["lumisection_predictions"].load())


def _problems() -> list[dict]:
    return json.loads((RAW / "injected_problems.json").read_text())


def test_every_known_bad_ls_of_the_held_out_runs_is_flagged_with_its_me_on_top(predictions):
    p = predictions.set_index(["run", "lumi"])
    held_runs = {315322, 315420}
    checked = 0
    for problem in _problems():
        if problem["run"] not in held_runs:
            continue
        first, last = problem["lumis"]
        for lumi in range(first, last + 1):
            row = p.loc[(problem["run"], lumi)]
            assert row["is_anomalous"], (problem["run"], lumi, problem["kind"])
            if problem["me"] != "*":
                assert row["top_mes"][0] == problem["me"], (problem["run"], lumi)
            checked += 1
    assert checked == 4 + 15 + 14 + 12 + 8 + 3 + 6 + 8 + 8  # every problem LS of both runs


def test_held_out_good_ls_are_rarely_flagged_and_bad_ones_rank_first(predictions):
    held = predictions[predictions["split"] == "apply"]
    good = held[held["label"] == "good"]
    bad = held[held["label"] == "bad"]
    assert len(good) == 151 and len(bad) == 71
    # the threshold targets 1 % on out-of-fold training LS; held-out runs have their own
    # calibration, so allow a few percent but not the 8 % of a run-blind reference
    assert good["is_anomalous"].mean() <= 0.04
    assert bad["score"].min() > good["score"].max()  # AUC 1 on the real labels
