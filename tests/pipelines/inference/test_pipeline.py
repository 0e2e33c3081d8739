"""Train on the bundled sample, freeze, and apply the frozen model to new runs with Kedro's runner.

A new run that is a copy of a held-out run must get exactly the scores, flags, run verdict and
certification the training run gave the original; a second application scores nothing; a model
is refused on data with other MEs or binnings.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from dqm_playground_ds.datasets import ParquetTableDataset
from dqm_playground_ds.datasets.batches import BatchPartitionsDataset
from dqm_playground_ds.datasets.frozen_models import FrozenModelsDataset
from dqm_playground_ds.models import ModelMismatchError
from dqm_playground_ds.pipelines import inference, production
from dqm_playground_ds.pipelines.data_processing.params import DataProcessingParams
from dqm_playground_ds.pipelines.inference import create_pipeline
from dqm_playground_ds.pipelines.model_export.nodes import freeze_models
from tests.detection_data import golden_for
from tests.sample_training import ROOT, labels, train

HELD_RUN, COPY_RUN = 315322, 999322
STRATEGIES = ["two_level", "reference"]


@pytest.fixture(scope="module")
def trained():
    tr = train(STRATEGIES)
    if tr.histograms.empty:
        pytest.skip("bundled sample not generated")
    return tr


@pytest.fixture(scope="module")
def store(trained, tmp_path_factory):
    path = tmp_path_factory.mktemp("frozen")
    frozen = freeze_models(trained.models, trained.preprocessor, trained.predictions, {},
                           trained.science_params)  # fmt: skip
    FrozenModelsDataset(path=str(path)).save(frozen)
    return path


def _copy_of_run(hist: pd.DataFrame, run: int, new_run: int) -> pd.DataFrame:
    out = hist[hist["run"] == run].copy()
    out["run"] = new_run
    return out.reset_index(drop=True)


def _catalog(store, out, histograms, trained, model) -> DataCatalog:
    golden, dcs = labels()

    def batches(name: str) -> BatchPartitionsDataset:
        return BatchPartitionsDataset(path=str(out / name), filename_suffix=".parquet",
                                      dataset={"type": ParquetTableDataset})  # fmt: skip

    return DataCatalog(
        {
            "frozen_models": FrozenModelsDataset(path=str(store)),
            "histograms": MemoryDataset(histograms),
            "golden_json": MemoryDataset(golden),
            "dcs_json": MemoryDataset(dcs),
            "bad_runs": MemoryDataset([]),
            "params:inference": MemoryDataset({"model": model, "skip_training_runs": True}),
            "params:data_processing": MemoryDataset(trained.processing_params),
            "inference_scored_runs": batches("scored_runs"),
            "inference_scored_runs_batch": batches("scored_runs"),
            "inference_lumisection_predictions": batches("ls"),
            "inference_lumisection_predictions_previous": batches("ls"),
            "inference_run_predictions": batches("runs"),
            "inference_run_predictions_previous": batches("runs"),
            "inference_ml_certification": MemoryDataset(),
        }
    )


def _run(catalog: DataCatalog) -> DataCatalog:
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_copy_of_a_held_out_run_gets_the_training_runs_predictions(
    trained, store, tmp_path, strategy
):
    new = _copy_of_run(trained.histograms, HELD_RUN, COPY_RUN)
    # the training runs are in the data too: they are skipped, not re-scored
    data = pd.concat([trained.histograms[trained.histograms["run"] == 315257], new])
    catalog = _run(_catalog(store, tmp_path, data, trained, strategy))
    got = pd.concat([f() for f in catalog["inference_lumisection_predictions"].load().values()])
    assert set(got["run"]) == {COPY_RUN}
    want = trained.predictions[
        (trained.predictions["strategy"] == strategy) & (trained.predictions["run"] == HELD_RUN)
    ]
    got, want = got.sort_values("lumi"), want.sort_values("lumi")
    assert len(got) == len(want) > 0
    # equal to rounding: the kNN's float32 PCA projection and scikit-learn's brute-force distances
    # are matrix products whose rounding depends on how many LS are scored together (~1e-8)
    np.testing.assert_allclose(got["score"].to_numpy(), want["score"].to_numpy(), rtol=1e-6)
    assert (got["is_anomalous"].to_numpy() == want["is_anomalous"].to_numpy()).all()
    assert got["threshold"].iloc[0] == want["threshold"].iloc[0]
    assert [list(t) for t in got["top_mes"]] == [list(t) for t in want["top_mes"]]
    assert list(got["quality"]) == list(want["quality"])

    runs = pd.concat([f() for f in catalog["inference_run_predictions"].load().values()])
    ref = trained.run_predictions
    ref = ref[(ref["strategy"] == strategy) & (ref["run"] == HELD_RUN)].iloc[0]
    row = runs.iloc[0]
    assert (row["verdict"], row["n_flagged"], row["n_ls"]) == (
        ref["verdict"], ref["n_flagged"], ref["n_ls"])  # fmt: skip
    assert row["run_threshold"] == ref["run_threshold"]  # the training runs' calibration
    assert row["run_score"] == pytest.approx(ref["run_score"], rel=1e-6)
    cert = catalog["inference_ml_certification"].load()[strategy]
    assert cert == {str(COPY_RUN): trained.certification[strategy][str(HELD_RUN)]}


def test_a_second_application_scores_nothing_new(trained, store, tmp_path):
    new = _copy_of_run(trained.histograms, HELD_RUN, COPY_RUN)
    _run(_catalog(store, tmp_path, new, trained, "two_level"))
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.parquet"))
    assert len(files) == 3  # one batch: LS, runs, ledger
    more = pd.concat([new, _copy_of_run(trained.histograms, 315420, 999420)])
    _run(_catalog(store, tmp_path, more, trained, "two_level"))
    batches = sorted((tmp_path / "ls").glob("*.parquet"))
    assert len(batches) == 2
    assert set(pd.read_parquet(batches[-1])["run"]) == {999420}  # only the new run is scored
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.parquet")}
    catalog = _run(_catalog(store, tmp_path, more, trained, "two_level"))
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.parquet")} == before
    ledger = pd.concat([f() for f in catalog["inference_scored_runs"].load().values()])
    assert sorted(ledger["run"]) == [COPY_RUN, 999420]
    assert len(list(tmp_path.rglob("*.parquet"))) == 6
    cert = catalog["inference_ml_certification"].load()["two_level"]
    assert set(cert) <= {str(COPY_RUN), "999420"} and str(COPY_RUN) in cert


def test_a_model_is_refused_on_other_mes_or_binnings(trained, store, tmp_path):
    new = _copy_of_run(trained.histograms, HELD_RUN, COPY_RUN)
    me = "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1"
    rebinned = new.copy()
    sel = rebinned["me"] == me
    rebinned.loc[sel, "data"] = pd.Series(
        [np.asarray(d).reshape(-1, 2).sum(axis=1) for d in rebinned.loc[sel, "data"]],
        index=rebinned.index[sel],
    )
    rebinned.loc[sel, "x_bins"] = 50
    with pytest.raises(
        ModelMismatchError, match=r"charge_PXLayer_1: the model expects 1D 100 bins"
    ):
        _run(_catalog(store, tmp_path, rebinned, trained, "two_level"))
    with pytest.raises(
        ModelMismatchError, match=r"absent from the new data: \['PixelPhase1/Tracks"
    ):
        _run(_catalog(store, tmp_path, new[new["me"] != me], trained, "two_level"))
    assert not list(tmp_path.rglob("*.parquet"))  # nothing written, nothing in the ledger


def _catalog_entries(env: str = "base") -> dict:
    entries: dict = {}
    for path in sorted((ROOT / "conf" / env).glob("catalog*.yml")):
        entries |= yaml.safe_load(path.read_text()) or {}
    return entries


@pytest.mark.parametrize("pipeline", ["inference", "production"])
def test_applying_a_model_reads_no_pickle(pipeline):
    """The frozen models are the source of truth: the pickles of a training run are its cache."""
    entries = _catalog_entries()
    inputs = {"inference": inference, "production": production}[pipeline].create_pipeline().inputs()
    datasets = sorted(i for i in inputs if not i.startswith("params:") and i != "parameters")
    assert "frozen_models" in datasets or pipeline == "production"
    for name in datasets:
        assert name in entries, f"{name} is not in conf/base"
        assert "pickle" not in str(entries[name]["type"]).lower(), (name, entries[name]["type"])
    assert "pickle" in entries["strategy_models"]["type"].lower()  # the test can fail


def test_a_model_written_by_format_1_applies_through_the_pipeline(tmp_path):
    """The v1 fixture (an earlier format version) given by path: its held-out run's scores."""
    folder = ROOT / "tests" / "fixtures" / "models" / "v1" / "mixed"
    hist = pd.read_parquet(folder / "inputs.parquet")
    expected = json.loads((folder / "expected.json").read_text())
    processing = {"labels": {"use_dcs": False}, "quality": {"min_entries": 10}}

    def batches(name: str) -> BatchPartitionsDataset:
        return BatchPartitionsDataset(path=str(tmp_path / name), filename_suffix=".parquet",
                                      dataset={"type": ParquetTableDataset})  # fmt: skip

    catalog = DataCatalog(
        {
            "frozen_models": FrozenModelsDataset(path=str(tmp_path / "frozen")),
            "histograms": MemoryDataset(hist),
            "golden_json": MemoryDataset(golden_for(hist)),
            "dcs_json": MemoryDataset({}),
            "bad_runs": MemoryDataset([]),
            "params:inference": MemoryDataset({"model": str(folder)}),
            "params:data_processing": MemoryDataset(
                DataProcessingParams.model_validate(processing)
            ),
            "inference_scored_runs": batches("scored"),
            "inference_scored_runs_batch": batches("scored"),
            "inference_lumisection_predictions": batches("ls"),
            "inference_lumisection_predictions_previous": batches("ls"),
            "inference_run_predictions": batches("runs"),
            "inference_run_predictions_previous": batches("runs"),
            "inference_ml_certification": MemoryDataset(),
        }
    )
    _run(catalog)
    got = pd.concat([f() for f in catalog["inference_lumisection_predictions"].load().values()])
    assert set(got["run"]) == {5}  # runs 1-4 trained the model
    keys = pd.DataFrame(expected["keys"], columns=["run", "lumi"])
    got = keys.merge(got, on=["run", "lumi"], how="left", validate="one_to_one")
    np.testing.assert_allclose(got["score"], expected["score"], rtol=1e-9, atol=1e-12)
    assert (got["threshold"] == expected["threshold"]).all()
