"""The platform as the extraction pipeline's histogram source."""

from __future__ import annotations

import pickle

import pandas as pd
import pytest

from dqm_playground_ds.extraction import Request, extract_table
from dqm_playground_ds.platform import PlaygroundAPI
from dqm_playground_ds.sources import HistogramSource, SourceError
from tests.platform.helpers import RUNS, TITLE_2D, TITLES_1D, client_for, expected


@pytest.fixture
def source(client):
    return PlaygroundAPI(client)


def test_follows_the_protocol(source):
    assert isinstance(source, HistogramSource)
    assert source.kind == "playground_api"


def test_items_are_query_urls(client):
    src = PlaygroundAPI(
        client, titles=[TITLES_1D[0], TITLE_2D], runs=list(RUNS), runs_per_item=2, ls_range=(1, 20)
    )
    items = src.items()
    assert len(items) == 4
    assert items[0].startswith(f"{client.base_url}api/lumisection_histograms_1d/?")
    assert "lumisection__ls_number__lte=20" in items[0] and "title=" in items[0]
    assert len(PlaygroundAPI(client).items()) == 2  # one per dimension
    ranged = PlaygroundAPI(client, run_range=(RUNS[0], RUNS[0] + 99), runs_per_item=50)
    assert len(ranged.items()) == 4  # two run chunks, two dimensions


def test_describe_and_read_one_download(source, platform, table):
    item = source.items()[1]  # all 2D histograms
    before = sum(platform.requests.values())
    info = source.describe(item)
    got = source.read(item, None, False)
    assert sum(platform.requests.values()) - before == 3  # 3 pages, once
    assert info["runs"] == list(RUNS) and info["n_lumis"] == 120 and info["n_mes"] == 1
    assert info["n_histograms"] == len(got) == len(expected(table, 2))


def test_a_2d_title_falls_back_to_the_2d_endpoint(client):
    src = PlaygroundAPI(client, titles=[TITLE_2D], runs=[RUNS[0]])
    (item,) = src.items()
    assert "histograms_1d" in item
    info = src.describe(item)
    assert "histograms_2d" in info["path"] and info["n_histograms"] == 40
    assert src.read(item, None, False)["dim"].eq(2).all()


def test_unknown_title_is_a_bad_item_or_ignored(client):
    src = PlaygroundAPI(client, titles=["no/such/ME"])
    (item,) = src.items()
    assert src.describe(item)["n_histograms"] == 0
    with pytest.raises(SourceError, match="no 1D, 2D histograms titled"):
        src.read(item, None, False, missing="raise")
    assert src.read(item, None, False, missing="ignore").empty


def test_me_selection_filters_rows(source):
    item = source.items()[0]
    got = source.read(item, [r".*charge_PXLayer_\d"], False)
    assert set(got["me"]) == {TITLES_1D[0]}


def test_server_errors_become_source_errors(platform):
    platform.faults.update(error_rate=1.0)
    with client_for(platform, retries=0) as c:
        src = PlaygroundAPI(c)
        with pytest.raises(SourceError, match="503"):
            src.describe(src.items()[0])


def test_pickles_for_worker_processes(source):
    source.describe(source.items()[0])
    clone = pickle.loads(pickle.dumps(source))
    assert clone._memo is None and clone.items() == source.items()


def test_extraction_reads_the_platform_like_files(client, table, tmp_path):
    src = PlaygroundAPI(client, cache_dir=str(tmp_path / "cache"))
    histograms, index = extract_table(
        src, Request(), partitions_dir=tmp_path / "parts", progress=False
    )
    want = table[table["lumi"] > 0]
    assert len(histograms) == len(want)
    assert (index["status"] == "ok").all() and index["path"].str.contains("/api/").all()
    again, _ = extract_table(src, Request(), partitions_dir=tmp_path / "parts", progress=False)
    pd.testing.assert_frame_equal(histograms, again)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dims": [3]}, r"dims must be a non-empty subset of \[1, 2\], got \[3\]"),
        ({"runs": [1], "run_range": (1, 2)}, "give runs or run_range, not both"),
        ({"runs_per_item": 0}, "runs_per_item must be >= 1, got 0"),
    ],
)
def test_bad_configuration(client, kwargs, message):
    with pytest.raises(ValueError, match=message):
        PlaygroundAPI(client, **kwargs)
