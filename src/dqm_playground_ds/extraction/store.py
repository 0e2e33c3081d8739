"""Extraction of many inputs at once: parallel, resumable and incremental.

Every input (file or API query) becomes one Parquet partition ``part-<id>.parquet`` in a partition
store (a local folder or any fsspec URL: :mod:`dqm_playground_ds.extraction.partitions`), plus a
small marker ``_done/<id>.json`` holding its file-index row and a fingerprint of what was asked (ME
selection, run-level flag, file size and modification time). The marker is removed before the
partition is replaced and written last, and both are moved into place from temporaries, so:

- an interrupted run resumes without re-reading finished inputs (their markers exist);
- a later run reads only new or changed inputs (incremental), and re-reads everything when the ME
  selection changes;
- a bad input gets a marker with ``status: bad`` and its error, and no partition; it is retried on
  request (``retry_bad``), when its error was environmental (permission, I/O, timeout, vanished),
  or when the file changed (its fingerprint);
- never stale: an input that is bad, gives no rows, is re-selected or is removed has its old
  partition deleted, so the folder only ever holds what the current inputs and request give;
- the fingerprint (size, mtime, inode) is taken before and after the read: a file replaced while it
  was read is read again, and if it keeps changing nothing is recorded for it.

A local store is a plain Parquet dataset: ``pandas.read_parquet(folder)`` reads every partition.
Workers are processes (decoding is numpy-bound but the per-basket bookkeeping is Python); they die
with the parent (``workers.py``), and temporaries a killed run left behind are removed on the next.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from dqm_playground_ds.atomic import atomic_write
from dqm_playground_ds.extraction.partitions import (
    PartitionStore,
    as_store,
    write_parquet_partition,
)
from dqm_playground_ds.histogram_tables import ParquetHistograms
from dqm_playground_ds.readers.dqmio.selection import match_names
from dqm_playground_ds.schema import KEY, Duplicates, MissingMEs, empty_histograms
from dqm_playground_ds.sources import HistogramSource, SourceError, index_frame, local_problem
from dqm_playground_ds.workers import worker_pool

log = logging.getLogger(__name__)

READ_ATTEMPTS = 3  # reads of an input that changes while it is read, before giving up for this run


class ExtractionError(ValueError):
    """A fault of the run itself (not of one input): it stops the extraction."""


@dataclass(frozen=True)
class Request:
    """What is extracted from every input; part of each partition's fingerprint."""

    me: tuple[str, ...] | None = None
    include_run_level: bool = False
    missing: MissingMEs = "raise"

    def __post_init__(self) -> None:
        if isinstance(self.me, str):  # one pattern, not its characters
            object.__setattr__(self, "me", (self.me,))
        elif self.me is not None:
            object.__setattr__(self, "me", tuple(self.me))
        if self.missing not in get_args(MissingMEs):
            raise ValueError(f"missing must be one of {get_args(MissingMEs)}, got {self.missing!r}")

    def key(self) -> dict[str, Any]:
        return {
            "me": list(self.me) if self.me is not None else None,
            "include_run_level": self.include_run_level,
            "missing": self.missing,
        }


def partition_id(item: str) -> str:
    """A stable, filesystem-safe name for an input: its base name plus a hash of the full path."""
    base = re.sub(r"[^A-Za-z0-9._+-]", "_", item.rstrip("/").rsplit("/", 1)[-1])[:80]
    return f"{base}-{hashlib.sha1(item.encode()).hexdigest()[:10]}"


