"""DIALS as the extraction pipeline's histogram source (``kind: dials``) and its Kedro dataset."""

from __future__ import annotations

import pickle

import pandas as pd
import pytest
from kedro.io import DataCatalog, DatasetError

from dqm_playground_ds.datasets.dials import DialsSourceDataset
from dqm_playground_ds.extraction import Request, extract_table
from dqm_playground_ds.platform.dials import DialsSource
from dqm_playground_ds.sources import HistogramSource, SourceError
from tests.platform.dials.conftest import DATASET, TOKEN
from tests.platform.helpers import RUNS, TITLE_2D, TITLES_1D


def test_follows_the_protocol_and_items_are_queries(dclient):
    src = DialsSource(dclient, DATASET, runs=list(RUNS), runs_per_item=2)
    assert isinstance(src, HistogramSource) and src.kind == "dials"
    items = src.items()
    assert len(items) == 4 and all(i.endswith("#workspace=tracker") for i in items)
    assert "th1/?dataset=" in items[0] and "th2/" in items[-1]
    assert pickle.loads(pickle.dumps(src)).items() == items


def test_extraction_reads_dials_like_files(dclient, dials_table, tmp_path):
    src = DialsSource(dclient, DATASET, cache_dir=str(tmp_path / "cache"), runs_per_item=None)
    histograms, index = extract_table(
        src, Request(), partitions_dir=tmp_path / "parts", progress=False
    )
    want = dials_table[dials_table["lumi"] > 0]
    assert len(histograms) == len(want) and (index["status"] == "ok").all()
    again, _ = extract_table(src, Request(), partitions_dir=tmp_path / "parts", progress=False)
    pd.testing.assert_frame_equal(histograms, again)


def test_a_regex_for_one_dimension_leaves_the_other_empty(dclient):
    src = DialsSource(dclient, DATASET, me_regex="zphi")
    one, two = src.items()
    assert src.read(one, None, False).empty
    assert set(src.read(two, None, False)["me"]) == {TITLE_2D}
    nothing = DialsSource(dclient, DATASET, me_regex="^nothing$")
    with pytest.raises(SourceError, match="matches none"):
        nothing.read(nothing.items()[0], None, False)


def test_me_selection_filters_rows(dclient):
    src = DialsSource(dclient, DATASET, dims=[1])
    (item,) = src.items()
    assert set(src.read(item, [TITLES_1D[1]], False)["me"]) == {TITLES_1D[1]}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dims": [3]}, r"dims must be a non-empty subset of \[1, 2\], got \[3\]"),
        ({"runs": [1], "run_range": (1, 2)}, "give runs or run_range, not both"),
        ({"dataset": ""}, "dataset is required"),
    ],
)
def test_bad_configuration(dclient, kwargs, message):
    with pytest.raises(ValueError, match=message):
        DialsSource(dclient, **{"dataset": DATASET, **kwargs})


def test_dataset_from_catalog_config_hides_the_token(dials, monkeypatch, tmp_path):
    monkeypatch.setenv("DIALS_TOKEN", TOKEN)
    catalog = DataCatalog.from_config(
        {
            "raw_histogram_sources": {
                "type": "dqm_playground_ds.datasets.dials.DialsSourceDataset",
                "kind": "dials",
                "base_url": dials.url,
                "dataset": DATASET,
                "dims": [1],
                "run_range": [RUNS[1], None],
                "mes": [TITLES_1D[0]],
                "cache_dir": str(tmp_path),
                "client_args": {"progress": False, "retries": 1},
            }
        }
    )
    src = catalog.load("raw_histogram_sources")
    (item,) = src.items()
    assert len(src.read(item, None, False)) == 2 * 40
    ds = DialsSourceDataset(dataset=DATASET, base_url=dials.url, credentials={"token": "s3cret"})
    assert "s3cret" not in f"{ds!r} {ds._describe()}" and ds._describe()["token"] == "***"
    with pytest.raises(DatasetError, match="kind 'dials'"):
        DialsSourceDataset(dataset=DATASET, kind="dqmio")
    with pytest.raises(DatasetError, match="dims"):
        DialsSourceDataset(dataset=DATASET, dims=[3])


def test_the_dials_environment_reads_the_local_server(dials, monkeypatch, tmp_path):
    """``conf/dials`` as ``kedro run --env=dials`` loads it, pointed at the local DIALS server."""
    from pathlib import Path

    from kedro.config import OmegaConfigLoader

    conf = Path(__file__).resolve().parents[3] / "conf"
    entry = OmegaConfigLoader(str(conf), base_env="base", default_run_env="dials")["catalog"][
        "raw_histogram_sources"
    ]
    assert entry["kind"] == "dials" and entry["type"].endswith("DialsSourceDataset")
    monkeypatch.setenv("DIALS_URL", dials.url)
    monkeypatch.setenv("DIALS_TOKEN", TOKEN)
    entry = {**entry, "cache_dir": str(tmp_path / "c"), "partitions": str(tmp_path / "p"),
             "me_regex": "PXLayer", "client_args": {**entry["client_args"], "progress": False}}  # fmt: skip
    src = DataCatalog.from_config({"raw_histogram_sources": entry}).load("raw_histogram_sources")
    one, two = src.items()
    assert set(src.read(one, None, False)["me"]) == {TITLES_1D[0]}
    assert set(src.read(two, None, False)["me"]) == {TITLE_2D}
