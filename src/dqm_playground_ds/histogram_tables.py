"""The histogram table as something to read from, one monitor element (ME) at a time.

A year of data does not fit one pandas frame (100k LS x 12 MEs is already 4 GB), but every step
that needs bins works on one ME at a time: preprocessing, references, deviations, injection. So
the steps take a :class:`HistogramTable` and ask it for what they need:

* ``read(me=..., runs=..., columns=...)``: the rows of one ME (or several), of some runs, with some
  columns, as a frame in the histogram schema sorted by (run, lumi, me);
* ``mes()``: the MEs it holds; ``lumisections()``: its distinct (run, lumi).

:class:`ParquetHistograms` reads Parquet files (the ``histograms.parquet`` snapshot the extraction
saves, or the partitions of the store) with the filters pushed down to their row groups, which hold
one ME each: reading one ME costs about that ME's share of the files, and peak memory follows the
largest ME, not the table. :class:`FrameTable` serves an in-memory frame through the same calls
(small samples, tests, notebooks); :func:`as_table` takes either.

:func:`iter_batches` goes further for the steps that need a whole ME but not all at once
(preprocessing, the snapshot writer): a table that can (``iter_read``) streams the ME in batches of
a few thousand rows, so memory follows a batch, not the ME; 300k LS of a 32x32 map are 2.5 GB.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
from fsspec.implementations.local import LocalFileSystem

from dqm_playground_ds.frame_parts import fragment_values
from dqm_playground_ds.schema import COLUMNS, HISTOGRAM_SCHEMA, KEY, Duplicates, empty_histograms

__all__ = [
    "FrameTable",
    "HistogramTable",
    "ParquetHistograms",
    "as_table",
    "iter_batches",
    "table_to_pandas",
]

KEY_COLUMNS = ["run", "lumi", "me"]
BATCH_ROWS = 2048  # rows per streamed batch: 16 MB of a 32x32 map in float64


@runtime_checkable
class HistogramTable(Protocol):
    """What a step may ask of the histogram table (see the module's docstring)."""

    def mes(self) -> list[str]: ...

    def read(
        self,
        me: str | Sequence[str] | None = None,
        runs: Iterable[int] | None = None,
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame: ...


def as_table(histograms: HistogramTable | pd.DataFrame) -> HistogramTable:
    """A frame becomes a :class:`FrameTable`; a table stays itself."""
    if isinstance(histograms, pd.DataFrame):
        return FrameTable(histograms)
    if isinstance(histograms, HistogramTable):
        return histograms
    raise TypeError(
        f"expected a histogram table or a pandas DataFrame, got {type(histograms).__name__}"
    )


def lumisections(
    table: HistogramTable | pd.DataFrame, *, collision_only: bool = True
) -> pd.DataFrame:
    """Distinct (run, lumi) of the table, sorted, int64; ``collision_only`` drops run-level rows
    (lumi 0). Reads the two key columns only."""
    keys = as_table(table).read(columns=["run", "lumi"])
    if collision_only:
        keys = keys[keys["lumi"] > 0]
    keys = keys.drop_duplicates().sort_values(["run", "lumi"], ignore_index=True)
    return keys.astype("int64")


def iter_mes(
    table: HistogramTable | pd.DataFrame, mes: Iterable[str] | None = None, **read: Any
) -> Iterator[tuple[str, pd.DataFrame]]:
    """``(me, rows)`` for each ME in turn: memory follows the largest ME."""
    t = as_table(table)
    for me in t.mes() if mes is None else mes:
        yield me, t.read(me=me, **read)


def iter_batches(
    table: HistogramTable | pd.DataFrame,
    me: str,
    runs: Iterable[int] | None = None,
    columns: Sequence[str] | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[pd.DataFrame]:
    """The rows of one ME in batches (no order promised across batches; a key is never split
    over two). A table without ``iter_read`` gives one batch: the whole :meth:`read`."""
    t = as_table(table)
    streamed = getattr(t, "iter_read", None)
    if streamed is None:
        yield t.read(me=me, runs=runs, columns=columns)
        return
    yield from streamed(me=me, runs=runs, columns=columns, batch_rows=batch_rows)


def run_batches(runs: np.ndarray, batch_rows: int) -> list[list[int]]:
    """Consecutive runs grouped so that each group holds at most ``batch_rows`` of the rows whose
    run ``runs`` lists (a bigger run is a group of its own)."""
    values, counts = np.unique(np.asarray(runs), return_counts=True)
    groups: list[list[int]] = []
    size = 0
    for run, n in zip(values.tolist(), counts.tolist(), strict=True):
        if not groups or size + n > batch_rows:
            groups.append([])
            size = 0
        groups[-1].append(int(run))
        size += n
    return groups


def _check_columns(columns: Sequence[str] | None, where: str) -> None:
    if columns is None:
        return
    unknown = [c for c in columns if c not in HISTOGRAM_SCHEMA.names]
    if unknown:
        raise ValueError(
            f"{where}: unknown column(s) {unknown}; the table holds {HISTOGRAM_SCHEMA.names}"
        )


def _names(me: str | Sequence[str]) -> list[str]:
    return [me] if isinstance(me, str) else [str(m) for m in me]


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    if set(KEY) <= set(df.columns):
        return df.sort_values(KEY, kind="stable", ignore_index=True)
    return df.reset_index(drop=True)


class FrameTable:
    """An in-memory histogram frame served through :class:`HistogramTable`'s calls."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._rows_of: dict[str, np.ndarray] | None = None  # ME -> row positions, built once

    def __repr__(self) -> str:
        return f"FrameTable({len(self.frame)} rows)"

    def __len__(self) -> int:
        return len(self.frame)

    def _positions(self) -> dict[str, np.ndarray]:
        if self._rows_of is None:
            codes, names = pd.factorize(self.frame["me"].astype(str))
            order = np.argsort(codes, kind="stable")
            bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
            self._rows_of = {
                str(name): order[bounds[k] : bounds[k + 1]] for k, name in enumerate(names)
            }
        return self._rows_of

    def mes(self) -> list[str]:
        return sorted(self._positions())

    def read(
        self,
        me: str | Sequence[str] | None = None,
        runs: Iterable[int] | None = None,
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        out = self.frame
        if me is not None:
            by_me = self._positions()
            parts = [by_me[m] for m in _names(me) if m in by_me]
            rows = np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.intp)
            out = out.iloc[rows]
        if runs is not None:
            out = out[out["run"].isin([int(r) for r in runs]).to_numpy()]
        if columns is not None:
            _check_columns(columns, "histogram frame")
            out = out.loc[:, list(columns)]
        return _sorted(out)


class ParquetHistograms:
    """Parquet files in the histogram schema, read with predicate push-down.

    ``paths`` on ``fs`` (an fsspec filesystem; default local). ``duplicates``: what a read does
    with a (run, lumi, me) key met in more than one file (``raise``, ``sum``, ``first``, or None:
    the files are known to hold distinct keys). ``name`` names the table in errors.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        fs: Any = None,
        duplicates: Duplicates | None = None,
        name: str | None = None,
    ) -> None:
        self.fs = fs if fs is not None else LocalFileSystem()
        self.local = isinstance(self.fs, LocalFileSystem)
        self.paths = [os.path.abspath(os.fspath(p)) if self.local else os.fspath(p) for p in paths]
        self.duplicates = duplicates
        self.name = name or (
            self.paths[0] if len(self.paths) == 1 else f"{len(self.paths)} Parquet files"
        )
        self._mes: list[str] | None = None

    def __repr__(self) -> str:
        return f"ParquetHistograms({self.name!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_mes": None}

    def _dataset(self) -> pads.Dataset | None:
        if not self.paths:
            return None
        fs: Any = (
            pafs.LocalFileSystem() if self.local else pafs.PyFileSystem(pafs.FSSpecHandler(self.fs))
        )
        return pads.dataset(self.paths, schema=HISTOGRAM_SCHEMA, format="parquet", filesystem=fs)

    def mes(self) -> list[str]:
        """The MEs of the files, sorted, from the row groups' statistics where they name one ME."""
        if self._mes is None:
            dataset = self._dataset()
            names: set[str] = set()
            for fragment in dataset.get_fragments() if dataset is not None else ():
                names |= _fragment_mes(fragment)
            self._mes = sorted(names)
        return list(self._mes)

    def read_arrow(
        self,
        me: str | Sequence[str] | None = None,
        runs: Iterable[int] | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table | None:
        """:meth:`read` as an Arrow table in file order, duplicates untouched (None: no file)."""
        _check_columns(columns, self.name)
        dataset = self._dataset()
        if dataset is None:
            return None
        return dataset.to_table(
            columns=list(columns) if columns else None, filter=_filter(me, runs)
        )

    def iter_read(
        self,
        me: str,
        runs: Iterable[int] | None = None,
        columns: Sequence[str] | None = None,
        batch_rows: int = BATCH_ROWS,
    ) -> Iterator[pd.DataFrame]:
        """:meth:`read` of one ME in batches of about ``batch_rows`` rows, in file order.

        Without a duplicates policy the scan streams record batches (a couple read ahead); with
        one, the ME's keys are read first and the runs grouped, so that a key and its duplicates
        meet in one batch and the policy applies as in :meth:`read`.
        """
        _check_columns(columns, self.name)
        runs = None if runs is None else list(runs)
        if self.duplicates is not None:
            keys = self.read(me=me, runs=runs, columns=["run", "lumi"])
            for group in run_batches(keys["run"].to_numpy(), batch_rows):
                yield self.read(me=me, runs=group, columns=columns)
            return
        dataset = self._dataset()
        if dataset is None:
            return
        scan = dataset.to_batches(
            columns=list(columns) if columns else None,
            filter=_filter(me, runs),
            batch_size=batch_rows,
            batch_readahead=2,
            fragment_readahead=1,
        )
        for batch in scan:
            if batch.num_rows:
                df = table_to_pandas(pa.Table.from_batches([batch]))
                yield df.astype({k: v for k, v in COLUMNS.items() if k != "data" and k in df})

    def read(
        self,
        me: str | Sequence[str] | None = None,
        runs: Iterable[int] | None = None,
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Rows of the MEs ``me`` and runs ``runs``, with ``columns`` only, in the schema's
        dtypes, sorted by (run, lumi, me) when those columns are read; the ``duplicates`` policy
        applied. An ME or run the files lack selects nothing."""
        wanted = list(columns) if columns is not None else None
        if self.duplicates is not None and wanted is not None:
            wanted = list(dict.fromkeys([*wanted, *KEY_COLUMNS]))
        table = self.read_arrow(me, runs, wanted)
        if table is None:
            empty = empty_histograms()
            return empty[list(columns)] if columns is not None else empty
        df = table_to_pandas(table)
        df = df.astype({k: v for k, v in COLUMNS.items() if k != "data" and k in df.columns})
        if self.duplicates is not None:
            df = _resolve(df, self.duplicates, self.name)
        df = _sorted(df)
        return df[list(columns)] if columns is not None else df


def _resolve(df: pd.DataFrame, policy: Duplicates, name: str) -> pd.DataFrame:
    """The duplicates policy on a frame that may lack the bins (then ``sum`` keeps one key)."""
    if df.empty or not df.duplicated(KEY).any():
        return df
    from dqm_playground_ds.readers.dqmio.reader import resolve_duplicates

    if ("data" in df.columns and set(COLUMNS) <= set(df.columns)) or policy == "raise":
        return resolve_duplicates(df, policy, name)
    return df.drop_duplicates(KEY, keep="first", ignore_index=True)


def _fragment_mes(fragment: Any) -> set[str]:
    return {str(name) for name in fragment_values(fragment, "me")}


def _filter(me: str | Sequence[str] | None, runs: Iterable[int] | None) -> pc.Expression | None:
    expr = None
    if me is not None:
        expr = pc.field("me").isin(_names(me))
    if runs is not None:
        cond = pc.field("run").isin(pa.array([int(r) for r in runs], pa.int64()))
        expr = cond if expr is None else expr & cond
    return expr


def table_to_pandas(table: pa.Table) -> pd.DataFrame:
    """``table.to_pandas()``, with the bins as read-only views of Arrow's buffers (as pyarrow
    gives them, but without its copy of every value): the peak is one copy of the bins, not two."""
    if "data" not in table.column_names:
        return table.to_pandas()
    data = table.column("data")
    df = table.drop_columns(["data"]).to_pandas()
    out = np.empty(len(data), dtype=object)
    pos = 0
    for chunk in data.chunks:
        if not len(chunk):
            continue
        if chunk.null_count:  # not in a valid table; pyarrow's own conversion keeps the None
            views = list(chunk.to_pandas())
        else:
            values = chunk.flatten().to_numpy(zero_copy_only=True)
            offsets = chunk.offsets.to_numpy()
            views = np.split(values, offsets[1:-1] - offsets[0])
        for k, view in enumerate(views):
            out[pos + k] = view
        pos += len(chunk)
    df.insert(table.column_names.index("data"), "data", out)
    return df