def _stat(item: str) -> dict[str, Any]:
    """Size, mtime and inode of a local input (remote inputs are identified by path only)."""
    local = item[len("file://") :] if item.startswith("file://") else item
    if "://" in local:
        return {}
    try:
        st = os.stat(local)
    except OSError:
        return {}
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def write_partition(table: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """One partition file at a local ``path``, as :meth:`PartitionStore.write_partition` writes it."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            write_parquet_partition(table, f)

    atomic_write(path, write)


def _fingerprint(item: str, request: Request) -> dict[str, Any]:
    return {"item": item, **request.key(), **_stat(item)}


_ENVIRONMENTAL = (
    PermissionError,
    TimeoutError,
    ConnectionError,
    FileNotFoundError,
    InterruptedError,
)
_ENV_ERRNOS = {5, 11, 13, 1, 110, 112, 113, 116}  # EIO EAGAIN EACCES EPERM ETIMEDOUT.. ESTALE


def environmental(exc: BaseException) -> bool:
    """Whether a failure may go away by itself (permission fixed, disk back, file restored)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, _ENVIRONMENTAL):
            return True
        if isinstance(cur, OSError) and cur.errno in _ENV_ERRNOS:
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _read(
    source: HistogramSource, item: str, request: Request
) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """One attempt: the input's index fields and table, or a bad row (never raises for the input)."""
    row: dict[str, Any] = {"path": item}
    problem = local_problem(item)
    if problem:
        row.update(status="bad", error=f"{item}: {problem}", n_rows=0)
        return row, None
    try:
        row.update(source.describe(item))
        table = source.read(item, request.me, request.include_run_level, missing=request.missing)
    except Exception as exc:  # every per-input failure is a bad row, whatever raised it
        detail = str(exc) if isinstance(exc, SourceError) else f"{type(exc).__name__}: {exc}"
        if item not in detail:
            detail = f"{item}: {detail}"
        retry = environmental(exc)
        if retry:
            detail += " (environmental: read again on the next run)"
        row.update(status="bad", error=detail, n_rows=0, retry=retry)
        return row, None
    row.update(status="ok", error=None, n_rows=len(table))
    if request.me is not None:
        names = table["me"].unique().tolist() if len(table) else []
        row["unmatched"] = [p for p in request.me if not match_names(names, [p])[0].any()]
    return row, table


def extract_one(
    source: HistogramSource, item: str, request: Request, out_dir: str | PartitionStore
) -> dict[str, Any]:
    """Read one input into its partition and marker; return its file-index row (never raises for a bad input).

    The partition is deleted whenever the read gives no rows, so an input never serves the rows of
    an earlier, different read. The fingerprint is taken before and after: a file that changed
    meanwhile is read again, and after ``READ_ATTEMPTS`` gets no marker (it is read next run).
    """
    store = as_store(out_dir)
    pid = partition_id(item)
    started = time.perf_counter()
    for _ in range(READ_ATTEMPTS):
        before = _fingerprint(item, request)
        row, table = _read(source, item, request)
        if _fingerprint(item, request) == before:
            break
    else:
        store.drop(pid)
        row = {"path": item, "status": "bad", "n_rows": 0, "retry": True}
        row["error"] = f"{item}: changed while it was read ({READ_ATTEMPTS} times); read next run"
        row["seconds"] = round(time.perf_counter() - started, 4)
        return row
    store.remove_marker(pid)  # first: no reader trusts the partition while it is replaced
    if table is not None and len(table):
        store.write_partition(pid, table)
    else:
        store.remove_partition(pid)
    row["seconds"] = round(time.perf_counter() - started, 4)
    store.write_marker(pid, {"fingerprint": before, "row": row})
    return row


def plan(
    items: Iterable[str],
    out_dir: str | Path | PartitionStore,
    request: Request,
    *,
    retry_bad: bool = False,
) -> tuple[list[str], list[dict[str, Any]]]:
    """Split inputs into those to read and the index rows of those already done and unchanged."""
    store = as_store(out_dir)
    listing = store.listing()  # one listing: only markers that exist are opened
    todo, done = [], []
    for item in items:
        pid = partition_id(item)
        marker = store.marker(pid) if pid in listing.markers else None
        if marker is None or marker.get("fingerprint") != _fingerprint(item, request):
            todo.append(item)
            continue
        row = marker["row"]
        bad = row.get("status") == "bad"
        lost = row.get("n_rows") and pid not in listing.partitions
        if (bad and (retry_bad or row.get("retry"))) or lost:
            todo.append(item)
        else:
            done.append(row)
    return todo, done


def _ready_store(out_dir: str | Path | PartitionStore, workers: int) -> PartitionStore:
    """The store, created, without temporaries of an interrupted run; refused for workers > 1
    when its filesystem lives in this process."""
    out = as_store(out_dir)
    if workers > 1 and not out.shared_between_processes:
        raise ExtractionError(
            f"partition store {out.url}: its filesystem lives in this process, so worker "
            f"processes cannot write into it; use workers: 1 (got {workers})"
        )
    out.ensure()
    removed = out.remove_stale_temporaries()
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted run", len(removed))
    return out


