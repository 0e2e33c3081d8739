"""The partition store on fsspec: the same extraction into a local folder, a ``file://`` URL and
fsspec's in-memory filesystem; markers trusted only when written last; reads with push-down."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from dqm_playground_ds.extraction import (
    DONE_DIR,
    ExtractionError,
    PartitionStore,
    Request,
    extract_many,
    extract_table,
    partition_id,
    read_partitions,
)
from dqm_playground_ds.extraction import store as extraction
from dqm_playground_ds.readers.dqmio import read_dqmio
from dqm_playground_ds.schema import HISTOGRAM_SCHEMA
from dqm_playground_ds.sources import DQMIOFiles

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dqmio"
SAMPLE = Path(__file__).resolve().parents[2] / "data" / "01_raw" / "dqmio"


@pytest.fixture(params=["path", "file_url", "memory"])
def store_url(request, tmp_path, memory_url) -> str:
    """The same store in three places: a plain local path, a file:// URL, fsspec's memory fs."""
    return {
        "path": str(tmp_path / "store"),
        "file_url": f"file://{tmp_path / 'store'}",
        "memory": memory_url,
    }[request.param]


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.drop(columns="data"), b.drop(columns="data"))
    assert len(a) == len(b)
    for x, y in zip(a["data"], b["data"], strict=True):
        np.testing.assert_array_equal(x, y)


def _counting(monkeypatch) -> list[str]:
    read: list[str] = []
    real = extraction.extract_one
    monkeypatch.setattr(extraction, "extract_one", lambda *a: read.append(a[1]) or real(*a))
    return read


def test_extraction_resume_and_prune_are_the_same_on_every_filesystem(
    store_url, inputs, tmp_path, monkeypatch
):
    source = DQMIOFiles(path=str(inputs))
    reference_dir = tmp_path / "reference"
    reference_index = extract_many(source, reference_dir, progress=False)
    index = extract_many(source, store_url, progress=False)
    pd.testing.assert_frame_equal(
        index.drop(columns="seconds"), reference_index.drop(columns="seconds")
    )
    store = PartitionStore(store_url)
    _same(read_partitions(store), read_partitions(reference_dir))
    assert store.partition_ids() == sorted(
        partition_id(str(inputs / n)) for n in ("a.root", "b.root")
    )
    marker = store.marker(partition_id(str(inputs / "c_broken.root")))
    assert marker["row"]["status"] == "bad" and "c_broken.root" in marker["row"]["error"]

    read = _counting(monkeypatch)
    extract_many(source, store_url, progress=False)
    assert read == []  # resumed: every input already done
    (inputs / "b.root").unlink()
    _, index = extract_table(source, Request(), partitions_dir=store_url, progress=False)
    assert read == [] and len(index) == 2  # pruned, nothing read
    listing = store.listing()
    assert listing.partitions == listing.trusted == {partition_id(str(inputs / "a.root"))}
    assert len(listing.markers) == 2


class FailingMarkers(MemoryFileSystem):
    """fsspec's memory filesystem whose marker writes fail while ``failing`` (a full disk, a
    lost connection to the object store): what a crash between partition and marker leaves."""

    failing = False

    def _open(self, path, mode="rb", **kwargs):
        if "w" in mode and self.failing and f"/{DONE_DIR}/" in path:
            raise OSError(28, "No space left on device", path)
        return super()._open(path, mode, **kwargs)


