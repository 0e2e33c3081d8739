"""Prediction upload: the payload, strategies, batches, idempotency and resume after interruption."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dqm_playground_ds.platform import (
    PAYLOAD_SCHEMA,
    CapabilityError,
    PayloadError,
    PlaygroundError,
    RetryError,
    UploadJournal,
    build_payload,
)
from dqm_playground_ds.platform.tasks import split_to_task
from dqm_playground_ds.platform.upload import batch_id, make_batches
from tests.platform.helpers import RUNS, TITLE_2D, client_for, make_predictions

SPLIT = {"name": "pixel", "train": {"runs": list(RUNS[:2])}, "apply": {"runs": [RUNS[2]]}}


@pytest.fixture
def task_id(extended_platform):
    with client_for(extended_platform) as c:
        return c.create_task(split_to_task(SPLIT))["id"]


def server_predictions(platform) -> list[tuple]:
    return platform.store.query(
        "SELECT key, strategy, run, lumisection, score FROM predictions ORDER BY key"
    )


def test_payload_from_a_predictions_table():
    preds = make_predictions(strategies=("ae", "pca"), n_ls=3)
    preds.loc[0, "score"] = np.nan
    payload = build_payload(preds, task="pixel", batch_size=2, max_top_mes=1)
    assert payload["schema"] == PAYLOAD_SCHEMA and payload["dry_run"] is True
    assert payload["n_predictions"] == 6 and payload["strategies"] == ["ae", "pca"]
    first = payload["predictions"][0]
    assert first == {
        "strategy": "ae",
        "run": RUNS[2],
        "lumisection": 1,
        "score": None,
        "threshold": 0.8,
        "is_anomalous": False,
        "top_mes": [TITLE_2D],
        "label": "unknown",
        "split": "apply",
    }
    json.dumps(payload, allow_nan=False)  # strict JSON: no NaN, no numpy types
    only = build_payload(preds, strategies=["pca"], only_anomalous=False, splits=["apply"])
    assert {p["strategy"] for p in only["predictions"]} == {"pca"}


def test_payload_refuses_bad_tables():
    preds = make_predictions(n_ls=3)
    with pytest.raises(PayloadError, match="lacks column"):
        build_payload(preds.drop(columns=["score"]))
    with pytest.raises(PayloadError, match="repeat"):
        build_payload(pd.concat([preds, preds.iloc[:1]]))
    with pytest.raises(PayloadError, match="batch_size"):
        build_payload(preds, batch_size=0)


def test_batches_are_deterministic():
    items = build_payload(make_predictions(n_ls=5))["predictions"]
    a = make_batches(items, 1, 2)
    b = make_batches(list(items), 1, 2)
    assert [x[0] for x in a] == [x[0] for x in b] and len(a) == 3
    assert a[0][1][0]["key"] == f"1/ae/{RUNS[2]}/1"
    assert batch_id(1, a[0][1]) != batch_id(2, a[0][1])


def test_upload_creates_strategies_and_sends_batches(extended_platform, task_id, tmp_path):
    payload = build_payload(make_predictions(strategies=("ae", "pca")), task="pixel", batch_size=15)
    with client_for(extended_platform) as c:
        report = c.upload_predictions(payload, journal=tmp_path / "journal.jsonl")
        assert report.strategies_created == ["ae", "pca"] and report.task == task_id
        assert report.n_batches == report.sent == 6 and report.created == 80
        assert sorted(s["model"] for s in c.strategies()) == ["ae", "pca"]
        listed = c.predictions()
    assert len(listed) == 80 and len(server_predictions(extended_platform)) == 80
    assert {p["task"] for p in listed} == {task_id}


def test_reupload_duplicates_nothing(extended_platform, task_id, tmp_path):
    payload = build_payload(make_predictions(), task=task_id, batch_size=10)
    with client_for(extended_platform) as c:
        c.upload_predictions(payload, journal=tmp_path / "j.jsonl")
        before = server_predictions(extended_platform)
        # same journal, and the server holds every batch: nothing is sent
        posts = extended_platform.requests["POST /api/predictions/"]
        again = c.upload_predictions(payload, journal=tmp_path / "j.jsonl")
        assert again.skipped == 4 and again.sent == 0
        # journal lost: the server says it holds the batches (by batch id): nothing is sent
        fresh = c.upload_predictions(payload, journal=tmp_path / "other.jsonl")
        assert fresh.on_server == 4 and fresh.sent == 0
        assert extended_platform.requests["POST /api/predictions/"] == posts
        assert [s["model"] for s in c.strategies()] == ["ae"]  # looked up, never duplicated
        # changed scores update in place
        preds = make_predictions()
        preds["score"] += 0.01
        changed = c.upload_predictions(build_payload(preds, task=task_id, batch_size=10))
        assert changed.updated == 40
    after = server_predictions(extended_platform)
    assert len(after) == len(before) == 40
    assert [r[0] for r in after] == [r[0] for r in before]


def test_interrupted_upload_resumes_after_the_acknowledged_batches(
    extended_platform, task_id, tmp_path
):
    payload = build_payload(make_predictions(), task=task_id, batch_size=10)
    journal = tmp_path / "journal.jsonl"
    extended_platform.faults.update(
        paths="/api/predictions/", script=["ok", "ok", "ok", "503"]
    )  # batches GET, 2 POSTs
    with client_for(extended_platform, retries=0) as c, pytest.raises(RetryError):
        c.upload_predictions(payload, journal=journal)
    assert len(UploadJournal(journal).acknowledged(c.base_url)) == 2
    assert len(server_predictions(extended_platform)) == 20
    with client_for(extended_platform) as c:
        before = extended_platform.requests.get("POST /api/predictions/", 0)
        report = c.upload_predictions(payload, journal=journal)
    assert report.skipped == 2 and report.sent == 2 and report.created == 20
    assert extended_platform.requests["POST /api/predictions/"] - before == 2
    assert len(server_predictions(extended_platform)) == 40


def test_a_lost_acknowledgement_is_retried_without_duplicates(extended_platform, task_id):
    """``truncate`` processes the POST, then cuts the answer: the client retries, the server merges."""
    payload = build_payload(make_predictions(), task=task_id, batch_size=40)
    extended_platform.faults.update(paths="/api/predictions/", script=["ok", "truncate", "drop"])
    with client_for(extended_platform) as c:
        report = c.upload_predictions(payload)
    assert report.unchanged == 40 and report.created == 0  # the first, cut attempt created them
    assert len(server_predictions(extended_platform)) == 40


def test_upload_needs_a_known_task(extended_platform):
    with client_for(extended_platform) as c:
        with pytest.raises(PayloadError, match="names no task"):
            c.upload_predictions(build_payload(make_predictions(), task=None))
        with pytest.raises(PlaygroundError, match="no task 99"):
            c.upload_predictions(build_payload(make_predictions(), task=99))
        with pytest.raises(PlaygroundError, match="0 task"):
            c.upload_predictions(build_payload(make_predictions(), task="nope"))


def test_journal_survives_a_cut_last_line(tmp_path):
    path = tmp_path / "j.jsonl"
    journal = UploadJournal(path)
    journal.record({"target": "t", "batch": "a"})
    with path.open("a") as f:
        f.write('{"target": "t", "ba')
    assert journal.acknowledged("t") == {"a"}
    assert journal.acknowledged("other") == set()


def test_a_server_that_lost_the_batches_gets_them_again(extended_platform, task_id, tmp_path):
    """The journal is reconciled with the server: a restarted in-memory server lost everything."""
    payload = build_payload(make_predictions(), task=task_id, batch_size=10)
    journal = tmp_path / "j.jsonl"
    with client_for(extended_platform) as c:
        c.upload_predictions(payload, journal=journal)
    with extended_platform.store.lock:
        extended_platform.store.conn.execute(
            "DELETE FROM predictions WHERE run = ? AND lumisection <= 10", (RUNS[2],)
        )
    with client_for(extended_platform) as c:
        report = c.upload_predictions(payload, journal=journal)
    assert report.resent == 1 and report.skipped == 3 and report.created == 10
    assert len(server_predictions(extended_platform)) == 40


def test_the_deployed_platform_refuses_predictions_before_anything_is_written(deployed_platform):
    deployed_platform.store.create_task(
        {"name": "pixel", "training_runs": [RUNS[0]], "testing_runs": [RUNS[2]],
         "training_lumisections": [], "testing_lumisections": []}
    )  # fmt: skip
    payload = build_payload(make_predictions(strategies=("ae", "pca")), task="pixel")
    with (
        client_for(deployed_platform) as c,
        pytest.raises(CapabilityError, match="cannot store predictions") as err,
    ):
        c.upload_predictions(payload)
    assert "Nothing was sent and nothing was created" in str(err.value)
    assert "no score, threshold, verdict or lumisection" in str(err.value)
    requests = deployed_platform.requests
    assert not [k for k in requests if k.startswith("POST")]
    assert deployed_platform.store.scalar("SELECT COUNT(*) FROM strategies") == 0


def test_strategies_are_looked_up_and_a_lost_answer_is_not_a_duplicate(fresh_platform):
    """The server keeps duplicate names: a POST whose answer is cut is checked, not repeated."""
    fresh_platform.faults.update(paths="/api/strategies/", script=["ok", "truncate"])
    with client_for(fresh_platform) as c:
        record, created = c.ensure_strategy("ae")
        assert created and record["model"] == "ae"
        assert c.ensure_strategy("ae") == (record, False)
        with fresh_platform.store.lock:  # a duplicate someone else made: the oldest is used
            fresh_platform.store.conn.execute("INSERT INTO strategies (model) VALUES ('ae')")
        assert c.ensure_strategy("ae") == (record, False)
    models = fresh_platform.store.query("SELECT model FROM strategies")
    assert [m[0] for m in models] == ["ae", "ae"]