def _extract_todo(
    source: HistogramSource,
    todo: list[str],
    request: Request,
    out: PartitionStore,
    workers: int,
    rows: list[dict[str, Any]],
    total: int,
    progress: bool,
) -> int:
    """Extract ``todo`` (in ``workers`` processes), appending index rows; histograms read."""
    bar = tqdm(total=total, initial=len(rows), desc=f"extracting ({source.kind})", unit="file",
               disable=not progress)  # fmt: skip
    started = time.perf_counter()
    n_hist = 0

    def record(row: dict[str, Any]) -> None:
        nonlocal n_hist
        rows.append(row)
        n_hist += int(row.get("n_rows") or 0)
        elapsed = max(time.perf_counter() - started, 1e-9)
        bar.set_postfix(
            hist_per_s=f"{n_hist / elapsed:,.0f}", bad=sum(r["status"] == "bad" for r in rows)
        )
        bar.update(1)

    try:
        if workers <= 1 or len(todo) <= 1:
            for item in todo:
                record(extract_one(source, item, request, out))
        else:
            _run_pool(source, todo, request, out, workers, record)
    finally:
        bar.close()
    return n_hist


def extract_many(
    source: HistogramSource,
    out_dir: str | Path | PartitionStore,
    request: Request = Request(),
    *,
    items: list[str] | None = None,
    workers: int = 1,
    retry_bad: bool = False,
    progress: bool = True,
    prune: bool = False,
) -> pd.DataFrame:
    """Extract every input of ``source`` into ``out_dir``; return the file index of all inputs.

    ``out_dir``: a :class:`PartitionStore`, a local folder or any fsspec URL. ``workers > 1`` reads inputs in that many processes. ``prune`` removes partitions and markers of
    inputs that are no longer in the source (its full listing, so a subset in ``items`` prunes
    nothing else), so the folder mirrors the current input set.

    Raises :class:`ExtractionError` when ME patterns match no histogram in any readable input.
    """
    workers = check_workers(workers, "workers")
    out = _ready_store(out_dir, workers)
    listing = source.items() if items is None or prune else None
    items = listing if items is None else items
    assert items is not None  # listed when not given
    if not items:
        log.error("histogram source %s found no input", getattr(source, "path", source))
    todo, done = plan(items, out, request, retry_bad=retry_bad)
    if done:
        log.info("%d input(s) already extracted and unchanged; reading %d", len(done), len(todo))
    rows = list(done)
    started = time.perf_counter()
    n_hist = _extract_todo(source, todo, request, out, workers, rows, len(items), progress)
    if prune:
        _prune(out, listing if listing is not None else items)
    order = {item: i for i, item in enumerate(items)}
    rows.sort(key=lambda r: order.get(r["path"], len(order)))
    _check_selection(request, rows)
    index = index_frame(rows)
    bad = int((index["status"] == "bad").sum()) if len(index) else 0
    log.info(
        "extraction: %d input(s), %d bad, %d histograms read in this run (%.1f s)",
        len(index),
        bad,
        n_hist,
        time.perf_counter() - started,
    )
    return index


WORKER_DEATHS = 2  # an input whose worker died this often is recorded bad instead of retried


def _run_pool(
    source: HistogramSource,
    todo: list[str],
    request: Request,
    out: PartitionStore,
    workers: int,
    record: Any,
) -> None:
    """Read ``todo`` in worker processes; a worker killed mid-read (OOM killer, kill -9) breaks
    the pool: the inputs in flight are read again in a new pool, and one whose reader died
    ``WORKER_DEATHS`` times becomes a bad row instead of stopping the run."""
    deaths: dict[str, int] = {}
    queue = list(reversed(todo))
    while queue:
        in_flight: list[str] = []
        with worker_pool(workers) as pool:
            pending: dict[Future[dict[str, Any]], str] = {}
            while (queue or pending) and not in_flight:
                while queue and len(pending) < 2 * workers:  # bounded: results are small rows
                    suspect = any(deaths.get(i) for i in (queue[-1], *pending.values()))
                    if suspect and pending:
                        break  # an input whose reader died is read alone, so it alone is blamed
                    item = queue.pop()
                    pending[pool.submit(extract_one, source, item, request, out)] = item
                finished, _ = wait(set(pending), return_when=FIRST_COMPLETED)
                for fut in finished:
                    item = pending.pop(fut)
                    try:
                        record(fut.result())
                    except BrokenProcessPool:
                        in_flight.append(item)
            in_flight.extend(pending.values())  # with a broken pool, every input in it failed
        if in_flight:
            log.warning("a worker process died; reading its %d input(s) again", len(in_flight))
        for item in in_flight:
            deaths[item] = deaths.get(item, 0) + 1
            if deaths[item] >= WORKER_DEATHS:
                record(_worker_died(item, out, deaths[item]))
            else:
                queue.append(item)


