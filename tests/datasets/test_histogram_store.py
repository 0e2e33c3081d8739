"""HistogramStoreDataset: the partition store from the catalog (any fsspec URL), the extraction
node writing through it, and the source's deprecated ``partitions`` key."""

from __future__ import annotations

import pytest
from kedro.io import DataCatalog, DatasetError

from dqm_playground_ds.datasets import HistogramSourceDataset, HistogramStoreDataset
from dqm_playground_ds.extraction import PartitionStore, read_partitions
from dqm_playground_ds.pipelines.data_extraction.nodes import extract_histograms
from dqm_playground_ds.pipelines.data_extraction.params import ExtractionParams
from dqm_playground_ds.readers.dqmio import read_dqmio


def _extract(*args, **kwargs):
    """The node's outputs, its lazy table read into one frame."""
    table, index = extract_histograms(*args, **kwargs)
    return table.read(), index


PARAMS = ExtractionParams(progress=False)


def test_the_catalog_entry_loads_a_store_the_node_writes_through(dqmio_folder, memory_url):
    catalog = DataCatalog.from_config(
        {
            "histogram_store": {
                "type": "dqm_playground_ds.datasets.HistogramStoreDataset",
                "path": memory_url,
                "fs_args": {"skip_instance_cache": True},
            },
            "raw_histogram_sources": {
                "type": "dqm_playground_ds.datasets.HistogramSourceDataset",
                "path": str(dqmio_folder),
            },
        }
    )
    assert not catalog.exists("histogram_store")
    store = catalog.load("histogram_store")
    assert isinstance(store, PartitionStore) and store.protocol == "memory"
    histograms, index = _extract(catalog.load("raw_histogram_sources"), PARAMS, store)
    assert catalog.exists("histogram_store")
    assert (index["status"] == "ok").all()
    assert len(histograms) == len(read_dqmio(dqmio_folder / "a.root")) + len(
        read_dqmio(dqmio_folder / "b.root")
    )
    assert len(read_partitions(store)) == len(histograms)
    assert not (dqmio_folder.parent / "stores").exists()  # nothing landed on the local disk


def test_description_hides_credentials_and_save_is_refused(tmp_path):
    ds = HistogramStoreDataset(path=str(tmp_path / "s"), credentials={"secret": "s3cr3t"})
    assert "s3cr3t" not in repr(ds) and "***" in repr(ds)
    with pytest.raises(DatasetError, match="written by the extraction node"):
        ds.save(PartitionStore(tmp_path / "s"))
    with pytest.raises(DatasetError, match="`path` must be"):
        HistogramStoreDataset(path="")
    with pytest.raises(DatasetError, match="nosuchprotocol://x"):
        HistogramStoreDataset(path="nosuchprotocol://x").load()


def test_the_partitions_key_still_works_with_a_deprecation_warning(dqmio_folder, tmp_path):
    parts = tmp_path / "parts"
    with pytest.warns(FutureWarning, match="`partitions: .*` is deprecated.*histogram_store"):
        source = HistogramSourceDataset(path=str(dqmio_folder), partitions=str(parts)).load()
    _extract(source, PARAMS)
    assert len(PartitionStore(parts).partition_ids()) == 2
    # the same place given twice is fine; two different places is an error naming both
    _extract(source, PARAMS, PartitionStore(f"file://{parts}"))
    with pytest.raises(ValueError, match="two partition stores"):
        _extract(source, PARAMS, PartitionStore(tmp_path / "other"))