def test_a_partition_whose_marker_was_not_written_is_never_trusted(inputs, memory_url):
    fs = FailingMarkers()
    store = PartitionStore(memory_url, fs=fs)
    source = DQMIOFiles(path=str(inputs))
    extract_many(source, store, progress=False)
    before = store.read()
    victim = inputs / "a.root"
    shutil.copy(FIXTURES / "merged.root", victim)  # the file changes: it is read again
    fs.failing = True
    with pytest.raises(OSError, match="No space left"):
        extract_many(source, store, progress=False)
    fs.failing = False
    pid = partition_id(str(victim))
    listing = store.listing()
    assert pid in listing.partitions and pid not in listing.markers  # the crash's leftovers
    assert str(victim) not in set(store.read()["source"])  # neither the old rows nor the new
    assert set(store.read()["source"]) == set(before["source"]) - {str(victim)}
    assert store.mes() == sorted(set(read_dqmio(inputs / "b.root")["me"]))
    assert not [p for p in fs.find(memory_url) if "/.tmp-" in p]  # no temporary left either
    extract_many(source, store, progress=False)  # the next run reads it again
    _same(store.read(), read_partitions(store))
    assert set(store.read(columns=["source"])["source"]) == {str(victim), str(inputs / "b.root")}


def test_stale_temporaries_on_an_object_store_are_removed_live_ones_kept(inputs, memory_url):
    fs = fsspec.filesystem("memory")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    host = __import__("socket").gethostname()
    stale = f"{memory_url}/.tmp-{dead}@{host}-abc.parquet"
    live = f"{memory_url}/{DONE_DIR}/.tmp-{__import__('os').getpid()}@{host}-def"
    foreign = f"{memory_url}/.tmp-1@another-host-ghi"  # written now: its writer may be alive
    for path in (stale, live, foreign):
        fs.pipe(path, b"half")
    extract_many(DQMIOFiles(path=str(inputs)), memory_url, progress=False)
    assert not fs.exists(stale) and fs.exists(live) and fs.exists(foreign)


def test_workers_cannot_share_an_in_memory_store(inputs, memory_url, tmp_path):
    with pytest.raises(ExtractionError, match="workers: 1"):
        extract_many(DQMIOFiles(path=str(inputs)), memory_url, workers=2, progress=False)
    url = f"file://{tmp_path / 'shared'}"  # a real filesystem: worker processes write into it
    index = extract_many(DQMIOFiles(path=str(inputs)), url, workers=2, progress=False)
    assert index["status"].tolist() == ["ok", "ok", "bad"]
    assert len(PartitionStore(url).partition_ids()) == 2


def test_a_local_store_is_the_folder_it_always_was(inputs, tmp_path):
    out = tmp_path / "out"
    extract_many(DQMIOFiles(path=str(inputs)), f"file://{out}", progress=False)
    pid = partition_id(str(inputs / "a.root"))
    assert (out / f"part-{pid}.parquet").is_file() and (out / DONE_DIR / f"{pid}.json").is_file()
    assert json.loads((out / DONE_DIR / f"{pid}.json").read_text())["row"]["status"] == "ok"
    assert len(pd.read_parquet(out)) == len(read_partitions(out))  # a plain Parquet dataset
    assert PartitionStore(out).same_location(f"file://{out}/")
    assert not PartitionStore(out).same_location(tmp_path / "elsewhere")


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory) -> PartitionStore:
    """The bundled sample (6 files, 7 MEs) extracted into a local store."""
    if not list(SAMPLE.glob("*.root")):
        pytest.skip("bundled sample not generated")
    out = tmp_path_factory.mktemp("sample") / "store"
    extract_many(DQMIOFiles(path=str(SAMPLE)), out, Request(me=(".*PXLayer_.*", ".*TIB")),
                 progress=False)  # fmt: skip
    return PartitionStore(out)


def test_partitions_hold_one_row_group_per_me(sample_store):
    for pid in sample_store.partition_ids():
        meta = pq.read_metadata(sample_store.partition_path(pid))
        col = meta.schema.names.index("me")
        stats = [meta.row_group(k).column(col).statistics for k in range(meta.num_row_groups)]
        assert all(s.min == s.max for s in stats)  # the row group's statistics name its ME
        names = pq.read_table(sample_store.partition_path(pid), columns=["me"])["me"]
        assert [s.min for s in stats] == sorted(set(names.to_pylist()))


