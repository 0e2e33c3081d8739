"""The client against a real local platform: listings, filters, tables, auth and bad requests."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import requests

from dqm_playground_ds.platform import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    ParsingError,
    PlaygroundClient,
    histogram_filters,
)
from dqm_playground_ds.platform.pagination import PAGE_SIZE, Page, page_count, parse_page
from dqm_playground_ds.schema import COLUMNS
from tests.platform.helpers import (
    FILE_2D,
    RUNS,
    TITLE_2D,
    TITLES_1D,
    TOKEN,
    client_for,
    expected,
    start_platform,
    write_legacy_csv,
)


def test_page_count_ignores_the_float_total_pages():
    body = {
        "next": None,
        "previous": None,
        "total": 1234,
        "per_page": 50,
        "total_pages": 24.7,
        "results": [],
    }
    page = parse_page(body, url="u", number=1)
    assert page.n_pages == 25 == page_count(1234)
    assert page_count(0) == 1 and page_count(50) == 1 and page_count(51) == 2
    assert parse_page({**body, "total": None, "count": 3}, url="u", number=1).total == 3


def test_lists_follow_every_page(client, table):
    runs = client.runs()
    assert sorted(r["run_number"] for r in runs) == list(RUNS)
    assert [r["run_number"] for r in runs] != list(RUNS)  # no ORDER BY on the deployed server
    lumis = client.lumisections()
    assert len(lumis) == len(RUNS) * 40 > PAGE_SIZE
    assert client.lumisections(run=RUNS[1], ls_number=7) == [
        {"run": RUNS[1], "ls_number": 7, "date": lumis[0]["date"]}
    ]
    records = client.lumisection_histograms(1, title=TITLES_1D[1])
    assert len(records) == len(RUNS) * 40 and {r["title"] for r in records} == {TITLES_1D[1]}
    assert len(client.run_histograms(run__run_number__in=[RUNS[0], RUNS[2]])) == 2
    files = client.histogram_data_files(filepath__contains="2D")
    assert [f["filepath"] for f in files] == [FILE_2D]
    assert client.tasks() == [] and client.strategies() == [] and client.predictions() == []
    assert client.run_certifications() == [] and client.lumisection_certifications() == []
    assert client.get("runs", RUNS[0])["run_number"] == RUNS[0]


def test_unknown_filter_is_refused_before_any_request(client):
    before = client.stats["requests"]
    with pytest.raises(ValueError, match=r"run_numbr.*did you mean \['run_number'\]"):
        client.runs(run_numbr=315257)
    with pytest.raises(ValueError, match="unknown endpoint"):
        client.list_records("histograms")
    assert client.stats["requests"] == before


def test_the_old_name_of_list_records_still_works_and_says_so(client):
    with pytest.warns(DeprecationWarning, match="use list_records"):
        old = client.list("runs")
    assert old == client.list_records("runs") and len(old) == len(RUNS)


def test_histogram_filters_maps_friendly_selection():
    assert histogram_filters(
        titles="a",
        runs=[2, 1],
        run_range=(1, None),
        ls_range=(None, 9),
        data_file="2018A",
        entries_min=5,
    ) == {
        "title": ["a"],
        "lumisection__run__run_number__in": [2, 1],
        "lumisection__run__run_number__gte": 1,
        "lumisection__ls_number__lte": 9,
        "source_data_file__filepath__contains": "2018A",
        "entries__gte": 5,
    }


@pytest.mark.parametrize("dim", [1, 2])
def test_download_histograms_gives_the_loaded_table(client, table, dim):
    got = client.download_histograms(dim)
    want = expected(table, dim)
    assert list(got.columns) == list(COLUMNS)
    assert got.dtypes.astype(str).tolist() == [
        "int64",
        "int64",
        "string",
        "int8",
        "float64",
        "float64",
        "float64",
        "int32",
        "float64",
        "float64",
        "int32",
        "object",
        "string",
    ]
    cols = ["run", "lumi", "me", "dim", "entries", "x_min", "x_max", "x_bins", "y_bins"]
    pd.testing.assert_frame_equal(
        got[cols].reset_index(drop=True), want[cols].astype(got[cols].dtypes), check_dtype=True
    )
    # bins survive exactly, 2D in the schema's y-outer/x-inner order
    for a, b in zip(got["data"], want["data"], strict=True):
        np.testing.assert_array_equal(a, b)
    assert got["source"].iloc[0] == f"{client.base_url}api/lumisection_histograms_{dim}d/"


def test_download_with_selection(client, table):
    got = client.download_histograms(
        1, titles=[TITLES_1D[0]], run_range=(RUNS[1], None), ls_range=(5, 9)
    )
    assert len(got) == 2 * 5
    assert set(got["run"]) == {RUNS[1], RUNS[2]} and set(got["lumi"]) == set(range(5, 10))
    assert "title=" in got["source"].iloc[0]


def test_concurrent_pagination_equals_sequential(client):
    concurrent = client.download_histograms(1, concurrent=True)
    sequential = client.download_histograms(1, concurrent=False)
    pd.testing.assert_frame_equal(concurrent, sequential)
    assert client.lumisections(concurrent=True) == client.lumisections(concurrent=False)


def test_unknown_title_fails_at_once_with_the_servers_reason(client):
    before = client.stats["requests"]
    with pytest.raises(BadRequestError, match="not one of the available choices") as err:
        client.download_histograms(1, titles=["no/such/ME"])
    assert err.value.status == 400 and "title" in err.value.detail
    assert client.stats["requests"] == before + 1  # no retry on a 400


def test_a_2d_title_is_unknown_to_the_1d_endpoint(client):
    with pytest.raises(BadRequestError):
        client.download_histograms(1, titles=[TITLE_2D])


def test_no_token_is_401_with_a_hint(platform, monkeypatch):
    monkeypatch.delenv("DQM_PLAYGROUND_TOKEN", raising=False)
    with (
        client_for(platform, token=None) as anon,
        pytest.raises(AuthenticationError, match="DQM_PLAYGROUND_TOKEN") as err,
    ):
        anon.runs()
    assert err.value.status == 401


def test_wrong_token_is_401_and_never_shown(platform):
    secret = "wrong-secret-token"
    with client_for(platform, token=secret) as bad:
        with pytest.raises(AuthenticationError, match=r"refused \(invalid, expired") as err:
            bad.runs()
        assert err.value.status == 401
        assert secret not in str(err.value) and secret not in repr(bad)
        assert "***" in repr(bad)
        assert bad.stats["requests"] == 1  # no retry on 401


def test_token_from_the_environment(platform, monkeypatch):
    monkeypatch.setenv("DQM_PLAYGROUND_TOKEN", TOKEN)
    with PlaygroundClient(platform.url, progress=False) as c:
        assert c.has_token and len(c.runs()) == len(RUNS)


def test_client_pickles_without_its_sessions(client):
    client.runs()
    clone = pickle.loads(pickle.dumps(client))
    assert clone.runs() == client.runs()
    clone.close()


def test_refuses_non_http_urls():
    with pytest.raises(ValueError, match="http"):
        PlaygroundClient("ftp://127.0.0.1/")


def test_page_dataclass_is_the_shape_the_client_uses():
    page = Page(2, 120, 50, None, "/api/x/", [])
    assert page.n_pages == 3


def test_a_valid_token_without_permission_is_403_not_refused(tmp_path, mode):
    server = start_platform(None, admin_token="admin", data_dir=str(tmp_path), extensions=mode)
    try:
        with client_for(server) as user, pytest.raises(AuthenticationError) as err:
            user.discover()
        assert err.value.status == 403
        assert "valid but not allowed" in str(err.value) and "needs an admin" in str(err.value)
        assert "refused" not in str(err.value)
    finally:
        server.stop()


def test_discover_and_start_parsing_polled_to_completion(tmp_path, table, mode):
    folder = tmp_path / "files"
    folder.mkdir()
    write_legacy_csv(expected(table, 2).head(7), folder / "ZeroBias_2018D_DataFrame_2D_3.csv")
    # the default 60 s data-file cache: polling must see past it
    server = start_platform(
        None, admin_token="admin", data_dir=str(folder), parse_delay=0.3, extensions=mode
    )
    try:
        with client_for(server, token="admin") as admin:
            assert admin.discover() is None  # 202, empty body
            (file,) = admin.histogram_data_files(data_era="2018D", processing_complete=False)
            assert file["entries_processed"] == 0
            with pytest.raises(ValueError, match="lowercase"):
                admin.start_parsing(
                    file["id"], granularity="lum", data_dimensionality=2, file_format="CSV"
                )
            done = admin.start_parsing(
                file["id"], granularity="lum", data_dimensionality=2, file_format="csv", poll=0.05
            )
            assert done["entries_processed"] == done["entries_total"] == 7
            with pytest.raises(BadRequestError, match="already been parsed") as err:
                admin.start_parsing(
                    file["id"], granularity="lum", data_dimensionality=2, file_format="csv"
                )
            assert err.value.detail == "File has already been parsed"  # a bare JSON string
            assert len(admin.download_histograms(2, data_file="2018D")) == 7
            with pytest.raises(NotFoundError):
                admin.get("tasks", 42)
    finally:
        server.stop()


def test_a_parse_that_fails_on_the_server_is_reported_as_stalled(tmp_path, mode):
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "ZeroBias_2018E_DataFrame_1D_4.csv").write_text("not,a,legacy\ncsv,file,at\n")
    server = start_platform(None, admin_token="admin", data_dir=str(folder), extensions=mode)
    try:
        with client_for(server, token="admin") as admin:
            admin.discover()
            (file,) = admin.histogram_data_files()
            with pytest.raises(ParsingError, match=r"no parsing progress .*never reports"):
                admin.start_parsing(
                    file["id"],
                    granularity="lum",
                    data_dimensionality=1,
                    file_format="csv",
                    poll=0.05,
                    stall_timeout=0.5,
                )
    finally:
        server.stop()


def test_a_parse_that_never_finishes_ends_at_the_timeout(tmp_path, table, mode):
    folder = tmp_path / "files"
    folder.mkdir()
    write_legacy_csv(expected(table, 1).head(3), folder / "ZeroBias_2018F_DataFrame_1D_5.csv")
    server = start_platform(
        None, admin_token="admin", data_dir=str(folder), parse_delay=1.0, extensions=mode
    )
    try:
        with client_for(server, token="admin") as admin:
            admin.discover()
            (file,) = admin.histogram_data_files()
            with pytest.raises(ParsingError, match=r"not finished after 0 s \(0 of 3 entries"):
                admin.start_parsing(file["id"], granularity="lum", data_dimensionality=1,
                                    file_format="csv", poll=0.05, timeout=0.3, stall_timeout=None)  # fmt: skip
    finally:
        server.stop()


def test_data_files_with_1d_and_2d_content_are_listed_once(fresh_platform):
    both = fresh_platform.store.add_data_file(
        "/eos/ZeroBias_2018C_DataFrame_12.csv", entries_total=4, dims=[1, 2]
    )
    raw = requests.get(
        f"{fresh_platform.url}/api/histogram_data_files/",
        params={"granularity": "lum"},
        headers={"Authorization": f"Token {TOKEN}"},
        timeout=5,
    ).json()
    assert raw["total"] == 4  # the deployed server lists the 1D+2D file twice
    with client_for(fresh_platform) as c:
        files = c.histogram_data_files(granularity="lum")
    assert sorted(f["id"] for f in files) == sorted({f["id"] for f in raw["results"]})
    assert len(files) == 3 and both in {f["id"] for f in files}


def test_in_values_are_checked_before_sending(client):
    before = client.stats["requests"]
    with pytest.raises(ValueError, match=r"run__run_number__in takes whole numbers, got 'x'.*500"):
        client.run_histograms(run__run_number__in=[RUNS[0], "x"])
    assert client.stats["requests"] == before
    raw = requests.get(
        f"{client.base_url}api/run_histograms/",
        params={"run__run_number__in": f"{RUNS[0]},x"},
        headers={"Authorization": f"Token {TOKEN}"},
        timeout=5,
    )
    assert raw.status_code == 500 and "Server Error (500)" in raw.text


def test_a_redirect_that_drops_the_token_is_named(platform):
    """A redirect to another host (here 127.0.0.1 -> localhost) makes requests drop the token."""
    import http.server
    import threading

    target = platform.url.replace("127.0.0.1", "localhost")

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(301)
            self.send_header("Location", target + self.path)
            self.end_headers()

        def log_message(self, *args):
            pass

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{proxy.server_address[1]}"
        with (
            PlaygroundClient(url, TOKEN, progress=False, retries=0) as c,
            pytest.raises(AuthenticationError, match="redirected to http://localhost") as err,
        ):
            c.runs()
        assert "drops the Authorization header" in str(err.value)
        assert "refused" not in str(err.value)
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_certification_filters_work_as_the_server_really_answers(fresh_platform):
    """``?run=`` is a 500 and ``?lumisection=`` an internal id on the deployed server: the client
    applies run/LS/id itself and gives the right rows."""
    fresh_platform.store.load_golden({str(RUNS[1]): [[1, 10]]})
    with client_for(fresh_platform) as c:
        rows = c.lumisection_certifications(run=RUNS[1], lumisection=5)
        assert [(r["run"], r["lumisection"], r["rr_is_golden_json"]) for r in rows] == [
            (RUNS[1], 5, True)
        ]
        good = c.lumisection_certifications(run=RUNS[1], rr_is_golden_json=True)
        assert sorted(r["lumisection"] for r in good) == list(range(1, 11))
        (one,) = c.lumisection_certifications(id=good[0]["id"])
        assert one == good[0]
        runs = c.run_certifications(run=RUNS[1])
        assert len(runs) == 1 and "rr_is_golden_json" not in runs[0]
        before = c.stats["requests"]
        with pytest.raises(ValueError, match=r"rr_is_golden_json.*ignores it"):
            c.run_certifications(rr_is_golden_json=True)
        assert c.stats["requests"] == before


def test_a_gzip_encoded_answer_is_decoded():
    """The body is read piece by piece (for the deadline): content encoding must still apply."""
    import gzip
    import http.server
    import json
    import threading

    page = {"next": None, "previous": None, "total": 1, "per_page": 50,
            "results": [{"run_number": RUNS[0], "date": "2018-04-01"}]}  # fmt: skip
    body = gzip.compress(json.dumps(page).encode())

    class Gzip(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gzip)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with PlaygroundClient(
            f"http://127.0.0.1:{server.server_address[1]}", TOKEN, progress=False
        ) as c:
            assert c.runs() == page["results"] and c.runs() == page["results"]
    finally:
        server.shutdown()
        server.server_close()
