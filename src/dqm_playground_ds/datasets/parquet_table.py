"""Parquet tables written atomically, optionally checked against the histogram schema.

``schema: histograms`` writes the table one monitor element (ME) at a time, one or more row groups
per ME, from a frame or from any :class:`~dqm_playground_ds.histogram_tables.HistogramTable` (the
extraction hands over a lazy view of its partition store): memory follows one ME, not the table.
``lazy: true`` loads a :class:`~dqm_playground_ds.histogram_tables.ParquetHistograms` instead of a
frame, so the steps after it read one ME at a time with the filter pushed down to those row groups.
Without a schema, a frame or a :class:`~dqm_playground_ds.frame_parts.FrameParts` is saved (the
latter part by part) and loaded as a frame, or with ``lazy: true`` as a
:class:`~dqm_playground_ds.frame_parts.ParquetFrame` that a node reads filtered.

A step that fails half-way must not leave a file that a later step would trust: the table is written
to a temporary file beside the target and renamed into place only when complete (local filesystems;
object stores write whole objects anyway).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from kedro.io import AbstractDataset, DatasetError
from kedro.io.core import get_filepath_str, get_protocol_and_path

from dqm_playground_ds.atomic import atomic_write
from dqm_playground_ds.frame_parts import FrameParts, ParquetFrame
from dqm_playground_ds.histogram_tables import ParquetHistograms, as_table, iter_batches
from dqm_playground_ds.schema import HISTOGRAM_SCHEMA, validate_histograms

SCHEMAS = {"histograms": HISTOGRAM_SCHEMA}
ROW_GROUP_ROWS = 2048  # rows per row group: a reader decodes one at a time (16 MB of a 32x32 map)


class ParquetTableDataset(AbstractDataset[Any, Any]):
    """``schema: histograms`` validates on save and restores the schema's dtypes on load;
    ``lazy`` loads a lazily read table instead of a frame."""

    def __init__(
        self,
        *,
        filepath: str,
        schema: str | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        lazy: bool = False,
        row_group_rows: int = ROW_GROUP_ROWS,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if schema is not None and schema not in SCHEMAS:
            raise DatasetError(f"unknown table schema {schema!r}; known: {sorted(SCHEMAS)}")
        self._lazy = bool(lazy)
        self._row_group_rows = int(row_group_rows)
        protocol, path = get_protocol_and_path(filepath)
        self._protocol = protocol
        self._filepath = PurePosixPath(path)
        self._fs = fsspec.filesystem(protocol, **(credentials or {}), **(fs_args or {}))
        self._schema = schema
        self.metadata = metadata

    @property
    def _path(self) -> str:
        return get_filepath_str(self._filepath, self._protocol)

    def load(self) -> Any:
        if self._schema == "histograms":
            table = ParquetHistograms([self._path], fs=self._fs, name=self._path)
            return table if self._lazy else table.read()
        frame = ParquetFrame(self._path, fs=self._fs)  # an object store's file: read locally
        return frame if self._lazy else frame.read()

    def save(self, data: Any) -> None:
        if self._schema == "histograms":
            write = self._histogram_writer(data)
        elif isinstance(data, FrameParts):
            write = self._parts_writer(data)
        else:
            table = pa.Table.from_pandas(data, preserve_index=False)
            write = lambda f: pq.write_table(table, f)  # noqa: E731
        if self._protocol == "file":
            atomic_write(self._path, write, suffix=".parquet")
        else:  # written locally, then uploaded whole: no Arrow writer holds a remote file object
            with tempfile.TemporaryDirectory(prefix="dqm-parquet-") as tmp:
                local = os.path.join(tmp, "table.parquet")
                write(local)
                self._fs.put_file(local, self._path)

    def _histogram_writer(self, data: Any) -> Callable[[Any], None]:
        """Validate and write ``data`` (frame or table) one ME at a time, row groups of at most
        ``row_group_rows`` rows; nothing is written if an ME fails validation."""
        try:
            table = as_table(data)
        except TypeError as exc:
            raise DatasetError(f"table for {self._path}: {exc}") from None
        name = f"table for {self._path}"
        if isinstance(data, pd.DataFrame):  # whole-table checks first (missing columns...)
            validate_histograms(data.iloc[:0], name=name)

        def write(f: Any) -> None:
            with pq.ParquetWriter(f, HISTOGRAM_SCHEMA) as writer:
                for me in table.mes():
                    for batch in iter_batches(table, me, batch_rows=self._row_group_rows):
                        rows = validate_histograms(batch, name=f"{name}, ME {me}")
                        for start in range(0, len(rows), self._row_group_rows):
                            part = rows.iloc[start : start + self._row_group_rows]
                            writer.write_table(
                                pa.Table.from_pandas(
                                    part, schema=HISTOGRAM_SCHEMA, preserve_index=False
                                )
                            )
                        del rows, batch

        return write

    def _parts_writer(self, data: FrameParts) -> Callable[[Any], None]:
        """Write a :class:`FrameParts` one part at a time (the schema of the first part)."""

        def write(f: Any) -> None:
            writer, schema = None, None
            try:
                for k, part in enumerate(data):
                    try:
                        table = pa.Table.from_pandas(part, schema=schema, preserve_index=False)
                    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
                        raise DatasetError(
                            f"{self._path}: part {k} does not fit the first part's columns ({exc})"
                        ) from exc
                    if writer is None:
                        schema = table.schema
                        writer = pq.ParquetWriter(f, schema)
                    writer.write_table(table)
                    del part, table
                if writer is None:  # no part: an empty table with the columns
                    empty = pd.DataFrame(columns=data.columns or [])
                    pq.write_table(pa.Table.from_pandas(empty, preserve_index=False), f)
            finally:
                if writer is not None:
                    writer.close()

        return write

    def _exists(self) -> bool:
        return bool(self._fs.exists(self._path))

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._path, "protocol": self._protocol, "schema": self._schema,
                "lazy": self._lazy}  # fmt: skip
