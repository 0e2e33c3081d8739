"""The fan-out pod commands: list -> shards -> join with the Kedro configuration's source and
parameters, after which the extraction node finds every input done and reads nothing."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import fsspec
import pytest
from kedro.io import DataCatalog, MemoryDataset

from dqm_playground_ds.datasets import HistogramSourceDataset, HistogramStoreDataset
from dqm_playground_ds.deploy import fanout
from dqm_playground_ds.extraction import sharding
from dqm_playground_ds.extraction import store as extraction
from dqm_playground_ds.pipelines.data_extraction.nodes import extract_histograms
from dqm_playground_ds.pipelines.data_extraction.params import ExtractionParams
from dqm_playground_ds.schema import empty_histograms


def _extract(*args, **kwargs):
    """The node's outputs, its lazy table read into one frame."""
    table, index = extract_histograms(*args, **kwargs)
    return table.read(), index


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dqmio"
# four copies of one file: the same keys in every input, kept once
PARAMS = ExtractionParams(duplicates="first", progress=False)


def _context(tmp_path: Path) -> SimpleNamespace:
    src = tmp_path / "in"
    src.mkdir()
    for k in range(4):
        shutil.copy(FIXTURES / "all_types.root", src / f"f{k}.root")
    source = HistogramSourceDataset(
        kind="dqmio", path=str(src), pattern="*.root", partitions=str(tmp_path / "parts")
    )
    catalog = DataCatalog({fanout.SOURCE: source, fanout.INDEX: MemoryDataset()})
    return SimpleNamespace(catalog=catalog, params={fanout.PARAMS: PARAMS})


def test_list_shards_join_then_the_node_reads_nothing(tmp_path, monkeypatch):
    context = _context(tmp_path)
    items_file = str(tmp_path / "items.txt")
    shards = fanout.list_inputs(context, 6, items_file)  # more shards than inputs: some empty
    assert shards == [{"shard": f"{i}/6"} for i in range(6)]
    assert len(sharding.read_items(items_file)) == 4
    for s in shards:
        assert fanout.extract_shard(context, sharding.Shard.parse(s["shard"]), items_file) == 0
    assert fanout.join_shards(context, items_file) == 4
    assert len(context.catalog.load(fanout.INDEX)) == 4

    def no_read(*args, **kwargs):
        raise AssertionError("the node read an input the shards had extracted")

    monkeypatch.setattr(extraction, "extract_one", no_read)
    table, index = _extract(context.catalog.load(fanout.SOURCE), PARAMS)
    assert len(index) == 4 and (index["status"] == "ok").all() and len(table)


def test_params_syntax_and_stdout_holds_only_json(capsys):
    assert fanout.parse_params("data_extraction.workers=4,a=x") == {
        "data_extraction": {"workers": 4},
        "a": "x",
    }
    with pytest.raises(ValueError, match="key=value"):
        fanout.parse_params("oops")
    capsys.readouterr()
    assert fanout.main(["extract", "--env", "argo"]) == 2  # no --shard: a one-line error
    err = capsys.readouterr()
    assert "needs --shard" in err.err and err.out == ""


def test_fan_out_into_the_catalogs_store_on_another_filesystem(tmp_path, monkeypatch):
    """The shards write into the `histogram_store` dataset (here fsspec's memory filesystem, as
    an object store would be), the join prunes there, and the node then reads nothing."""
    url = f"memory://fanout/{tmp_path.name}"
    context = _context(tmp_path)
    source = HistogramSourceDataset(kind="dqmio", path=str(tmp_path / "in"), pattern="*.root")
    store = HistogramStoreDataset(path=url)
    context.catalog = DataCatalog(
        {fanout.SOURCE: source, fanout.STORE: store, fanout.INDEX: MemoryDataset()}
    )
    items_file = str(tmp_path / "items.txt")
    stale = store.load()
    stale.write_partition("gone", empty_histograms())
    stale.write_marker("gone", {"row": {"path": "/gone.root"}})
    try:
        for s in fanout.list_inputs(context, 3, items_file):
            fanout.extract_shard(context, sharding.Shard.parse(s["shard"]), items_file)
        assert "gone" in stale.listing().trusted  # no shard prunes
        assert fanout.join_shards(context, items_file) == 4
        assert "gone" not in stale.listing().partitions | stale.listing().markers
        assert not (tmp_path / "parts").exists()  # nothing went to the old partitions folder

        def no_read(*args, **kwargs):
            raise AssertionError("the node read an input the shards had extracted")

        monkeypatch.setattr(extraction, "extract_one", no_read)
        table, index = _extract(source.load(), PARAMS, store.load())
        assert len(index) == 4 and (index["status"] == "ok").all() and len(table)
    finally:
        fsspec.filesystem("memory").rm(url, recursive=True)
