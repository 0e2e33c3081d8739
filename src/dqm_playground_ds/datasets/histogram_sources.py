"""A dataset that hands the extraction pipeline a histogram source (files found by a glob, or an API).

Loading returns a lazy :class:`~dqm_playground_ds.sources.HistogramSource`: nothing is read until the
extraction node asks for an item, so a broken file can be recorded and skipped, like Kedro's
``PartitionedDataset`` hands nodes lazy loaders.
"""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset, DatasetError

from dqm_playground_ds.sources import HistogramSource, make_source


class HistogramSourceDataset(AbstractDataset[None, HistogramSource]):
    """``kind: dqmio`` (``path`` + ``pattern`` glob, local or URL) or ``kind: legacy_csv``.

    ``partitions``: a folder where every input is extracted once into its own Parquet partition, so
    an interrupted or repeated run reads only inputs it has not finished (see ``extraction.py``).
    """

    def __init__(
        self,
        *,
        kind: str = "dqmio",
        path: str,
        pattern: str | None = None,
        open_options: dict[str, Any] | None = None,
        partitions: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._kind = kind
        self._path = path
        self._pattern = pattern
        self._open_options = open_options or {}
        self._partitions = partitions
        self.metadata = metadata
        kwargs: dict[str, Any] = {"path": path, "partitions_dir": partitions}
        if pattern is not None:
            kwargs["pattern"] = pattern
        if open_options and kind == "dqmio":
            kwargs["open_options"] = open_options
        try:
            self._source = make_source(kind, **kwargs)
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"histogram source {kind!r} at {path!r}: {exc}") from exc

    def load(self) -> HistogramSource:
        return self._source

    def save(self, data: None) -> None:
        raise DatasetError("a histogram source is read-only")

    def _exists(self) -> bool:
        return bool(self._source.items())

    def _describe(self) -> dict[str, Any]:
        return {
            "kind": self._kind,
            "path": self._path,
            "pattern": self._pattern,
            "partitions": self._partitions,
        }
