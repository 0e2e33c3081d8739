"""``me_features``: the preprocessed features of every variant as a folder of memory-mapped arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError
from kedro.io.core import get_protocol_and_path

from dqm_playground_ds.processing.feature_store import (
    FeatureStoreError,
    read_features,
    write_features,
)


class FeatureStoreDataset(AbstractDataset[dict, dict]):
    """Saves ``{variant: FeatureSet}`` one ME at a time; loads them without reading the counts.

    Memory maps need a file the kernel can page in: the path must be local (a shared volume
    mounted in every pod works; an object store does not, and is refused here rather than
    copied whole).
    """

    def __init__(self, *, path: str, metadata: dict[str, Any] | None = None) -> None:
        protocol, local = get_protocol_and_path(path)
        if protocol not in ("file", ""):
            raise DatasetError(
                f"me_features at {path!r}: the feature store is memory-mapped and needs a local "
                f"path (a mounted volume), not {protocol}://"
            )
        self._path = Path(local)
        self.metadata = metadata

    def load(self) -> dict:
        try:
            return read_features(self._path)
        except FeatureStoreError as exc:
            raise DatasetError(str(exc)) from exc

    def save(self, data: dict) -> None:
        if not isinstance(data, dict) or not data:
            raise DatasetError(
                f"{self._path}: expected {{variant: FeatureSet}}, got {type(data).__name__}"
            )
        try:
            write_features(self._path, data)
        except FeatureStoreError as exc:
            raise DatasetError(str(exc)) from exc

    def _exists(self) -> bool:
        return (self._path / "_meta.json").is_file()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
