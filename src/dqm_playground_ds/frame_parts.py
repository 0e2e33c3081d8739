"""Tables handed between nodes and datasets without ever existing whole in memory.

The scoring node's outputs grow with LS x strategies (x MEs for the per-ME scores: 13M rows at 100k
LS, 40M at 300k); concatenated, then converted to Arrow by the writer, they held three copies of
themselves. A :class:`FrameParts` is a list of functions each building one part (one strategy's
rows) with the same columns; ``ParquetTableDataset`` writes it part by part into one Parquet file,
which loads back as the frame ``to_frame()`` gives, or (``lazy: true``) as a :class:`ParquetFrame`
that a node reads with filters pushed down to the row groups: a plot of one strategy's per-ME
scores reads that strategy's rows, not 40M rows of all strategies.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as pads
from fsspec.implementations.local import LocalFileSystem


class FrameParts:
    """Parts of one table, built when iterated; each is given exactly ``columns`` (a column a
    part lacks is NaN), as ``pd.concat`` of the parts would have them. ``columns=None``: every
    part has the columns of the first."""

    def __init__(
        self, parts: Sequence[Callable[[], pd.DataFrame]], columns: Sequence[str] | None = None
    ):
        self.parts = list(parts)
        self.columns = None if columns is None else list(columns)

    def __iter__(self) -> Iterator[pd.DataFrame]:
        for make in self.parts:
            part = make()
            if self.columns is None:
                self.columns = list(part.columns)
            extra = [c for c in part.columns if c not in self.columns]
            if extra:
                raise ValueError(f"a part has columns {extra} outside the table's {self.columns}")
            missing = {c: np.nan for c in self.columns if c not in part.columns}
            yield part.assign(**missing)[self.columns] if missing else part[self.columns]

    def to_frame(self) -> pd.DataFrame:
        """The whole table (for callers that want it in memory)."""
        frames = list(self)
        if not frames:
            return pd.DataFrame(columns=self.columns or [])
        return pd.concat(frames, ignore_index=True)


class ParquetFrame:
    """A Parquet file on ``fs`` (fsspec; default local), read when and as far as a node asks.

    A remote file is downloaded once, at the first read, to a temporary file deleted with this
    object: Arrow's reader threads holding an fsspec file object could abort the interpreter at
    exit (seen on ``memory://``).
    """

    def __init__(self, path: str | os.PathLike[str], *, fs: Any = None) -> None:
        self.fs = fs if fs is not None else LocalFileSystem()
        self.local = isinstance(self.fs, LocalFileSystem)
        self.path = os.path.abspath(os.fspath(path)) if self.local else os.fspath(path)
        self._copy: str | None = None

    def __repr__(self) -> str:
        return f"ParquetFrame({self.path!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_copy": None}

    def _local_path(self) -> str:
        if self.local:
            return self.path
        if self._copy is None:
            folder = tempfile.mkdtemp(prefix="dqm-parquet-")
            weakref.finalize(self, shutil.rmtree, folder, ignore_errors=True)
            copy = os.path.join(folder, "table.parquet")
            self.fs.get_file(self.path, copy)
            self._copy = copy
        return self._copy

    def read(
        self,
        where: dict[str, Collection[Any]] | None = None,
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """The rows whose column ``c`` is among ``where[c]``, for every ``c`` of ``where``;
        ``columns`` only (None: all)."""
        dataset = pads.dataset(self._local_path(), format="parquet")
        unknown = sorted((set(where or {}) | set(columns or ())) - set(dataset.schema.names))
        if unknown:
            raise KeyError(f"{self.path} has no column(s) {unknown} (has {dataset.schema.names})")
        condition = None
        for column, values in (where or {}).items():
            term = pc.field(column).isin(list(values))
            condition = term if condition is None else condition & term
        selected = None if columns is None else list(columns)
        return dataset.to_table(columns=selected, filter=condition).to_pandas()

    def distinct(self, column: str) -> list[Any]:
        """The values of ``column`` in order of appearance, from the row groups' statistics when
        each holds one value (the parts' strategies), else by reading that column."""
        dataset = pads.dataset(self._local_path(), format="parquet")
        if column not in dataset.schema.names:
            raise KeyError(f"{self.path} has no column {column!r} (has {dataset.schema.names})")
        values: list[Any] = []
        for fragment in dataset.get_fragments():
            values += fragment_values(fragment, column)
        return list(dict.fromkeys(values))


def fragment_values(fragment: Any, column: str) -> list[Any]:
    """Distinct values of ``column`` in one Parquet fragment, in order of appearance: read from
    the row groups' min/max statistics when every row group holds a single value."""
    meta = fragment.metadata
    index = meta.schema.to_arrow_schema().get_field_index(column)
    values = []
    for i in range(meta.num_row_groups):
        if meta.row_group(i).num_rows == 0:
            continue
        stats = meta.row_group(i).column(index).statistics
        if stats is None or not stats.has_min_max or stats.min != stats.max:
            return pc.unique(fragment.to_table(columns=[column]).column(column)).to_pylist()
        values.append(stats.min)
    return list(dict.fromkeys(values))


def distinct(table: Table, column: str) -> list[Any]:
    """The values of ``column`` in order of appearance (a :class:`ParquetFrame`: from its
    row-group statistics where it can)."""
    if isinstance(table, ParquetFrame):
        return table.distinct(column)
    frames = [table] if isinstance(table, pd.DataFrame) else list(table)
    return list(dict.fromkeys(v for f in frames for v in f[column].tolist()))


Table: TypeAlias = pd.DataFrame | FrameParts | ParquetFrame


def as_frame(table: Table) -> pd.DataFrame:
    """The frame of a node input: a dataset loads these tables as frames (or lazily), but where
    an output is kept in memory (a MemoryDataset) the next node receives the parts themselves."""
    if isinstance(table, ParquetFrame):
        return table.read()
    return table.to_frame() if isinstance(table, FrameParts) else table


def rows_where(
    table: Table, columns: Sequence[str] | None = None, **where: Collection[Any]
) -> pd.DataFrame:
    """The rows whose column ``c`` is among ``where[c]``, ``columns`` only (None: all): read only
    those from a :class:`ParquetFrame`, kept part by part from :class:`FrameParts`, masked in a
    frame."""
    if isinstance(table, ParquetFrame):
        return table.read(where, columns)
    if isinstance(table, pd.DataFrame):
        return _mask(table, where, columns)
    kept = [_mask(part, where, columns) for part in table]
    if kept:
        return pd.concat(kept, ignore_index=True)
    empty = table.to_frame()  # no part: the empty table with its columns
    return empty if columns is None else empty.loc[:, list(columns)]


def _mask(
    frame: pd.DataFrame, where: dict[str, Collection[Any]], columns: Sequence[str] | None
) -> pd.DataFrame:
    unknown = sorted((set(where) | set(columns or ())) - set(frame.columns))
    if unknown:
        raise KeyError(f"no column(s) {unknown} (has {list(frame.columns)})")
    keep = np.ones(len(frame), dtype=bool)
    for column, values in where.items():
        keep &= frame[column].isin(list(values)).to_numpy(dtype=bool)
    out = frame if keep.all() else frame[keep].reset_index(drop=True)
    return out if columns is None else out.loc[:, list(columns)]
