"""Playground datasets: histogram source, task split, upload (dry run and real) and token hiding."""

from __future__ import annotations

import json

import pytest
from kedro.io import DataCatalog, DatasetError

from dqm_playground_ds.datasets import HistogramSourceDataset
from dqm_playground_ds.datasets.playground import (
    PlaygroundSourceDataset,
    PlaygroundTaskDataset,
    PlaygroundUploadDataset,
)
from dqm_playground_ds.platform import build_payload
from tests.platform.helpers import (
    RUNS,
    TITLE_2D,
    TOKEN,
    make_predictions,
    make_table,
    start_extended,
    start_platform,
)

SECRET = "s3cret-token-value"
FAST = {"progress": False, "retries": 1, "backoff": 0.01}


@pytest.fixture(scope="module")
def platform():
    server = start_extended(make_table(n_ls=10))
    server.store.create_task(
        {
            "name": "pixel",
            "training_runs": list(RUNS[:2]),
            "testing_runs": [RUNS[2]],
            "training_lumisections": [],
            "testing_lumisections": [],
        }
    )
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _token(monkeypatch):
    monkeypatch.setenv("DQM_PLAYGROUND_TOKEN", TOKEN)


def test_source_dataset_from_catalog_config(platform, tmp_path):
    catalog = DataCatalog.from_config(
        {
            "raw_histogram_sources": {
                "type": "dqm_playground_ds.datasets.playground.PlaygroundSourceDataset",
                "base_url": platform.url,
                "titles": [TITLE_2D],
                "run_range": [RUNS[1], None],
                "cache_dir": str(tmp_path / "cache"),
                "client_args": FAST,
            }
        }
    )
    source = catalog.load("raw_histogram_sources")
    (item,) = source.items()
    table = source.read(item, None, False)
    assert len(table) == 2 * 10 and set(table["run"]) == {RUNS[1], RUNS[2]}


def test_token_is_never_shown(platform, monkeypatch):
    monkeypatch.delenv("DQM_PLAYGROUND_TOKEN")
    for ds in (
        PlaygroundSourceDataset(base_url=platform.url, credentials={"token": SECRET}),
        PlaygroundTaskDataset(task=1, base_url=platform.url, credentials={"token": SECRET}),
        PlaygroundUploadDataset(base_url=platform.url, credentials={"token": SECRET}),
    ):
        text = f"{ds!r} {ds._describe()} {ds}"
        assert SECRET not in text and "***" in text


def test_wrong_token_is_a_bad_item_not_a_leak(platform, caplog):
    ds = PlaygroundSourceDataset(
        base_url=platform.url, credentials={"token": SECRET}, client_args=FAST
    )
    source = ds.load()
    with pytest.raises(Exception, match="refused") as err:
        source.describe(source.items()[0])
    assert SECRET not in str(err.value) and SECRET not in caplog.text


def test_base_url_from_the_environment(monkeypatch):
    monkeypatch.setenv("DQM_PLAYGROUND_URL", "http://127.0.0.1:9")
    assert PlaygroundSourceDataset()._describe()["base_url"] == "http://127.0.0.1:9"
    monkeypatch.delenv("DQM_PLAYGROUND_URL")
    assert PlaygroundSourceDataset()._describe()["base_url"] == "http://127.0.0.1:8000"


def test_bad_source_configuration_fails_early():
    with pytest.raises(DatasetError, match="dims"):
        PlaygroundSourceDataset(dims=[3])
    with pytest.raises(DatasetError, match="on_bad_record"):
        PlaygroundSourceDataset(on_bad_record="maybe")


def test_source_dataset_is_the_generic_source_of_kind_playground_api(platform):
    """One client set-up: the same source as ``HistogramSourceDataset(kind="playground_api")``."""
    config = {"base_url": platform.url, "titles": [TITLE_2D], "run_range": [RUNS[1], None]}
    mine = PlaygroundSourceDataset(**config)
    generic = HistogramSourceDataset(kind="playground_api", **config).load()
    assert isinstance(mine, HistogramSourceDataset) and mine.exists()  # no request asked
    assert mine.load().items() == generic.items()
    assert mine.load().client.base_url == generic.client.base_url
    with pytest.raises(DatasetError, match="serves kind 'playground_api', got 'dials'"):
        PlaygroundSourceDataset(kind="dials")


