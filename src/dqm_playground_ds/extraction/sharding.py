"""Extraction fanned out over shards of the input list: Argo pods or an HTCondor job array.

Three steps, each safe to re-run:

1. **list**: the source's inputs are written once to an items file (one path per line), so every
   shard sees the same list even if files arrive meanwhile;
2. **extract shard i of N** (``--shard i/N``, ``0 <= i < N``): the inputs whose stable hash falls in
   shard ``i`` are extracted into the shared partition store. Each input has its own partition
   and marker (named from its path), so shards never write the same file. A shard run **never
   prunes**: it knows only its own inputs, and pruning with that list would delete the partitions
   of every other shard;
3. **join**: once every shard is done, partitions and markers of inputs no longer in the items
   file are removed (only here) and the file index is built from the markers.

The shard of an input depends only on its path and ``N`` (SHA-1, not Python's salted ``hash``), so
it is the same in every pod and every run: an input added later does not move the others, whose
partitions stay valid. Every input is in exactly one shard (:func:`split`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dqm_playground_ds.atomic import atomic_write
from dqm_playground_ds.extraction.partitions import PartitionStore, as_store

__all__ = [
    "Shard",
    "join_partitions",
    "read_items",
    "select",
    "shard_of",
    "shard_params",
    "split",
    "write_items",
]

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``: ``Shard.parse("3/8")``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 0 <= i < N and N >= 1")

    @classmethod
    def parse(cls, text: str) -> Shard:
        m = _SHARD.match(str(text))
        if not m:
            raise ValueError(f"shard {text!r}: expected 'i/N' with 0 <= i < N, e.g. '0/8'")
        return cls(int(m.group(1)), int(m.group(2)))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(item: str, count: int) -> int:
    """The shard of an input: a stable hash of its path modulo ``count``."""
    digest = hashlib.sha1(item.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def select(items: Iterable[str], shard: Shard) -> list[str]:
    """The inputs of one shard, sorted (duplicates once)."""
    return sorted({i for i in items if shard_of(i, shard.count) == shard.index})


def split(items: Iterable[str], count: int) -> list[list[str]]:
    """Every shard's inputs: each input in exactly one of the ``count`` lists."""
    out: list[list[str]] = [[] for _ in range(count)]
    for item in sorted(set(items)):
        out[shard_of(item, count)].append(item)
    return out


def shard_params(count: int) -> list[dict[str, str]]:
    """The list an Argo ``withParam`` fans out over: ``[{"shard": "0/N"}, ...]``."""
    return [{"shard": str(Shard(i, count))} for i in range(count)]


def write_items(items: Sequence[str], path: str | Path) -> None:
    """The items file (one input per line), written atomically."""
    bad = [i for i in items if "\n" in i or "\r" in i]
    if bad:
        raise ValueError(f"input paths with a line break cannot go in an items file: {bad[:3]}")
    text = "".join(f"{i}\n" for i in items)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def read_items(path: str | Path) -> list[str]:
    """Inputs from an items file: one per line; blank lines and ``#`` comments are skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"items file {path}: cannot read it ({exc})") from exc
    return [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]


def join_partitions(out_dir: str | Path | PartitionStore, items: Sequence[str]) -> pd.DataFrame:
    """After every shard: prune what no listed input owns, return the file index of ``items``.

    ``out_dir``: the store (a :class:`PartitionStore`, local folder or fsspec URL). An input
    without a marker (its shard has not run, or failed) is an error naming the inputs: the join
    never builds an index with holes, and prunes nothing then.
    """
    from dqm_playground_ds.extraction.store import partition_id
    from dqm_playground_ds.sources import index_frame

    store = as_store(out_dir)
    pids = [partition_id(i) for i in items]
    rows, holes = store.index_rows(pids)
    if holes:
        missing = [items[k] for k in holes]
        raise ValueError(
            f"{store.url}: {len(missing)} input(s) not extracted by any shard (first: "
            f"{missing[:3]}); run the missing shards (or the extraction without --shard) before "
            "the join"
        )
    store.prune(pids)
    return index_frame(rows)
