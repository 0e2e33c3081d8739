"""Sharded extraction: every input in exactly one shard, shards that never touch each other's
partitions, a join that prunes and indexes; the command line an HTCondor job array uses."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dqm_playground_ds.extraction import DONE_DIR, partition_id, read_partitions, sharding
from dqm_playground_ds.extraction import store as extraction
from dqm_playground_ds.extraction.sharding import Shard

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dqmio"
ITEMS = [
    f"root://eos.example//store/dqm/run{r}/file_{k:03d}.root" for r in range(5) for k in range(97)
]


@pytest.mark.parametrize("count", [1, 2, 3, 7, 16, 500, 1000])
def test_every_input_in_exactly_one_shard(count):
    shards = [sharding.select(ITEMS, Shard(i, count)) for i in range(count)]
    flat = [item for shard in shards for item in shard]
    assert sorted(flat) == sorted(ITEMS) and len(flat) == len(set(flat))
    assert shards == sharding.split(ITEMS, count)
    assert [p["shard"] for p in sharding.shard_params(count)] == [
        f"{i}/{count}" for i in range(count)
    ]
    if count <= 16:  # a hash spreads inputs evenly enough for a fan-out
        sizes = [len(s) for s in shards]
        assert max(sizes) <= 1.6 * len(ITEMS) / count + 5


def test_shards_do_not_depend_on_order_process_or_other_inputs():
    shuffled = random.Random(1).sample(ITEMS, len(ITEMS))
    assert sharding.split(shuffled, 8) == sharding.split(ITEMS, 8)
    more = sharding.split([*ITEMS, "root://eos.example//store/dqm/new.root"], 8)
    for before, after in zip(sharding.split(ITEMS, 8), more, strict=True):
        assert set(before) <= set(after)  # an added input moves no other input
    code = "from dqm_playground_ds.extraction.sharding import shard_of; print([shard_of(f'f{i}', 8) for i in range(50)])"
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    )  # fmt: skip
    assert other.stdout.strip() == str([sharding.shard_of(f"f{i}", 8) for i in range(50)])


@pytest.mark.parametrize("text", ["3", "3/3", "-1/2", "a/b", "1/0", ""])
def test_bad_shard_is_refused(text):
    with pytest.raises(ValueError, match="shard"):
        Shard.parse(text)


def test_items_file_round_trip(tmp_path):
    path = tmp_path / "list" / "items.txt"
    sharding.write_items(ITEMS[:3], path)
    path.write_text(path.read_text() + "\n# a comment\n   \n")
    assert sharding.read_items(path) == ITEMS[:3]
    with pytest.raises(ValueError, match="line break"):
        sharding.write_items(["a\nb"], path)
    with pytest.raises(ValueError, match="cannot read"):
        sharding.read_items(tmp_path / "missing.txt")


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    for k in range(6):
        shutil.copy(
            FIXTURES / ("all_types.root" if k % 2 else "many_baskets.root"), d / f"f{k}.root"
        )
    (d / "broken.root").write_bytes(b"not root" * 50)
    return d


def _cli(*args: str) -> int:
    return extraction.main([*args, "--workers", "1"])


def test_job_array_shards_then_join(inputs, tmp_path, capsys):
    """As an HTCondor job array: list once, N shard jobs into one folder, then the join."""
    out, items_file = tmp_path / "parts", tmp_path / "items.txt"
    # a partition left by an input removed since: a shard must not prune it, the join must
    stale = "/gone/old.root"
    extraction.write_partition(
        read_partitions(inputs.parent / "nothing"), out / f"part-{partition_id(stale)}.parquet"
    )
    (out / DONE_DIR).mkdir(parents=True)
    (out / DONE_DIR / f"{partition_id(stale)}.json").write_text(
        '{"row": {"path": "/gone/old.root"}}'
    )

    assert extraction.main([str(inputs), "--write-items", str(items_file)]) == 0
    items = sharding.read_items(items_file)
    assert len(items) == 7
    n = 3
    for i in range(n):
        before = set(out.glob("part-*.parquet"))
        assert _cli("--items-from", str(items_file), "--shard", f"{i}/{n}", "--out", str(out),
                    "--ignore-missing") == 0  # fmt: skip
        after = set(out.glob("part-*.parquet"))
        assert before <= after  # a shard removes nothing, the stale partition included
        mine = {f"part-{partition_id(x)}.parquet" for x in sharding.select(items, Shard(i, n))}
        assert {p.name for p in after - before} <= mine  # and writes only its own inputs
    with pytest.raises(SystemExit):
        _cli("--join", "--out", str(out))  # the join needs the list the shards were cut from
    index_file = tmp_path / "index.parquet"
    assert (
        _cli(
            "--items-from", str(items_file), "--join", "--out", str(out), "--index", str(index_file)
        )
        == 0
    )
    assert not (out / f"part-{partition_id(stale)}.parquet").exists()
    assert not (out / DONE_DIR / f"{partition_id(stale)}.json").exists()
    index = pd.read_parquet(index_file)
    assert sorted(index["path"]) == sorted(items)
    assert (index["status"] == "bad").sum() == 1
    # the same table as one unsharded extraction
    whole = tmp_path / "whole"
    assert _cli(str(inputs), "--out", str(whole), "--ignore-missing") == 0
    a, b = read_partitions(out, items), read_partitions(whole, items)
    pd.testing.assert_frame_equal(a.drop(columns=["data"]), b.drop(columns=["data"]))
    assert "6 file(s) ok, 1 bad" in capsys.readouterr().out


def test_join_refuses_an_index_with_holes(inputs, tmp_path):
    out, items_file = tmp_path / "parts", tmp_path / "items.txt"
    extraction.main([str(inputs), "--write-items", str(items_file)])
    items = sharding.read_items(items_file)
    _cli("--items-from", str(items_file), "--shard", "0/2", "--out", str(out), "--ignore-missing")
    missing = sharding.select(items, Shard(1, 2))
    assert missing
    with pytest.raises(ValueError, match=f"{len(missing)} input\\(s\\) not extracted"):
        sharding.join_partitions(out, items)
    assert len(list(out.glob("part-*.parquet"))) == len(
        [i for i in sharding.select(items, Shard(0, 2)) if "broken" not in i]
    )  # nothing was pruned by the failed join