def test_task_dataset_loads_the_split(platform):
    ds = PlaygroundTaskDataset(task="pixel", base_url=platform.url, client_args=FAST)
    assert ds.load() == {
        "name": "pixel",
        "train": {"runs": list(RUNS[:2])},
        "apply": {"runs": [RUNS[2]]},
    }
    with pytest.raises(DatasetError, match="nope"):
        PlaygroundTaskDataset(task="nope", base_url=platform.url, client_args=FAST).load()


def test_dry_run_writes_the_payload_and_sends_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("DQM_PLAYGROUND_TOKEN")
    ds = PlaygroundUploadDataset(path=str(tmp_path), base_url="http://127.0.0.1:9")
    payload = build_payload(make_predictions(), task="pixel", dry_run=True)
    ds.save(payload)
    assert ds.exists() and ds.load() == payload
    (log,) = [json.loads(x) for x in (tmp_path / "uploads.jsonl").read_text().splitlines()]
    assert log["outcome"] == "dry-run" and log["n_predictions"] == 40
    assert not (tmp_path / "journal.jsonl").exists()


def test_upload_sends_keeps_a_copy_and_resumes(platform, tmp_path):
    ds = PlaygroundUploadDataset(path=str(tmp_path), base_url=platform.url, client_args=FAST)
    payload = build_payload(make_predictions(n_ls=10), task="pixel", dry_run=False, batch_size=4)
    ds.save(payload)
    ds.save(payload)  # a re-run: every batch already acknowledged
    logs = [json.loads(x) for x in (tmp_path / "uploads.jsonl").read_text().splitlines()]
    assert [x["outcome"] for x in logs] == ["sent", "sent"]
    assert logs[0]["created"] == 10 and logs[1]["skipped"] == 3 and logs[1]["sent"] == 0
    assert len(list(tmp_path.glob("payload-*.json"))) == 1
    assert platform.store.scalar("SELECT COUNT(*) FROM predictions") == 10


def test_failed_upload_keeps_the_payload_and_says_so(platform, tmp_path, monkeypatch):
    monkeypatch.delenv("DQM_PLAYGROUND_TOKEN")
    ds = PlaygroundUploadDataset(path=str(tmp_path), base_url=platform.url, client_args=FAST)
    payload = build_payload(make_predictions(n_ls=2), task="pixel", dry_run=False)
    with pytest.raises(DatasetError, match="no token"):
        ds.save(payload)
    ds = PlaygroundUploadDataset(
        path=str(tmp_path), base_url=platform.url, credentials={"token": TOKEN}, client_args=FAST
    )
    with pytest.raises(DatasetError, match="no task"):
        ds.save(build_payload(make_predictions(n_ls=2), task=99, dry_run=False))
    assert len(list(tmp_path.glob("payload-*.json"))) == 2
    assert [
        json.loads(x)["outcome"] for x in (tmp_path / "uploads.jsonl").read_text().splitlines()
    ] == ["failed", "failed"]


def test_upload_refuses_what_is_not_a_payload(tmp_path):
    with pytest.raises(DatasetError, match="payload"):
        PlaygroundUploadDataset(path=str(tmp_path)).save({"predictions": []})
    with pytest.raises(DatasetError, match="no prediction upload"):
        PlaygroundUploadDataset(path=str(tmp_path)).load()


def test_the_deployed_platform_refuses_the_upload_and_the_payload_is_kept(tmp_path):
    server = start_platform(make_table(n_ls=2))  # no extension: the deployed behaviour
    try:
        server.store.create_task(
            {"name": "pixel", "training_runs": [RUNS[0]], "testing_runs": [RUNS[2]],
             "training_lumisections": [], "testing_lumisections": []}
        )  # fmt: skip
        ds = PlaygroundUploadDataset(path=str(tmp_path), base_url=server.url, client_args=FAST)
        payload = build_payload(make_predictions(n_ls=2), task="pixel", dry_run=False)
        with pytest.raises(DatasetError, match="refused before anything was written") as err:
            ds.save(payload)
        assert "cannot store predictions" in str(err.value)
        (kept,) = tmp_path.glob("payload-*.json")
        assert json.loads(kept.read_text()) == payload and kept.name in str(err.value)
        (log,) = [json.loads(x) for x in (tmp_path / "uploads.jsonl").read_text().splitlines()]
        assert log["outcome"] == "refused"
        assert server.store.scalar("SELECT COUNT(*) FROM strategies") == 0
        assert not [k for k in server.requests if k.startswith("POST")]
    finally:
        server.stop()
