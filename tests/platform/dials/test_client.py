"""The DIALS client against the local DIALS server: sharded downloads, cursors, resume, errors."""

from __future__ import annotations

import pandas as pd
import pytest

from dqm_playground_ds.platform import (
    AuthenticationError,
    NotFoundError,
    PlaygroundError,
    RetryError,
)
from dqm_playground_ds.platform.dials import DialsClient
from dqm_playground_ds.platform.dials.server import LocalDials
from tests.platform.dials.conftest import DATASET, LIMITED, TOKEN, dials_client
from tests.platform.helpers import RUNS, TITLE_2D, TITLES_1D, expected


def same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    cols = ["run", "lumi", "me", "dim", "entries", "x_min", "x_max", "x_bins", "y_bins"]
    pd.testing.assert_frame_equal(
        got[cols].reset_index(drop=True), want[cols].astype(got[cols].dtypes)
    )
    for a, b in zip(got["data"], want["data"], strict=True):
        assert (a == b).all()


@pytest.mark.parametrize("page_size", [500, 20])
@pytest.mark.parametrize("dim", [1, 2])
def test_sharded_and_sequential_give_the_loaded_table(dials, dials_table, dim, page_size):
    """Shards are sized from the run listing's LS counts: on this table (every LS holds every
    ME) each one is exactly one full page, so the download takes the fewest requests possible."""
    want = expected(dials_table, dim)
    with dials_client(dials, page_size=page_size) as c:
        before = dials.requests.get(f"GET /api/v1/th{dim}/", 0)
        sharded = c.download_histograms(dim, dataset=DATASET)
        assert dials.requests[f"GET /api/v1/th{dim}/"] - before == -(-len(want) // page_size)
        same(sharded, want)
        pd.testing.assert_frame_equal(
            sharded, c.download_histograms(dim, dataset=DATASET, shard=False)
        )


def test_shards_are_right_whatever_the_counts_say(dials_table):
    """LS numbers with gaps (the LS count underestimates the last LS number) and a run the run
    listing does not know: the estimate is wrong, the table is not."""
    gappy = dials_table.assign(lumi=dials_table["lumi"] * 3)  # LS 3, 6, ... 120; 40 of them
    with (
        LocalDials({"tracker": gappy}, token=TOKEN) as server,
        dials_client(server, page_size=15) as c,
    ):
        sharded = c.download_histograms(1, dataset=DATASET)
        same(sharded, expected(gappy, 1))
        pd.testing.assert_frame_equal(
            sharded, c.download_histograms(1, dataset=DATASET, shard=False)
        )
        runs = [RUNS[0], RUNS[0] + 1]  # the second has no histograms: no rows, no error
        got = c.download_histograms(1, dataset=DATASET, runs=runs, ls_range=(10, 70))
        same(got, expected(gappy[gappy["lumi"].between(10, 70)], 1, run=RUNS[0]))


def test_small_pages_follow_every_cursor(dials, dials_table):
    with dials_client(dials, page_size=7) as c:
        for shard in (True, False):
            got = c.download_histograms(
                1, dataset=DATASET, runs=[RUNS[0]], mes=[TITLES_1D[0]], shard=shard
            )
            same(got, expected(dials_table, 1, run=RUNS[0], me=TITLES_1D[0]))
        records = c.list_all("lumisection", {"dataset": DATASET})
    assert len(records) == len(RUNS) * 40


def test_selection_regex_ls_range_and_discovery(dclient, dials_table):
    got = dclient.download_histograms(1, dataset=DATASET, run_range=(RUNS[1], None),
                                      ls_range=(5, 9), me_regex="PXLayer")  # fmt: skip
    assert set(got["me"]) == {TITLES_1D[0]} and set(got["run"]) == set(RUNS[1:])
    assert set(got["lumi"]) == set(range(5, 10))
    assert dclient.count("run", {"dataset": DATASET}) == len(RUNS)
    assert [m["me"] for m in dclient.mes() if m["dim"] == 2] == [TITLE_2D]
    assert {r["run_number"] for r in dclient.runs(dataset=DATASET)} == set(RUNS)


def test_a_regex_matching_nothing_and_bad_input_are_clear(dclient):
    before = dclient.stats["requests"]
    with pytest.raises(ValueError, match="not a valid regex"):
        dclient.download_histograms(1, dataset=DATASET, me_regex="([")
    with pytest.raises(ValueError, match="did you mean 'run_number__lte'"):
        dclient.list_all("th1", {"run_number_lte": 3})
    with pytest.raises(ValueError, match="dataset is required"):
        dclient.download_histograms(1, dataset="")
    assert dclient.stats["requests"] == before
    with pytest.raises(PlaygroundError, match="matches none of the 2 1D MEs"):
        dclient.download_histograms(1, dataset=DATASET, me_regex="^nothing$")
    with pytest.raises(PlaygroundError, match="did you mean"):
        dclient.download_histograms(1, dataset=DATASET, mes=["PXLayer/charge_PXLayer_2"])
    with pytest.raises(ValueError, match="page_size"):
        DialsClient(dclient.base_url, "t", page_size=501)


def test_tokens_and_workspaces(dials, monkeypatch):
    monkeypatch.delenv("DIALS_TOKEN", raising=False)
    with (
        dials_client(dials, token=None) as anon,
        pytest.raises(AuthenticationError, match="no token was sent: export DIALS_TOKEN"),
    ):
        anon.mes()
    secret = "expired-secret"
    with (
        dials_client(dials, token=secret) as bad,
        pytest.raises(AuthenticationError, match="invalid or expired") as err,
    ):
        bad.mes()
    assert err.value.status == 403 and secret not in str(err.value) and bad.stats["requests"] == 1
    with (
        dials_client(dials, workspace="nowhere") as c,
        pytest.raises(NotFoundError, match=r"Workspace 'nowhere' not found.*tracker"),
    ):
        c.mes()
    with (
        dials_client(dials, token=LIMITED) as c,
        pytest.raises(AuthenticationError, match="may not see workspace 'tracker'"),
    ):
        c.mes()
    with dials_client(dials, token=LIMITED, workspace="ecal") as c:
        assert c.mes()


def test_a_page_that_drops_mid_body_is_retried(dclient, dials, dials_table):
    dials.faults.update(paths="/api/v1/th1/", script=["truncate", "drop", "503"])
    got = dclient.download_histograms(1, dataset=DATASET)
    same(got, expected(dials_table, 1))
    assert dials.faults.as_dict()["injected"] == {"truncate": 1, "drop": 1, "503": 1}


def test_an_interrupted_download_resumes_page_by_page(dials, dials_table, tmp_path):
    with dials_client(dials, page_size=10, retries=0, max_workers=1) as c:
        n_pages = -(-len(expected(dials_table, 1)) // 10)
        dials.faults.update(paths="/api/v1/th1/", script=["ok"] * 9 + ["503"])
        with pytest.raises(RetryError):
            c.download_histograms(1, dataset=DATASET, cache_dir=tmp_path)
        dials.faults.reset()
        kept = len(list(tmp_path.rglob("page-*.parquet")))  # 9, or 10 if the worker had
        assert kept in (9, 10)  # already started the next shard when the failure was seen
        before = dials.requests["GET /api/v1/th1/"]
        got = c.download_histograms(1, dataset=DATASET, cache_dir=tmp_path)
        fetched = dials.requests["GET /api/v1/th1/"] - before
        assert fetched == n_pages - kept  # only what was missing: the kept pages are reused
        same(got, expected(dials_table, 1))
        before = dials.requests["GET /api/v1/th1/"]
        pd.testing.assert_frame_equal(
            c.download_histograms(1, dataset=DATASET, cache_dir=tmp_path), got
        )
        assert dials.requests["GET /api/v1/th1/"] == before  # complete: no histogram request


def test_an_interrupted_cursor_resumes_from_its_saved_next_token(dials, dials_table, tmp_path):
    with dials_client(dials, page_size=10, retries=0) as c:
        n_pages = -(-len(expected(dials_table, 1)) // 10)
        dials.faults.update(paths="/api/v1/th1/", script=["ok"] * 9 + ["503"])
        with pytest.raises(RetryError):
            c.download_histograms(1, dataset=DATASET, cache_dir=tmp_path, shard=False)
        dials.faults.reset()
        before = dials.requests["GET /api/v1/th1/"]
        got = c.download_histograms(1, dataset=DATASET, cache_dir=tmp_path, shard=False)
        assert dials.requests["GET /api/v1/th1/"] - before == n_pages - 9
        same(got, expected(dials_table, 1))


def test_progress_is_shown_per_query(dials, capsys):
    with dials_client(dials, progress=True) as c:
        c.download_histograms(2, dataset=DATASET)
    assert "DIALS th2" in capsys.readouterr().err
