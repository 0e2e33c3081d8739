"""Sources over files found by a glob, local or any fsspec URL: DQMIO, legacy CSV, dqmiotools Parquet."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dqm_playground_ds.readers.dqmio import DQMIOError, DQMIOFile
from dqm_playground_ds.readers.dqmio.selection import MESpec
from dqm_playground_ds.sources.base import SourceError, expand, file_size


@dataclass
class DQMIOFiles:
    """DQMIO files found by a glob (local paths or URLs uproot opens)."""

    path: str
    pattern: str | None = "*.root"
    open_options: dict[str, Any] = field(default_factory=dict)
    partitions_dir: str | None = None
    kind: str = "dqmio"

    def items(self) -> list[str]:
        return expand(self.path, self.pattern)

    def describe(self, item: str) -> dict[str, Any]:
        info: dict[str, Any] = {"path": item, "size": file_size(item)}
        try:
            with DQMIOFile(item, **self.open_options) as f:
                s = f.summary()
        except DQMIOError as exc:
            raise SourceError(str(exc)) from exc
        info.update(
            guid=s.guid, runs=s.runs, n_lumis=s.n_lumis, n_mes=s.n_mes, n_histograms=s.n_histograms
        )
        return info

    def read(
        self, item: str, me: MESpec, include_run_level: bool, missing: str = "raise"
    ) -> pd.DataFrame:
        try:
            with DQMIOFile(item, **self.open_options) as f:
                return f.read(me, include_run_level=include_run_level, missing=missing)  # type: ignore[arg-type]
        except DQMIOError as exc:
            raise SourceError(str(exc)) from exc


@dataclass
class _RowFiles:
    """Files of rows of many MEs (CSV, Parquet exports): an absent ME simply selects no row."""

    path: str
    pattern: str | None = None
    partitions_dir: str | None = None
    kind: str = ""

    def items(self) -> list[str]:
        return expand(self.path, self.pattern)

    def describe(self, item: str) -> dict[str, Any]:
        return {"path": item, "size": file_size(item)}

    def read(
        self, item: str, me: MESpec, include_run_level: bool, missing: str = "raise"
    ) -> pd.DataFrame:
        try:
            return self._read(item, me, include_run_level)
        except (ValueError, OSError) as exc:  # the readers' errors are ValueErrors
            raise SourceError(f"{item}: {exc}" if item not in str(exc) else str(exc)) from exc

    def _read(self, item: str, me: MESpec, include_run_level: bool) -> pd.DataFrame:
        raise NotImplementedError


@dataclass
class LegacyCSVFiles(_RowFiles):
    """Legacy ML4DQM "DataFrame" CSV files found by a glob."""

    pattern: str | None = "*.csv"
    kind: str = "legacy_csv"

    def _read(self, item: str, me: MESpec, include_run_level: bool) -> pd.DataFrame:
        from dqm_playground_ds.readers.legacy_csv import read_legacy_csv

        return read_legacy_csv(item, me=me, include_run_level=include_run_level)


@dataclass
class DQMIOToolsFiles(_RowFiles):
    """Parquet exports of the dqmiotools package (one row per ME and LS) found by a glob."""

    pattern: str | None = "*.parquet"
    kind: str = "dqmiotools"

    def _read(self, item: str, me: MESpec, include_run_level: bool) -> pd.DataFrame:
        from dqm_playground_ds.readers.dqmiotools import read_dqmiotools_parquet

        return read_dqmiotools_parquet(item, me=me, include_run_level=include_run_level)
