"""prediction_upload: the node, the pipeline run (dry run and real) and its configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from dqm_playground_ds.datasets.playground import PlaygroundUploadDataset
from dqm_playground_ds.pipelines.prediction_upload import create_pipeline
from dqm_playground_ds.pipelines.prediction_upload.nodes import build_prediction_payload
from dqm_playground_ds.pipelines.prediction_upload.params import UploadParams
from tests.platform.helpers import (
    RUNS,
    TOKEN,
    make_predictions,
    make_table,
    start_extended,
    start_platform,
)

CONF = Path(__file__).resolve().parents[3] / "conf"
BASE_PARAMS = {
    "dry_run": True,
    "task": None,
    "strategies": None,
    "splits": None,
    "only_anomalous": False,
    "max_top_mes": 5,
    "batch_size": 500,
}


def run(params: dict, path: Path, **dataset_args) -> None:
    catalog = DataCatalog(
        {
            "lumisection_predictions": MemoryDataset(make_predictions(strategies=("ae", "pca"))),
            "params:prediction_upload": MemoryDataset(UploadParams.model_validate(params)),
            "prediction_payload": PlaygroundUploadDataset(path=str(path), **dataset_args),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)


def test_node_builds_the_payload():
    params = UploadParams.model_validate({**BASE_PARAMS, "splits": ["apply"]})
    payload = build_prediction_payload(make_predictions(), params)
    assert payload["dry_run"] is True and payload["n_predictions"] == 40


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dry_run": False}, "task is not set"),
        ({"colour": 1}, r"unknown key\(s\) 'colour'"),
        ({"dry_run": "no"}, r"dry_run\s+Input should be a valid boolean"),
        ({"batch_size": 0}, r"batch_size\s+Input should be greater than or equal to 1"),
    ],
)
def test_bad_parameters_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        UploadParams.model_validate({**BASE_PARAMS, **change})


def test_pipeline_shape():
    pipe = create_pipeline()
    assert [n.name for n in pipe.nodes] == ["build_prediction_payload"]
    assert pipe.inputs() == {"lumisection_predictions", "params:prediction_upload"}
    assert pipe.outputs() == {"prediction_payload"}


def test_dry_run_writes_the_payload_only(tmp_path, monkeypatch):
    monkeypatch.delenv("DQM_PLAYGROUND_TOKEN", raising=False)
    run(BASE_PARAMS, tmp_path, base_url="http://127.0.0.1:9")  # nothing listens there
    (payload_file,) = tmp_path.glob("payload-*.json")
    payload = json.loads(payload_file.read_text())
    assert payload["n_predictions"] == 80 and payload["strategies"] == ["ae", "pca"]
    assert json.loads((tmp_path / "uploads.jsonl").read_text())["outcome"] == "dry-run"


def test_upload_to_the_local_platform(tmp_path, monkeypatch):
    monkeypatch.setenv("DQM_PLAYGROUND_TOKEN", TOKEN)
    server = start_extended(make_table(n_ls=2))
    try:
        server.store.create_task(
            {
                "name": "pixel",
                "training_runs": [RUNS[0]],
                "testing_runs": [RUNS[2]],
                "training_lumisections": [],
                "testing_lumisections": [],
            }
        )
        params = {**BASE_PARAMS, "dry_run": False, "task": "pixel", "batch_size": 30}
        client_args = {"progress": False}
        run(params, tmp_path, base_url=server.url, client_args=client_args)
        run(params, tmp_path, base_url=server.url, client_args=client_args)  # idempotent
        assert server.store.scalar("SELECT COUNT(*) FROM predictions") == 80
        models = [r[0] for r in server.store.query("SELECT model FROM strategies ORDER BY model")]
        assert models == ["ae", "pca"]
    finally:
        server.stop()


def test_the_deployed_platform_stops_the_run_before_anything_is_written(tmp_path, monkeypatch):
    """The issue's failure: the unchanged playground run created 8 strategies, then failed."""
    monkeypatch.setenv("DQM_PLAYGROUND_TOKEN", TOKEN)
    server = start_platform(make_table(n_ls=2))  # no extension: as deployed
    try:
        server.store.create_task(
            {"name": "pixel", "training_runs": [RUNS[0]], "testing_runs": [RUNS[2]],
             "training_lumisections": [], "testing_lumisections": []}
        )  # fmt: skip
        params = {**BASE_PARAMS, "dry_run": False, "task": "pixel"}
        with pytest.raises(Exception, match="cannot store predictions") as err:
            run(params, tmp_path, base_url=server.url, client_args={"progress": False})
        assert "payload is kept" in str(err.value)
        assert not [k for k in server.requests if k.startswith("POST")]
        assert server.store.scalar("SELECT COUNT(*) FROM strategies") == 0
    finally:
        server.stop()
    (payload_file,) = tmp_path.glob("payload-*.json")
    assert json.loads(payload_file.read_text())["n_predictions"] == 80
    assert json.loads((tmp_path / "uploads.jsonl").read_text())["outcome"] == "refused"


def test_configuration_dry_run_in_base_sends_in_playground():
    def params(env: str) -> dict:
        loader = OmegaConfigLoader(
            str(CONF), base_env="base", default_run_env=env, merge_strategy={"parameters": "soft"}
        )
        return loader["parameters"]

    base = params("base")["prediction_upload"]
    assert base == BASE_PARAMS
    playground = params("playground")
    assert playground["prediction_upload"]["dry_run"] is False
    assert playground["prediction_upload"]["task"] == "sample-2018A"
    assert playground["prediction_upload"]["splits"] == ["apply"]
    assert playground["prediction_upload"]["batch_size"] == 500  # soft merge keeps base keys
    assert playground["data_extraction"]["workers"] == 1


def test_playground_catalog_builds(monkeypatch):
    monkeypatch.setenv("DQM_PLAYGROUND_URL", "http://127.0.0.1:9")
    loader = OmegaConfigLoader(str(CONF), base_env="base", default_run_env="playground")
    entries = loader["catalog"]
    names = ("raw_histogram_sources", "histogram_store", "split_definition", "prediction_payload")
    mine = {k: entries[k] for k in names}
    catalog = DataCatalog.from_config(mine)
    assert type(catalog["raw_histogram_sources"]).__name__ == "PlaygroundSourceDataset"
    assert type(catalog["split_definition"]).__name__ == "PlaygroundTaskDataset"
    assert type(catalog["prediction_payload"]).__name__ == "PlaygroundUploadDataset"
    source = catalog.load("raw_histogram_sources")
    assert source.client.base_url == "http://127.0.0.1:9/"
    assert catalog.load("histogram_store").url == "data/02_intermediate/playground_partitions"