def _worker_died(item: str, out: PartitionStore, times: int) -> dict[str, Any]:
    out.drop(partition_id(item))
    return {
        "path": item,
        "status": "bad",
        "n_rows": 0,
        "retry": True,
        "error": f"{item}: the worker process reading it died {times} times (killed, or out "
        "of memory?); read again on the next run",
    }


def check_workers(value: Any, name: str) -> int:
    """A worker count: a positive integer (not a bool, not a string)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ExtractionError(
            f"{name} must be a positive integer (1 = no parallelism), got {value!r}"
        )
    return value


def _check_selection(request: Request, rows: list[dict[str, Any]]) -> None:
    """Patterns that select nothing in any readable input are an error, not an empty table."""
    if request.me is None:
        return
    ok = [r for r in rows if r.get("status") == "ok"]
    if not ok:
        return  # nothing readable: every input is a bad row saying why
    unmatched = [p for p in request.me if all(p in r.get("unmatched", []) for r in ok)]
    if unmatched:
        raise ExtractionError(
            f"ME selection {unmatched} matches no histogram in any of the {len(ok)} readable "
            "input(s); check the names (exact DQMIO paths or full-match regular expressions)"
        )


def _prune(out: PartitionStore, items: list[str]) -> None:
    out.prune({partition_id(i) for i in items})


def iter_partitions(
    out_dir: str | Path | PartitionStore, items: Iterable[str] | None = None
) -> Iterator[pd.DataFrame]:
    """The extracted tables, one partition at a time (bounded memory), in the schema's dtypes.

    Only partitions with a marker are read (a partition without one is being written or replaced).
    """
    pids = [partition_id(i) for i in items] if items is not None else None
    yield from as_store(out_dir).iter_partitions(pids)


def read_partitions(
    out_dir: str | Path | PartitionStore, items: Iterable[str] | None = None
) -> pd.DataFrame:
    """Every extracted row of ``items`` (default: all), sorted by (run, lumi, me)."""
    parts = list(iter_partitions(out_dir, items))
    if not parts:
        return empty_histograms()
    return pd.concat(parts, ignore_index=True).sort_values(KEY, kind="stable", ignore_index=True)


def extract_table(
    source: HistogramSource,
    request: Request,
    *,
    partitions_dir: str | Path | PartitionStore | None = None,
    workers: int = 1,
    retry_bad: bool = False,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All of a source's histograms as one table, plus its file index.

    With ``partitions_dir`` (a :class:`PartitionStore`, folder or URL) the partitions persist, so the next call only reads new inputs; without
    it they live in a temporary folder for this call only.
    """
    items = source.items()
    if partitions_dir is None:
        with tempfile.TemporaryDirectory(prefix="dqm-extract-") as tmp:
            index = extract_many(
                source, tmp, request, items=items, workers=workers, progress=progress
            )
            return read_partitions(tmp, items), index
    index = extract_many(
        source,
        partitions_dir,
        request,
        items=items,
        workers=workers,
        retry_bad=retry_bad,
        progress=progress,
        prune=True,
    )
    return read_partitions(partitions_dir, items), index


def extract_view(
    source: HistogramSource,
    request: Request,
    store: str | Path | PartitionStore,
    *,
    workers: int = 1,
    retry_bad: bool = False,
    progress: bool = True,
    duplicates: Duplicates | None = "raise",
) -> tuple[ParquetHistograms, pd.DataFrame]:
    """:func:`extract_table` without building the table: the partitions of this source's inputs
    as one lazily read table (one ME at a time, filters pushed down), plus the file index.

    ``duplicates`` applies to a key met in several inputs when the table is read.
    """
    items = source.items()
    index = extract_many(source, store, request, items=items, workers=workers,
                         retry_bad=retry_bad, progress=progress, prune=True)  # fmt: skip
    table = as_store(store).table([partition_id(i) for i in items], duplicates=duplicates)
    return table, index


