"""The partitioned histogram store as a catalog dataset: a local folder or any fsspec URL.

Loading returns a :class:`~dqm_playground_ds.extraction.PartitionStore` handle, nothing is read:
the extraction node writes one partition per input through it (resumable, incremental), and a
later step can read it one ME at a time with predicate push-down. So the store is a node in the
pipeline's graph (and in kedro-viz), with its location in the catalog like every other dataset,
and a shared volume or an object store both work::

    histogram_store:
      type: dqm_playground_ds.datasets.HistogramStoreDataset
      path: s3://bucket/dqm/histogram_partitions
      credentials: object_store          # merged into fs_args, as kedro-datasets do
      fs_args: {endpoint_url: https://s3.cern.ch}
"""

from __future__ import annotations

import warnings
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from dqm_playground_ds.extraction.partitions import PartitionStore


class HistogramStoreDataset(AbstractDataset[None, PartitionStore]):
    """``path``: the store's root (local path, ``file://``, ``memory://``, ``s3://``...);
    ``fs_args`` and ``credentials``: the fsspec filesystem's options."""

    def __init__(
        self,
        *,
        path: str,
        fs_args: dict[str, Any] | None = None,
        credentials: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(path, str) or not path:
            raise DatasetError(f"histogram store: `path` must be a folder or URL, got {path!r}")
        self._path = path
        self._options = {**(credentials or {}), **(fs_args or {})}
        self._has_credentials = credentials is not None
        self._store: PartitionStore | None = None
        self.metadata = metadata

    def load(self) -> PartitionStore:
        if self._store is None:  # built on first use: no filesystem is touched before the run
            try:
                self._store = PartitionStore(self._path, **self._options)
            except (ImportError, ValueError, TypeError) as exc:
                raise DatasetError(f"histogram store {self._path!r}: {exc}") from exc
        return self._store

    def save(self, data: None) -> None:
        raise DatasetError(
            "the histogram store is written by the extraction node through the handle it loads"
        )

    def _exists(self) -> bool:
        return self.load().exists()

    def _describe(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"path": self._path}
        if self._has_credentials:
            shown["credentials"] = "***"
        return shown


def warn_partitions_key(path: str | None, dataset: str) -> None:
    """The source's ``partitions:`` key is the store's old, catalog-invisible location."""
    if path is None:
        return
    warnings.warn(
        f"{dataset}: `partitions: {path}` is deprecated; declare the store as its own catalog "
        f"entry instead (`histogram_store: {{type: dqm_playground_ds.datasets."
        f"HistogramStoreDataset, path: {path}}}`) and remove `partitions` from the source",
        FutureWarning,
        stacklevel=3,
    )
