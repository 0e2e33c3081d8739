"""Faults: drops, 429, 5xx, malformed and truncated bodies, bad records; resumable downloads."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from dqm_playground_ds.platform import (
    DeadlineError,
    PaginationError,
    PlaygroundClient,
    RecordError,
    ResponseError,
    RetryError,
)
from dqm_playground_ds.platform.cache import PageCache
from tests.platform.helpers import RUNS, TITLES_1D, client_for, expected, start_platform


@pytest.mark.parametrize("fault", ["drop", "truncate", "malformed", "500", "502", "503", "504"])
def test_transient_faults_are_retried_and_lose_nothing(client, platform, table, fault):
    platform.faults.update(script=[fault, fault])
    got = client.download_histograms(1)
    assert len(got) == len(expected(table, 1))
    assert platform.faults.injected[fault] == 2
    assert client.stats["retries"] == 2


def test_connections_dropped_mid_page_under_concurrency(client, platform, table):
    platform.faults.update(truncate_rate=0.3, drop_rate=0.2, seed=7)
    client.retries = 10
    got = client.download_histograms(1, concurrent=True)
    platform.faults.reset()
    pd.testing.assert_frame_equal(got, client.download_histograms(1, concurrent=False))
    assert len(got) == len(expected(table, 1))


def test_429_waits_for_retry_after(client, platform):
    platform.faults.update(script=["429"], retry_after=1)
    started = time.perf_counter()
    records = client.lumisections()
    assert time.perf_counter() - started >= 1.0  # honoured, although the backoff is 10 ms
    assert len(records) == len(RUNS) * 40


def test_retry_after_is_capped(platform):
    platform.faults.update(script=["429"], retry_after=30)
    with client_for(platform, max_retry_after=0.2) as c:
        started = time.perf_counter()
        assert len(c.runs()) == len(RUNS)
        assert time.perf_counter() - started < 5


def test_persistent_5xx_gives_up_with_the_reason(platform):
    platform.faults.update(error_rate=1.0)
    with (
        client_for(platform, retries=2, download_retries=2) as c,
        pytest.raises(RetryError, match="HTTP 503") as err,
    ):
        c.runs()
    assert "gave up after 3 attempt(s)" in str(err.value) and "budget is spent" in str(err.value)


def test_a_burst_of_resets_longer_than_the_request_retries_does_not_end_a_download(platform, table):
    """Six consecutive connection resets mid-body: retries are per download, not per request."""
    platform.faults.update(script=["ok"] + ["truncate"] * 6)
    with client_for(platform, retries=2, max_workers=1) as c:
        got = c.download_histograms(1)
    assert len(got) == len(expected(table, 1))
    platform.faults.update(script=["ok"] + ["truncate"] * 6)
    with (
        client_for(platform, retries=2, download_retries=3, max_workers=1) as c,
        pytest.raises(RetryError, match="budget is spent"),
    ):
        c.download_histograms(1)


def test_persistent_malformed_json_is_a_clear_error(platform):
    platform.faults.update(malformed_rate=1.0)
    with client_for(platform, retries=1) as c, pytest.raises(ResponseError, match="malformed JSON"):
        c.runs()


def test_connection_refused_is_retried_then_reported():
    from dqm_playground_ds.platform import PlaygroundClient
    from dqm_playground_ds.platform.server.runner import bind

    sock = bind()  # a port nobody serves once closed
    port = sock.getsockname()[1]
    sock.close()
    with (
        PlaygroundClient(
            f"http://127.0.0.1:{port}", "t", retries=1, backoff=0.01, progress=False
        ) as c,
        pytest.raises(RetryError, match="ConnectionError"),
    ):
        c.runs()


def test_a_record_missing_fields_names_the_record(fresh_platform):
    with fresh_platform.store.lock:
        fresh_platform.store.conn.execute(
            "UPDATE lumisection_histograms_1d SET x_max = NULL WHERE id = 77"
        )
    with client_for(fresh_platform) as c:
        with pytest.raises(RecordError, match=r"id=77 .*lacks field\(s\) \['x_max'\]"):
            c.download_histograms(1)
        skipped = c.download_histograms(1, on_bad_record="skip")
    assert len(skipped) == len(RUNS) * 40 * 2 - 1


def test_a_record_with_the_wrong_bin_count_is_refused(fresh_platform):
    with fresh_platform.store.lock:
        fresh_platform.store.conn.execute(
            "UPDATE lumisection_histograms_2d SET y_bin = 4 WHERE id = 3"
        )
    with client_for(fresh_platform) as c, pytest.raises(RecordError, match="expected y_bin=4"):
        c.download_histograms(2)


def test_interrupted_download_resumes_with_missing_pages_only(platform, table, tmp_path):
    want = expected(table, 1)
    n_pages = -(-len(want) // 50)
    platform.faults.update(script=["ok", "ok", "503"])  # page 1, one page, then a failure
    with client_for(platform, retries=0, max_workers=1) as c, pytest.raises(RetryError):
        c.download_histograms(1, cache_dir=tmp_path)
    cache = next(tmp_path.iterdir())
    done = sorted(p.name for p in cache.glob("page-*.parquet"))
    assert 2 <= len(done) < n_pages
    with client_for(platform) as c:
        before = platform.requests.get("GET /api/lumisection_histograms_1d/", 0)
        got = c.download_histograms(1, cache_dir=tmp_path)
        fetched = platform.requests["GET /api/lumisection_histograms_1d/"] - before
    # page 1 again (for the current total) plus the pages that were missing
    assert fetched == 1 + n_pages - len(done)
    assert len(got) == len(want) and got["me"].tolist() == want["me"].tolist()
    with client_for(platform) as c:  # complete: a re-run costs one request
        before = platform.requests["GET /api/lumisection_histograms_1d/"]
        pd.testing.assert_frame_equal(c.download_histograms(1, cache_dir=tmp_path), got)
        assert platform.requests["GET /api/lumisection_histograms_1d/"] - before == 1


def test_a_changed_result_set_discards_the_cache(fresh_platform, tmp_path):
    with client_for(fresh_platform) as c:
        first = c.download_histograms(1, titles=[TITLES_1D[0]], cache_dir=tmp_path)
        with fresh_platform.store.lock:
            fresh_platform.store.conn.execute(
                "DELETE FROM lumisection_histograms_1d WHERE run = ? AND lumisection = 1",
                (RUNS[0],),
            )
        second = c.download_histograms(1, titles=[TITLES_1D[0]], cache_dir=tmp_path)
    assert len(second) == len(first) - 1


@pytest.mark.parametrize("concurrent", [True, False])
def test_a_result_set_that_changes_mid_download_is_refused(table, concurrent):
    server = start_platform(table)
    try:

        def shrink(page) -> None:  # the platform changes right after page 1 was served
            if page.number == 1:
                with server.store.lock:
                    server.store.conn.execute(
                        "DELETE FROM lumisection_histograms_1d WHERE run = ?", (RUNS[0],)
                    )

        with client_for(server) as c, pytest.raises(PaginationError, match=r"changed|vanished"):
            list(
                c.fetch_pages(
                    "/api/lumisection_histograms_1d/", on_page=shrink, concurrent=concurrent
                )
            )
    finally:
        server.stop()


def test_page_cache_reads_all_pages(tmp_path):
    from dqm_playground_ds.platform import PlaygroundError

    cache = PageCache(tmp_path, "http://x/api/a/")
    cache.n_pages = 2
    with pytest.raises(PlaygroundError, match="lacks page"):
        cache.read()


class Trickle:
    """A raw HTTP server on 127.0.0.1 that sends its 200 headers at once, then one body byte
    every 50 ms: each socket read succeeds, so only a deadline on the whole answer ends it."""

    def __init__(self, size: int = 2000) -> None:
        import socket
        import threading

        self.size = size
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import threading

        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn) -> None:
        try:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {self.size}\r\n\r\n".encode()
            )
            for _ in range(self.size):
                if self.stop.wait(0.05):
                    break
                conn.sendall(b" ")
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


def test_a_trickling_server_is_cut_by_the_request_deadline():
    """A 2000-byte answer at 20 bytes/s would take 100 s; timeout (per read) never fires."""
    server = Trickle()
    try:
        started = time.monotonic()
        with (
            PlaygroundClient(
                server.url, "t", progress=False, retries=1, download_retries=1, backoff=0.01,
                timeout=2.0, request_deadline=0.5,
            ) as c,
            pytest.raises(RetryError, match="not complete within the deadline") as err,
        ):  # fmt: skip
            c.runs()
        assert "gave up after 2 attempt(s)" in str(err.value)
        assert time.monotonic() - started < 20  # bounded: far less than the 100 s trickle
        assert server.connections == 2
    finally:
        server.close()


def test_an_overall_deadline_ends_a_download_whatever_the_retries():
    server = Trickle()
    try:
        with (
            PlaygroundClient(
                server.url, "t", progress=False, retries=50, backoff=0.01, timeout=2.0,
                request_deadline=0.4, deadline=1.0,
            ) as c,
            pytest.raises(DeadlineError, match="overall deadline"),
        ):  # fmt: skip
            c.runs()
        assert server.connections < 10
    finally:
        server.close()
