"""The local platform follows the contract, quirks included (checked with plain HTTP requests)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import pytest
import requests

from dqm_playground_ds.platform.endpoints import ENDPOINTS
from dqm_playground_ds.platform.server import FaultPlan
from dqm_playground_ds.platform.server.api import RESOURCES
from tests.platform.helpers import (
    FILE_1D,
    RUNS,
    TITLE_2D,
    TITLES_1D,
    TOKEN,
    expected,
    start_platform,
    write_legacy_csv,
)

AUTH = {"Authorization": f"Token {TOKEN}"}
H1 = "/api/lumisection_histograms_1d/"


def get(platform, path, headers=AUTH, **params):
    return requests.get(platform.url + path, headers=headers, params=params, timeout=5)


def test_page_shape_relative_links_and_float_total_pages(platform):
    body = get(platform, H1, title=TITLES_1D[0]).json()
    total = len(RUNS) * 40
    assert body["total"] == total and body["per_page"] == 50
    assert body["total_pages"] == round(total / 50, 1) == 2.4  # a float, not the page count
    assert "count" not in body
    assert body["previous"] is None
    assert body["next"].startswith(f"{H1}?page=2&")  # relative to the host, page first
    page3 = get(platform, H1, page=3, title=TITLES_1D[0]).json()
    assert page3["next"] is None and len(page3["results"]) == total - 100
    assert page3["previous"].startswith(f"{H1}?page=2&")
    page2 = get(platform, H1, page=2, title=TITLES_1D[0]).json()
    assert "page=" not in page2["previous"]  # DRF drops page=1


@pytest.mark.parametrize("page", ["4", "0", "-1", "abc"])
def test_past_the_end_is_404_invalid_page(platform, page):
    resp = get(platform, H1, page=page, title=TITLES_1D[0])
    assert resp.status_code == 404
    assert resp.json() == {"detail": "Invalid page."}


def test_empty_result_has_a_first_page(platform):
    body = get(platform, H1, lumisection__run__run_number=1).json()
    assert body == {
        "next": None,
        "previous": None,
        "total": 0,
        "per_page": 50,
        "total_pages": 0.0,
        "results": [],
    }


def test_auth_401_without_and_with_a_bad_token(platform):
    missing = get(platform, "/api/runs/", headers={})
    assert missing.status_code == 401
    assert missing.json() == {"detail": "Authentication credentials were not provided."}
    bad = get(platform, "/api/runs/", headers={"Authorization": "Token nope"})
    assert bad.status_code == 401 and bad.json() == {"detail": "Invalid token."}
    assert "WWW-Authenticate" in bad.headers


def test_lists_have_no_ordering_but_pages_are_stable(platform):
    ids = [
        r["id"]
        for page in (1, 2, 3)
        for r in get(platform, H1, page=page, title=TITLES_1D[0]).json()["results"]
    ]
    assert len(ids) == len(set(ids)) == len(RUNS) * 40
    assert ids != sorted(ids)  # no ORDER BY, as on the deployed server
    again = [r["id"] for r in get(platform, H1, page=2, title=TITLES_1D[0]).json()["results"]]
    assert again == ids[50:100]


def test_unknown_title_is_400_and_unknown_filter_is_ignored(platform):
    resp = get(platform, H1, title="no/such/ME")
    assert resp.status_code == 400 and "title" in resp.json()
    # a 2D title is unknown to the 1D endpoint
    assert get(platform, H1, title=TITLE_2D).status_code == 400
    assert get(platform, H1, run_numbr=1).json()["total"] == len(RUNS) * 40 * 2


def test_records_follow_the_contract(platform, table):
    rec = get(platform, H1, title=TITLES_1D[0]).json()["results"][0]
    assert list(rec) == [
        "id",
        "run",
        "lumisection",
        "title",
        "entries",
        "data",
        "x_min",
        "x_max",
        "x_bin",
        "source_data_file",
    ]
    rec2 = get(platform, "/api/lumisection_histograms_2d/").json()["results"][0]
    assert {"y_min", "y_max", "y_bin"} <= set(rec2)
    assert len(rec2["data"]) == rec2["y_bin"] == 3 and len(rec2["data"][0]) == rec2["x_bin"] == 5
    run = get(platform, "/api/runs/").json()["results"][0]
    assert set(run) == {"run_number", "date"}
    ls = get(platform, "/api/lumisections/", run=RUNS[0]).json()
    assert ls["total"] == 40 and set(ls["results"][0]) == {"run", "ls_number", "date"}
    rh = get(platform, "/api/run_histograms/", run__run_number=RUNS[0]).json()["results"]
    assert len(rh) == 1 and rh[0]["title"] == TITLES_1D[0] and rh[0]["mean"] is not None


@pytest.mark.parametrize(
    ("params", "count"),
    [
        ({"lumisection__run__run_number": RUNS[1]}, 80),
        ({"lumisection__run__run_number__gte": RUNS[1]}, 160),
        ({"lumisection__run__run_number__lte": RUNS[0]}, 80),
        ({"lumisection__run__run_number__in": f"{RUNS[0]},{RUNS[2]}"}, 160),
        ({"lumisection__ls_number": 3}, 6),
        ({"lumisection__ls_number__gte": 31}, 60),
        ({"lumisection__ls_number__lte": 10}, 60),
        ({"lumisection__ls_number__in": "1,2,3"}, 18),
        ({"title": list(TITLES_1D)}, 240),
        ({"entries__gte": 1e9}, 0),
        ({"entries__lte": 1e9}, 240),
        ({"source_data_file": 1}, 240),
        ({"source_data_file__filepath__contains": "2018A"}, 240),
        ({"source_data_file__filepath__contains": "2018B"}, 0),
    ],
)
def test_ls_histogram_filters(platform, params, count):
    assert get(platform, H1, **params).json()["total"] == count


def test_server_implements_every_contract_filter(platform):
    for name, endpoint in ENDPOINTS.items():
        client_side = endpoint.local_filters | set(endpoint.refused)
        assert set(RESOURCES[name].filters) == set(endpoint.filters) | client_side, name


def test_certification_filters_as_the_deployed_server_answers(fresh_platform):
    platform = fresh_platform
    platform.store.load_golden({str(RUNS[0]): [[1, 10]], str(RUNS[1]): [[1, 40]]})
    lc = "/api/lumisection_certifications/"
    assert get(platform, lc, run=RUNS[0]).status_code == 500  # ?run= crashes
    everything = get(platform, lc).json()["total"]
    assert everything == len(RUNS) * 40
    assert get(platform, lc, id=1).json()["total"] == everything  # ?id= ignored
    by_ls = get(platform, lc, lumisection=45).json()["results"]  # the internal LS id 45
    assert len(by_ls) == 1 and (by_ls[0]["run"], by_ls[0]["lumisection"]) == (RUNS[1], 5)
    rc = get(platform, "/api/run_certifications/").json()
    assert rc["total"] == len(RUNS)
    rec = rc["results"][0]
    assert "rr_is_golden_json" not in rec and all(k.startswith("rr_frac_") for k in list(rec)[3:])
    assert get(platform, "/api/run_certifications/", rr_is_golden_json="true").json()["total"] == 3


def test_writes_as_the_deployed_server_answers(deployed_platform):
    url = deployed_platform.url
    for _ in range(2):  # duplicate names are allowed
        resp = requests.post(
            f"{url}/api/strategies/", json={"model": "ae"}, headers=AUTH, timeout=5
        )
        assert resp.status_code == 201
    assert get(deployed_platform, "/api/strategies/").json()["total"] == 2
    bare = {"task": 1, "predictions": []}
    resp = requests.post(f"{url}/api/predictions/", json=bare, headers=AUTH, timeout=5)
    assert resp.status_code == 400
    assert resp.json() == {
        name: ["This field is required."]
        for name in (
            "strategy",
            "lumisection_histograms_1d",
            "lumisection_histograms_2d",
            "run_histograms",
        )
    }
    nested = {"task": 1, "strategy": "ae", "lumisection_histograms_1d": [{"id": 1}],
              "lumisection_histograms_2d": [], "run_histograms": []}  # fmt: skip
    resp = requests.post(f"{url}/api/predictions/", json=nested, headers=AUTH, timeout=5)
    assert resp.status_code == 500 and "Server Error (500)" in resp.text
    task = {"name": "t", "training_runs": [RUNS[0]], "testing_runs": [RUNS[1]]}
    resp = requests.post(f"{url}/api/tasks/", json=task, headers=AUTH, timeout=5)
    assert resp.status_code == 400 and "training_lumisections" in resp.json()
    full = {**task, "training_lumisections": [], "testing_lumisections": []}
    assert requests.post(f"{url}/api/tasks/", json=full, headers=AUTH, timeout=5).status_code == 500
    assert get(deployed_platform, "/api/tasks/").json()["total"] == 0
    assert get(deployed_platform, "/api/capabilities/").status_code == 404  # no extension


def test_data_files_and_their_60_second_cache(fresh_platform):
    platform = fresh_platform
    files = get(platform, "/api/histogram_data_files/").json()["results"]
    files.sort(key=lambda f: f["id"])
    assert [f["filepath"] for f in files] == [FILE_1D, "/eos/ZeroBias_2018B_DataFrame_2D_2.csv"]
    assert files[0]["data_era"] == "2018A" and files[0]["percentage_processed"] == 100.0
    assert files[0]["contents"] == [{"granularity": "lum", "data_dimensionality": 1}]
    assert files[1]["lumisection_histograms_2d"] == len(RUNS) * 40
    assert get(platform, "/api/histogram_data_files/", data_dimensionality=2).json()["total"] == 1
    assert get(platform, "/api/histogram_data_files/", data_era="2018B").json()["total"] == 1
    # the quirk: a change is not visible to a GET made within 60 s
    with platform.store.lock:
        platform.store.conn.execute("UPDATE histogram_data_files SET entries_processed = 1")
    again = get(platform, "/api/histogram_data_files/").json()["results"]
    assert {f["entries_processed"] for f in again} == {f["entries_processed"] for f in files}


def test_discover_is_for_admins_and_start_parsing_parses_in_the_background(tmp_path, table):
    csv_dir = tmp_path / "files"
    csv_dir.mkdir()
    write_legacy_csv(expected(table, 1).head(5), csv_dir / "ZeroBias_2018C_DataFrame_1D_9.csv")
    platform = start_platform(None, admin_token="admin", data_dir=str(csv_dir), file_cache_ttl=0)
    try:
        assert get(platform, "/api/histogram_data_files/discover/").status_code == 403
        admin = {"Authorization": "Token admin"}
        resp = get(platform, "/api/histogram_data_files/discover/", headers=admin)
        assert resp.status_code == 202 and resp.content == b""
        file = get(platform, "/api/histogram_data_files/").json()["results"][0]
        assert file["entries_total"] == 5 and file["entries_processed"] == 0
        url = f"{platform.url}/api/histogram_data_files/{file['id']}/start_parsing/"
        body = {"granularity": "lum", "data_dimensionality": 1, "file_format": "csv"}
        missing = requests.post(url, json={"granularity": "lum"}, headers=AUTH, timeout=5)
        assert missing.status_code == 400 and isinstance(missing.json(), str)
        for fmt in ("CSV", "parquet"):
            upper = requests.post(url, json={**body, "file_format": fmt}, headers=AUTH, timeout=5)
            assert upper.status_code == 400 and upper.json() == f"Invalid file format: {fmt}"
        started = requests.post(url, json=body, headers=AUTH, timeout=5)
        assert started.status_code == 202 and started.content == b""
        for worker in platform.app.parsers:
            worker.join(timeout=10)
        again = requests.post(url, json=body, headers=AUTH, timeout=5)
        assert again.status_code == 400 and again.json() == "File has already been parsed"
        assert get(platform, H1).json()["total"] == 5
    finally:
        platform.stop()


def test_the_extension_is_advertised_and_predictions_merge_on_their_key(extended_platform):
    platform = extended_platform
    caps = get(platform, "/api/capabilities/").json()["extensions"]
    assert set(caps) == {"dqm-playground-ds/predictions/v1", "dqm-playground-ds/tasks/v1"}
    requests.post(platform.url + "/api/strategies/", json={"model": "ae"}, headers=AUTH, timeout=5)
    task = requests.post(
        platform.url + "/api/tasks/",
        json={"name": "t", "training_runs": [RUNS[0]], "testing_runs": [RUNS[1]]},
        headers=AUTH,
        timeout=5,
    ).json()
    item = {
        "strategy": "ae",
        "run": RUNS[1],
        "lumisection": 3,
        "score": 0.5,
        "threshold": 0.4,
        "is_anomalous": True,
        "top_mes": [TITLE_2D],
    }
    body = {"schema": "dqm-playground-ds/predictions/v1", "task": task["id"], "predictions": [item],
            "batch": "b1"}  # fmt: skip
    first = requests.post(platform.url + "/api/predictions/", json=body, headers=AUTH, timeout=5)
    assert first.status_code == 201 and first.json()["created"] == 1
    again = requests.post(platform.url + "/api/predictions/", json=body, headers=AUTH, timeout=5)
    assert again.json()["unchanged"] == 1
    body["predictions"] = [{**item, "score": 0.6}]
    assert (
        requests.post(
            platform.url + "/api/predictions/", json=body, headers=AUTH, timeout=5
        ).json()["updated"]
        == 1
    )
    listed = get(platform, "/api/predictions/").json()
    assert listed["total"] == 1
    pred = listed["results"][0]
    assert pred["score"] == 0.6 and pred["strategy"] == "ae"
    assert pred["lumisection_histograms_2d"][0]["title"] == TITLE_2D
    bad = {**body, "predictions": [{"strategy": "nope", "run": 1}]}
    resp = requests.post(platform.url + "/api/predictions/", json=bad, headers=AUTH, timeout=5)
    assert resp.status_code == 400 and "strategy" in resp.json()["predictions"]["0"]
    held = get(platform, "/api/predictions/batches/", task=task["id"]).json()
    assert held == {"task": task["id"], "batches": {"b1": 1}}


def test_fault_plan_from_string_and_admin_endpoint(platform):
    plan = FaultPlan.from_string("latency=0.01,error_rate=0.5,retry_after=2,seed=3,script=drop;429")
    assert plan.latency == 0.01 and plan.script == ["drop", "429"] and plan.seed == 3
    with pytest.raises(ValueError, match=r"error_rate must be within \[0, 1\], got 2.0"):
        FaultPlan.from_string("error_rate=2")
    before = platform.requests.get("GET /api/runs/", 0)
    resp = requests.put(
        platform.url + "/_admin/faults", json={"script": ["503"]}, headers=AUTH, timeout=5
    )
    assert resp.json()["script"] == ["503"]
    assert get(platform, "/api/runs/").status_code == 503
    assert get(platform, "/api/runs/").status_code == 200
    stats = requests.get(platform.url + "/_admin/stats", headers=AUTH, timeout=5).json()
    assert stats["requests"]["GET /api/runs/"] == before + 2 and stats["faults"]["injected"] == {
        "503": 1
    }


def test_the_documented_command_serves_on_127_0_0_1(tmp_path, table):
    path = tmp_path / "histograms.parquet"
    table.to_parquet(path)
    task = tmp_path / "task.yml"
    task.write_text(f"name: sample\ntrain: {{runs: [{RUNS[0]}]}}\napply: {{runs: [{RUNS[1]}]}}\n")
    env = {**os.environ, "DQM_PLAYGROUND_TOKEN": TOKEN, "DQM_PLAYGROUND_FAULTS": "latency=0.01"}
    cmd = [
        sys.executable,
        "-m",
        "dqm_playground_ds.platform.server",
        "--db",
        str(tmp_path / "db.sqlite"),
        "--load",
        str(path),
        "--task",
        str(task),
        "--extension",
        "predictions",
        "--port",
        "0",
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("serving http://127.0.0.1:"), line
        url = line.split()[1]
        started = time.perf_counter()
        body = requests.get(url + "/api/tasks/", headers=AUTH, timeout=10).json()
        assert time.perf_counter() - started >= 0.01  # the env fault setting applies
        assert body["results"][0]["name"] == "sample"
        total = requests.get(url + H1, headers=AUTH, timeout=10).json()["total"]
        assert total == math.prod((len(RUNS), 40, 2))
        caps = requests.get(url + "/api/capabilities/", headers=AUTH, timeout=10).json()
        assert list(caps["extensions"]) == ["dqm-playground-ds/predictions/v1"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_restarting_on_the_same_db_loads_nothing_twice(tmp_path, table):
    from dqm_playground_ds.platform.server import Store

    task = tmp_path / "task.yml"
    task.write_text(f"name: sample\ntrain: {{runs: [{RUNS[0]}]}}\n")
    for expected_added in (len(table), 0):
        store = Store(tmp_path / "db.sqlite")
        assert store.load_histograms(table) == expected_added
        assert store.load_task_file(task) == 1
        store.close()