def main(argv: list[str] | None = None) -> int:
    """Command line: extract MEs from many DQMIO files into a partitioned Parquet folder.

    Fan-out (an HTCondor job array, Argo pods): ``--write-items FILE`` lists the inputs once,
    ``--items-from FILE --shard i/N`` extracts shard i (never prunes), ``--items-from FILE --join``
    prunes and writes the index after every shard (see :mod:`dqm_playground_ds.extraction.sharding`).
    """
    from dqm_playground_ds.extraction import sharding
    from dqm_playground_ds.sources import make_source

    parser = argparse.ArgumentParser(
        prog="python -m dqm_playground_ds.extraction",
        description="Extract per-LS histograms from DQMIO (or legacy CSV) files into a partitioned "
        "Parquet folder, in parallel. Re-running resumes: finished files are not read again.",
    )
    parser.add_argument("path", nargs="?", help="folder or URL holding the input files")
    parser.add_argument("--pattern", default="*.root", help="glob under PATH (default: *.root)")
    parser.add_argument("--kind", default="dqmio", choices=["dqmio", "legacy_csv", "dqmiotools"])
    parser.add_argument("--me", action="append", help="ME name or regex (repeatable; default all)")
    parser.add_argument("--run-level", action="store_true", help="also keep run-level MEs (lumi 0)")
    parser.add_argument(
        "--ignore-missing",
        action="store_true",
        help="a file lacking a requested ME is read anyway (default: it is bad)",
    )
    parser.add_argument("--out", help="output partition store: a folder or any fsspec URL")
    parser.add_argument("--workers", type=_positive_int, default=os.cpu_count() or 1)
    parser.add_argument("--retry-bad", action="store_true", help="read files marked bad again")
    parser.add_argument("--index", help="also write the file index to this Parquet file")
    parser.add_argument("--items-from", help="the inputs, one per line (instead of listing PATH)")
    parser.add_argument(
        "--write-items", metavar="FILE", help="only list PATH's inputs into FILE (fan-out step 1)"
    )
    parser.add_argument(
        "--shard", help="extract only shard i/N of the inputs (0 <= i < N); a shard never prunes"
    )
    parser.add_argument(
        "--join",
        action="store_true",
        help="after every shard: prune partitions of inputs not listed, write the index",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        for pattern in args.me or []:
            check_pattern(pattern, "--me")
    except ExtractionError as exc:
        parser.error(str(exc))
    if args.path is None and (args.items_from is None or args.write_items):
        parser.error("PATH is required unless the inputs come from --items-from")
    source = make_source(args.kind, path=args.path or ".", pattern=args.pattern)
    if args.write_items:
        listed = source.items()
        sharding.write_items(listed, args.write_items)
        print(f"{len(listed)} input(s) listed in {args.write_items}")
        return 0
    if args.out is None:
        parser.error("--out is required")
    items: list[str] | None = sharding.read_items(args.items_from) if args.items_from else None
    try:
        if args.join:
            if items is None:
                parser.error("--join needs --items-from (the list every shard was cut from)")
            index = sharding.join_partitions(args.out, items)
        else:
            if args.shard:
                shard = sharding.Shard.parse(args.shard)
                items = sharding.select(source.items() if items is None else items, shard)
                log.info("shard %s: %d input(s)", shard, len(items))
            request = Request(
                me=tuple(args.me) if args.me else None,
                include_run_level=args.run_level,
                missing="ignore" if args.ignore_missing else "raise",
            )
            # an unsharded run over the whole listing mirrors it (removed inputs are pruned); a
            # shard or an explicit list never prunes: the join does, against the full list
            index = extract_many(
                source,
                args.out,
                request,
                items=items,
                workers=args.workers,
                retry_bad=args.retry_bad,
                prune=items is None,
            )
    except ExtractionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.index:
        pq.write_table(pa.Table.from_pandas(index, preserve_index=False), args.index)
    bad = index[index["status"] == "bad"]
    for _, r in bad.iterrows():
        print(f"bad: {r['error']}", file=sys.stderr)
    print(f"{len(index) - len(bad)} file(s) ok, {len(bad)} bad; output in {args.out}")
    return 0


def _positive_int(text: str) -> int:
    try:
        return check_workers(int(text), "--workers")
    except (ValueError, ExtractionError) as exc:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from exc


def check_pattern(pattern: Any, name: str) -> str:
    """An ME pattern: a non-empty string that compiles as a regular expression."""
    if not isinstance(pattern, str) or not pattern:
        raise ExtractionError(f"{name}: expected ME names or patterns (strings), got {pattern!r}")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ExtractionError(
            f"{name}: {pattern!r} is not a valid regular expression ({exc}); escape regex "
            "characters of an exact name with a backslash"
        ) from None
    return pattern


if __name__ == "__main__":
    raise SystemExit(main())