def test_read_one_me_and_some_runs_equals_filtering_the_whole_table(sample_store):
    whole = read_partitions(sample_store)
    mes = sample_store.mes()
    assert mes == sorted(whole["me"].unique()) and len(mes) == 7
    assert [me for me, _ in sample_store.iter_mes()] == mes
    runs = sorted(whole["run"].unique())[:2]
    for me in mes[:3]:
        expected = whole[whole["me"] == me].reset_index(drop=True)
        _same(sample_store.read(me=me), expected)
        some = expected[expected["run"].isin(runs)].reset_index(drop=True)
        _same(sample_store.read(me=[me], runs=runs), some)
    two = sample_store.read(me=mes[:2], columns=["run", "lumi", "me", "entries"])
    assert list(two.columns) == ["run", "lumi", "me", "entries"]
    pd.testing.assert_frame_equal(
        two, whole[whole["me"].isin(mes[:2])][list(two.columns)].reset_index(drop=True)
    )
    assert str(two["me"].dtype) == "string"
    assert sample_store.read(me="No/Such/ME").empty
    with pytest.raises(ValueError, match=r"unknown column\(s\) \['nope'\]"):
        sample_store.read(columns=["run", "nope"])


def test_push_down_reads_only_the_row_groups_of_the_me(sample_store):
    """The reader's filter skips row groups by their statistics: fewer bytes than the table."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    paths = [sample_store.partition_path(p) for p in sample_store.partition_ids()]
    dataset = pads.dataset(paths, schema=HISTOGRAM_SCHEMA, format="parquet")
    me = sample_store.mes()[0]
    kept = [
        rg
        for fragment in dataset.get_fragments()
        for rg in fragment.split_by_row_group(filter=pc.field("me") == me)
    ]
    assert len(kept) == len(paths)  # one row group per file, out of seven
    assert sum(f.num_row_groups for f in dataset.get_fragments()) == 7 * len(paths)


def test_stores_written_before_row_groups_per_me_are_still_read(inputs, tmp_path):
    """A partition of an older store holds every ME in one row group: still read and listed."""
    out = tmp_path / "old"
    extract_many(DQMIOFiles(path=str(inputs)), out, progress=False)
    store = PartitionStore(out)
    for pid in store.partition_ids():
        path = store.partition_path(pid)
        table = pq.read_table(path).sort_by("lumi")  # MEs interleaved
        pq.write_table(table, path)
        assert pq.read_metadata(path).num_row_groups == 1
    whole = read_partitions(store)
    assert store.mes() == sorted(whole["me"].unique())
    me = store.mes()[-1]
    _same(store.read(me=me), whole[whole["me"] == me].reset_index(drop=True))


@pytest.mark.parametrize("url", ["", "/", "file://", "memory://"])
def test_a_filesystem_root_is_refused(url):
    with pytest.raises(ValueError, match="no folder"):
        PartitionStore(url)


def test_an_empty_store_reads_as_an_empty_table(memory_url):
    store = PartitionStore(memory_url)
    assert not store.exists() and store.partition_ids() == [] and store.mes() == []
    assert store.read().empty and list(store.read(columns=["run", "me"]).columns) == ["run", "me"]


def test_command_line_shards_and_join_into_a_url(inputs, tmp_path, memory_url, capsys):
    """The job-array steps of the command line with ``--out`` an fsspec URL."""
    items_file = tmp_path / "items.txt"
    assert extraction.main([str(inputs), "--write-items", str(items_file)]) == 0
    for i in range(2):
        args = ["--items-from", str(items_file), "--shard", f"{i}/2", "--out", memory_url]
        assert extraction.main([*args, "--workers", "1"]) == 0
    index_file = tmp_path / "index.parquet"
    join = ["--items-from", str(items_file), "--join", "--out", memory_url]
    assert extraction.main([*join, "--index", str(index_file), "--workers", "1"]) == 0
    assert "2 file(s) ok, 1 bad" in capsys.readouterr().out
    assert pd.read_parquet(index_file)["status"].tolist() == ["ok", "ok", "bad"]
    whole = tmp_path / "whole"
    assert extraction.main([str(inputs), "--out", str(whole), "--workers", "1"]) == 0
    _same(read_partitions(memory_url), read_partitions(whole))
