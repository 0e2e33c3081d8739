"""Frozen models on disk: ``<path>/<name>/<version>/{model.json, arrays.npz}``.

Loading gives a :class:`~dqm_playground_ds.models.ModelStore` (nothing is read until a node asks
for a model by name, version or path); saving takes ``{name: FrozenModel}`` and writes each into
its own version folder, so older versions stay loadable.
"""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset

from dqm_playground_ds.models import FrozenModel, ModelStore


class FrozenModelsDataset(AbstractDataset[dict[str, FrozenModel], ModelStore]):
    def __init__(self, *, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = path
        self.metadata = metadata

    def load(self) -> ModelStore:
        return ModelStore(self._path)

    def save(self, data: dict[str, FrozenModel]) -> None:
        store = ModelStore(self._path)
        for model in data.values():
            store.save(model)

    def _exists(self) -> bool:
        return bool(ModelStore(self._path).names())

    def _describe(self) -> dict[str, Any]:
        return {"path": self._path}
