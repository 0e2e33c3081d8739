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
class LegacyCSVFiles:
    """Legacy ML4DQM "DataFrame" CSV files found by a glob."""

    path: str
    pattern: str | None = "*.csv"
    partitions_dir: str | None = None
    kind: str = "legacy_csv"

    def items(self) -> list[str]:
        return expand(self.path, self.pattern)

    def describe(self, item: str) -> dict[str, Any]:
        return {"path": item, "size": file_size(item)}

    def read(
        self, item: str, me: MESpec, include_run_level: bool, missing: str = "raise"
    ) -> pd.DataFrame:
        """CSV files are rows of many MEs; an absent ME simply selects no row."""
        from dqm_playground_ds.readers.legacy_csv import LegacyCSVError, read_legacy_csv

        try:
            return read_legacy_csv(item, me=me, include_run_level=include_run_level)
        except (LegacyCSVError, OSError) as exc:
            raise SourceError(f"{item}: {exc}" if item not in str(exc) else str(exc)) from exc


@dataclass
class DQMIOToolsFiles:
    """Parquet exports of the dqmiotools package (one row per ME and LS) found by a glob."""

    path: str
    pattern: str | None = "*.parquet"
    partitions_dir: str | None = None
    kind: str = "dqmiotools"

    def items(self) -> list[str]:
        return expand(self.path, self.pattern)

    def describe(self, item: str) -> dict[str, Any]:
        return {"path": item, "size": file_size(item)}

    def read(
        self, item: str, me: MESpec, include_run_level: bool, missing: str = "raise"
    ) -> pd.DataFrame:
        """Like CSV files, an export holds rows of many MEs: an absent ME selects no row."""
        from dqm_playground_ds.readers.dqmiotools import DQMIOToolsError, read_dqmiotools_parquet

        try:
            return read_dqmiotools_parquet(item, me=me, include_run_level=include_run_level)
        except (DQMIOToolsError, OSError, ValueError) as exc:
            raise SourceError(f"{item}: {exc}" if item not in str(exc) else str(exc)) from exc
