"""Where datasets live, read from catalog configuration: memory, shared volume or object store."""

from __future__ import annotations

import pytest

from dqm_playground_ds.deploy.storage import Catalog, is_shared

ROOT = "/home/kedro_docker"


@pytest.mark.parametrize(
    ("location", "shared"),
    [
        ("data/02_intermediate/h.parquet", True),
        (f"{ROOT}/data/x.pkl", True),
        ("file://data/x.pkl", True),
        ("s3://bucket/dqm/h.parquet", True),
        ("root://eoscms.cern.ch//eos/cms/store/x.root", True),
        ("/tmp/model.pkl", False),
        ("logs/run.json", False),
        ("data/../conf/x.yml", False),
        ("memory://x", False),
    ],
)
def test_is_shared(location, shared):
    assert is_shared(location, ("data",), ROOT) is shared


def test_no_volume_means_only_remote_urls_are_shared():
    assert not is_shared("data/x.pq", (), ROOT)
    assert is_shared("gs://b/x.pq", (), ROOT)


def test_catalog_classification():
    catalog = Catalog(
        {
            "_anchor": {"type": "pandas.CSVDataset"},  # YAML anchors are not datasets
            "table": {
                "type": "pandas.ParquetDataset",
                "filepath": "s3://b/t.pq",
                "credentials": "s3_creds",  # never resolved: the generator has no secrets
            },
            "preset": {"type": "MemoryDataset", "data": {"a": 1}},
            "mem": {"type": "kedro.io.MemoryDataset"},
            "{name}_plots": {
                "type": "CachedDataset",
                "dataset": {"type": "matplotlib.MatplotlibDataset", "filepath": "data/{name}"},
            },
            "{name}_cached": {
                "type": "kedro.io.CachedDataset",
                "dataset": {"type": "pandas.ParquetDataset", "filepath": "data/{name}.pq"},
            },
        }
    )
    table = catalog.info("table")
    assert (table.memory, table.location) == (False, "s3://b/t.pq")
    assert catalog.info("preset").preset and catalog.info("preset").memory
    assert catalog.is_memory("mem") and not catalog.info("mem").preset
    assert catalog.is_memory("anything_else")  # no entry: `kedro run` makes a MemoryDataset
    # figures cached for a later node cannot be loaded back from PNG: process-local
    plots = catalog.info("overview_plots")
    assert plots.memory and plots.location == "data/overview"
    # a cached dataset that can be loaded is read from its inner location by other pods
    cached = catalog.info("scores_cached")
    assert not cached.memory and cached.location == "data/scores.pq"
