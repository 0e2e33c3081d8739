"""The partitioned histogram store on any fsspec filesystem: a local folder, ``file://``,
``memory://``, ``s3://``, ``root://``...

Layout under the store's root::

    part-<id>.parquet     the rows of one input, one row group per ME (so a read of one ME skips
                          the others' row groups by their statistics)
    _done/<id>.json       its marker: the input's fingerprint and file-index row
    .tmp-<pid>@<host>-*   temporaries of writers (ignored by every reader, removed when stale)

Every file is written under a temporary name beside its target, then moved into place: an atomic
rename on a local filesystem, a copy and delete on an object store. So a reader trusts only
partitions that have a marker: :meth:`PartitionStore.put` removes an input's marker before it
replaces the partition and writes the new marker last, and :meth:`PartitionStore.drop` removes the
marker first. Local stores are written exactly as before (``atomic.atomic_write``: file modes,
stale temporaries of dead writers), and the folder stays a plain Parquet dataset
(``pandas.read_parquet(folder)``).

The class is Kedro-free; :class:`~dqm_playground_ds.datasets.HistogramStoreDataset` hands it to
the extraction node from the catalog.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import posixpath
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from dqm_playground_ds.atomic import (
    FOREIGN_STALE_SECONDS,
    TMP_PREFIX,
    atomic_write,
    remove_stale_temporaries,
)
from dqm_playground_ds.histogram_tables import ParquetHistograms
from dqm_playground_ds.schema import COLUMNS, HISTOGRAM_SCHEMA, Duplicates

__all__ = ["DONE_DIR", "Listing", "PartitionStore", "as_store", "write_parquet_partition"]

DONE_DIR = "_done"
PART_PREFIX, PART_SUFFIX = "part-", ".parquet"
_LOCAL_PROTOCOLS = {"file", "local"}
# filesystems whose content lives in one process: worker processes would write into their own copy
_PROCESS_LOCAL_PROTOCOLS = {"memory"}


@dataclass(frozen=True)
class Listing:
    """Partition and marker ids found by one listing of the store (two ``ls`` calls)."""

    partitions: frozenset[str]
    markers: frozenset[str]

    @property
    def trusted(self) -> frozenset[str]:
        """Inputs whose partition is complete: it has a marker (the marker is written last)."""
        return self.partitions & self.markers


class PartitionStore:
    """One Parquet partition and one JSON marker per input id, under ``url``.

    ``storage_options`` go to the fsspec filesystem (``key``/``secret``/``endpoint_url``... for
    ``s3://``); ``fs`` passes a filesystem instance instead. Picklable, so worker processes write
    into the same store (except ``memory://``, which lives in one process).
    """

    def __init__(
        self, url: str | os.PathLike[str], *, fs: Any = None, **storage_options: Any
    ) -> None:
        text = os.fspath(url)
        protocol, rest = fsspec.core.split_protocol(text)
        if not rest.strip("/"):  # "" or "/" would make pruning delete files of a filesystem root
            raise ValueError(f"partition store: {text!r} is no folder or URL of a folder")
        self.url = text
        if fs is not None:
            self.fs, self.root = fs, fs._strip_protocol(text).rstrip("/") or "/"
        elif protocol is None or protocol in _LOCAL_PROTOCOLS:
            # kept as given (a relative path stays relative to the working directory, as before)
            self.fs, self.root = LocalFileSystem(), rest.rstrip("/") or "/"
        else:
            self.fs, root = fsspec.core.url_to_fs(text, **storage_options)
            self.root = root.rstrip("/") or "/"
        self.local = isinstance(self.fs, LocalFileSystem)
        self.protocol = "file" if self.local else (protocol or "file")

    def __repr__(self) -> str:
        return f"PartitionStore({self.url!r})"

    @property
    def shared_between_processes(self) -> bool:
        """Whether worker processes see what this process writes (not for ``memory://``)."""
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        return not set(protocols) & _PROCESS_LOCAL_PROTOCOLS

    def same_location(self, other: str | os.PathLike[str] | PartitionStore) -> bool:
        """Whether ``other`` (a path, URL or store) names this store's root."""
        other = as_store(other)
        if type(other.fs) is not type(self.fs):
            return False
        if self.local:
            return os.path.abspath(self.root) == os.path.abspath(other.root)
        return self.root == other.root

    # -- paths ------------------------------------------------------------------------------------
    def _join(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def partition_path(self, pid: str) -> str:
        return self._join(f"{PART_PREFIX}{pid}{PART_SUFFIX}")

    def marker_path(self, pid: str) -> str:
        return self._join(DONE_DIR, f"{pid}.json")

    # -- housekeeping -----------------------------------------------------------------------------
    def exists(self) -> bool:
        return bool(self.fs.exists(self.root))

    def ensure(self) -> None:
        """Create the root and the marker folder (object stores have no folders: a no-op there)."""
        if self.local:
            Path(self.root, DONE_DIR).mkdir(parents=True, exist_ok=True)
        else:
            self.fs.makedirs(self._join(DONE_DIR), exist_ok=True)

    def remove_stale_temporaries(self) -> list[str]:
        """Delete temporaries whose writer is gone (a dead process of this host, or a day old)."""
        if self.local:
            root = Path(self.root)
            return [str(p) for p in remove_stale_temporaries(root, root / DONE_DIR)]
        removed = []
        for folder in (self.root, self._join(DONE_DIR)):
            for info in self._ls(folder):
                name = posixpath.basename(info["name"].rstrip("/"))
                if name.startswith(TMP_PREFIX) and _stale(name, _age(info)):
                    with contextlib.suppress(FileNotFoundError):
                        self.fs.rm_file(info["name"])
                        removed.append(info["name"])
        return removed

    def _ls(self, folder: str) -> list[dict[str, Any]]:
        try:
            return [i for i in self.fs.ls(folder, detail=True) if i.get("type") != "directory"]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def listing(self) -> Listing:
        """Partition ids and marker ids, in one listing of the root and one of ``_done``."""
        parts, markers = set(), set()
        for info in self._ls(self.root):
            name = posixpath.basename(info["name"].rstrip("/"))
            if name.startswith(PART_PREFIX) and name.endswith(PART_SUFFIX):
                parts.add(name[len(PART_PREFIX) : -len(PART_SUFFIX)])
        for info in self._ls(self._join(DONE_DIR)):
            name = posixpath.basename(info["name"].rstrip("/"))
            if name.endswith(".json") and not name.startswith(TMP_PREFIX):
                markers.add(name[: -len(".json")])
        return Listing(frozenset(parts), frozenset(markers))

    # -- writing ----------------------------------------------------------------------------------
    def _write(self, target: str, write: Callable[[IO[bytes]], object], suffix: str) -> None:
        """``write(file)`` into a temporary beside ``target``, then move it onto ``target``."""
        if self.local:
            atomic_write(target, lambda tmp: _write_local(tmp, write), suffix=suffix)
            return
        folder = posixpath.dirname(target)
        tmp = posixpath.join(folder, f"{_tmp_prefix()}{uuid.uuid4().hex[:8]}{suffix}")
        try:
            with self.fs.open(tmp, "wb") as f:
                write(f)
            self.fs.mv(tmp, target)
        except BaseException:
            with contextlib.suppress(Exception):
                if self.fs.exists(tmp):
                    self.fs.rm_file(tmp)
            raise

    def _remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(path)

    def write_partition(self, pid: str, table: pd.DataFrame) -> None:
        """The input's rows, grouped by ME (one row group each), written atomically."""
        self._write(
            self.partition_path(pid), lambda f: write_parquet_partition(table, f), PART_SUFFIX
        )

    def write_marker(self, pid: str, marker: dict[str, Any]) -> None:
        data = json.dumps(marker, default=_json_default).encode()
        self._write(self.marker_path(pid), lambda f: f.write(data), "")

    def remove_marker(self, pid: str) -> None:
        self._remove(self.marker_path(pid))

    def remove_partition(self, pid: str) -> None:
        self._remove(self.partition_path(pid))

    def put(self, pid: str, table: pd.DataFrame | None, marker: dict[str, Any]) -> None:
        """Record one input: its partition (none if ``table`` is empty), then its marker.

        The old marker goes first, so no reader trusts a partition while it is replaced.
        """
        self.remove_marker(pid)
        if table is not None and len(table):
            self.write_partition(pid, table)
        else:
            self.remove_partition(pid)
        self.write_marker(pid, marker)

    def drop(self, pid: str) -> None:
        """Forget an input: marker first (its partition is no longer trusted), then partition."""
        self.remove_marker(pid)
        self.remove_partition(pid)

    def prune(self, keep: Iterable[str]) -> list[str]:
        """Drop every input whose id is not in ``keep``; return the ids dropped."""
        keep = set(keep)
        listing = self.listing()
        gone = sorted((listing.partitions | listing.markers) - keep)
        for pid in gone:
            self.drop(pid)
        return gone

    # -- markers and the file index ---------------------------------------------------------------
    def marker(self, pid: str) -> dict[str, Any] | None:
        """The input's marker, or None when it has none (or an unreadable one)."""
        try:
            with self.fs.open(self.marker_path(pid), "rb") as f:
                return json.loads(f.read())
        except (OSError, ValueError):
            return None

    def index_rows(self, pids: Sequence[str]) -> tuple[list[dict[str, Any]], list[int]]:
        """File-index rows of the markers of ``pids``, and the positions that have none."""
        known = self.listing().markers
        rows, missing = [], []
        for k, pid in enumerate(pids):
            marker = self.marker(pid) if pid in known else None
            if marker is None or "row" not in marker:
                missing.append(k)
            else:
                rows.append(marker["row"])
        return rows, missing

    # -- reading ----------------------------------------------------------------------------------
    def partition_ids(self, pids: Iterable[str] | None = None) -> list[str]:
        """Trusted partitions (with a marker): those of ``pids`` in their order, else all sorted."""
        trusted = self.listing().trusted
        if pids is None:
            return sorted(trusted)
        return [p for p in dict.fromkeys(pids) if p in trusted]

    def table(
        self, pids: Iterable[str] | None = None, *, duplicates: Duplicates | None = None
    ) -> ParquetHistograms:
        """The trusted partitions of ``pids`` (default: all) as one lazily read
        :class:`~dqm_playground_ds.histogram_tables.HistogramTable`: reads push their ME and run
        filters down to the partitions' row groups; ``duplicates`` is applied to keys met in
        several partitions."""
        paths = [self.partition_path(p) for p in self.partition_ids(pids)]
        return ParquetHistograms(paths, fs=self.fs, duplicates=duplicates, name=self.url)

    def read(
        self,
        me: str | Sequence[str] | None = None,
        runs: Iterable[int] | None = None,
        columns: Sequence[str] | None = None,
        *,
        pids: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Rows of the MEs ``me`` (exact names) and runs ``runs`` only, with ``columns`` only.

        The filter is pushed down to Parquet: partitions and row groups whose statistics exclude
        the selection are not read, so reading one ME of many costs about that ME's share. Rows
        come sorted by (run, lumi, me) when those columns are read, in the schema's dtypes; an ME
        or run the store lacks selects nothing.
        """
        return self.table(pids).read(me, runs, columns)

    def read_arrow(
        self,
        me: str | Sequence[str] | None = None,
        runs: Iterable[int] | None = None,
        columns: Sequence[str] | None = None,
        *,
        pids: Iterable[str] | None = None,
    ) -> pa.Table | None:
        """:meth:`read` as an Arrow table in partition order (None when the store is empty)."""
        return self.table(pids).read_arrow(me, runs, columns)

    def iter_partitions(self, pids: Iterable[str] | None = None) -> Iterator[pd.DataFrame]:
        """The trusted partitions one at a time (bounded memory), in the schema's dtypes."""
        for pid in self.partition_ids(pids):
            with self.fs.open(self.partition_path(pid), "rb") as f:
                df = pq.read_table(f).to_pandas()
            yield df.astype({k: v for k, v in COLUMNS.items() if k != "data"})

    def mes(self, pids: Iterable[str] | None = None) -> list[str]:
        """The MEs held by the trusted partitions, sorted, mostly from Parquet footers alone."""
        return self.table(pids).mes()

    def iter_mes(
        self, mes: Iterable[str] | None = None, **read_kwargs: Any
    ) -> Iterator[tuple[str, pd.DataFrame]]:
        """``(me, rows)`` for each ME in turn: memory follows the largest ME, not the store."""
        for me in self.mes() if mes is None else mes:
            yield me, self.read(me=me, **read_kwargs)


def as_store(target: str | os.PathLike[str] | PartitionStore) -> PartitionStore:
    """A store from a store, a local path or a URL."""
    return target if isinstance(target, PartitionStore) else PartitionStore(target)


def _grouped_by_me(table: pd.DataFrame) -> pa.Table:
    """Rows in ME order (stable: each ME's rows keep their order), in the histogram schema."""
    if len(table) and not table["me"].is_monotonic_increasing:
        table = table.sort_values("me", kind="stable")
    return pa.Table.from_pandas(table, schema=HISTOGRAM_SCHEMA, preserve_index=False)


def write_parquet_partition(table: pd.DataFrame, f: IO[bytes]) -> None:
    """A partition's bytes: rows grouped by ME, one row group each (its statistics name it)."""
    _write_parquet(_grouped_by_me(table), f)


def _write_parquet(arrow: pa.Table, f: IO[bytes]) -> None:
    """One row group per ME (row-group statistics then name it), the writer's defaults otherwise."""
    codes = pc.dictionary_encode(arrow.column("me")).combine_chunks().indices.to_numpy()
    bounds = [0, *(np.flatnonzero(np.diff(codes)) + 1).tolist(), len(codes)]
    with pq.ParquetWriter(f, arrow.schema) as writer:
        for start, stop in itertools.pairwise(bounds):
            if stop > start or len(bounds) == 2:
                writer.write_table(arrow.slice(start, stop - start))


def _write_local(tmp: str, write: Callable[[IO[bytes]], object]) -> None:
    with open(tmp, "wb") as f:
        write(f)


def _tmp_prefix() -> str:
    return f"{TMP_PREFIX}{os.getpid()}@{socket.gethostname()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(name: str, age: float | None) -> bool:
    """The rule of :func:`dqm_playground_ds.atomic.is_stale`, for a name and an age."""
    pid_text, _, rest = name[len(TMP_PREFIX) :].partition("@")
    host = rest.rsplit("-", 1)[0]
    if pid_text.isdigit() and rest and host == socket.gethostname():
        return not _alive(int(pid_text))
    return age is not None and age > FOREIGN_STALE_SECONDS


def _age(info: dict[str, Any]) -> float | None:
    """Seconds since an object was written, from whichever field its filesystem reports."""
    for key in ("mtime", "LastModified", "last_modified", "created", "modified"):
        value = info.get(key)
        if isinstance(value, datetime):
            return time.time() - value.timestamp()
        if isinstance(value, (int, float)):
            return time.time() - float(value)
    return None


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)
