"""Parquet tables written atomically, optionally checked against the histogram schema.

A step that fails half-way must not leave a file that a later step would trust: the table is written
to a temporary file beside the target and renamed into place only when complete (local filesystems;
object stores write whole objects anyway).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from kedro.io import AbstractDataset, DatasetError
from kedro.io.core import get_filepath_str, get_protocol_and_path

from dqm_playground_ds.atomic import atomic_write
from dqm_playground_ds.schema import (
    COLUMNS,
    HISTOGRAM_SCHEMA,
    empty_histograms,
    validate_histograms,
)

SCHEMAS = {"histograms": HISTOGRAM_SCHEMA}


class ParquetTableDataset(AbstractDataset[pd.DataFrame, pd.DataFrame]):
    """``schema: histograms`` validates on save and restores the schema's dtypes on load."""

    def __init__(
        self,
        *,
        filepath: str,
        schema: str | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if schema is not None and schema not in SCHEMAS:
            raise DatasetError(f"unknown table schema {schema!r}; known: {sorted(SCHEMAS)}")
        protocol, path = get_protocol_and_path(filepath)
        self._protocol = protocol
        self._filepath = PurePosixPath(path)
        self._fs = fsspec.filesystem(protocol, **(credentials or {}), **(fs_args or {}))
        self._schema = schema
        self.metadata = metadata

    @property
    def _path(self) -> str:
        return get_filepath_str(self._filepath, self._protocol)

    def load(self) -> pd.DataFrame:
        with self._fs.open(self._path, "rb") as f:
            table = pq.read_table(f)
        df = table.to_pandas()
        if self._schema == "histograms":
            if df.empty:
                return empty_histograms()
            df = df.astype({k: v for k, v in COLUMNS.items() if k != "data"})
        return df

    def save(self, data: pd.DataFrame) -> None:
        if self._schema == "histograms":
            data = validate_histograms(data, name=f"table for {self._path}")
            table = pa.Table.from_pandas(data, schema=SCHEMAS["histograms"], preserve_index=False)
        else:
            table = pa.Table.from_pandas(data, preserve_index=False)
        if self._protocol == "file":
            atomic_write(self._path, lambda tmp: pq.write_table(table, tmp), suffix=".parquet")
        else:
            with self._fs.open(self._path, "wb") as f:
                pq.write_table(table, f)

    def _exists(self) -> bool:
        return bool(self._fs.exists(self._path))

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._path, "protocol": self._protocol, "schema": self._schema}
