"""Where frozen models live: ``<root>/<name>/<version>/`` (versions sort in time order).

A reference is ``name`` (latest version), ``name@version``, or a path/URI of a model folder
(anything with a ``/`` or a ``://``). Remote URIs are copied to a local cache first (fsspec).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import fsspec

from dqm_playground_ds.models.codec import ModelFormatError
from dqm_playground_ds.models.frozen import (
    ARRAYS_FILE,
    MODEL_FILE,
    FrozenModel,
    load_model,
    save_model,
)


class ModelStore:
    """Versioned model folders under one root directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self.versions(p.name))

    def versions(self, name: str) -> list[str]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if (p / MODEL_FILE).is_file())

    def path(self, name: str, version: str | None = None) -> Path:
        versions = self.versions(name)
        if not versions:
            raise ModelFormatError(
                f"no frozen model {name!r} under {self.root} (models there: {self.names()}); "
                "train first (kedro run) or give a model path"
            )
        if version in (None, "", "latest"):
            return self.root / name / versions[-1]
        if version not in versions:
            raise ModelFormatError(f"model {name!r} has no version {version!r}; it has {versions}")
        return self.root / name / version

    def save(self, model: FrozenModel) -> Path:
        return save_model(model, self.root / model.name / model.version)

    def resolve(self, ref: str) -> Path:
        """Local folder of ``name``, ``name@version`` or a path/URI."""
        if "://" in ref:
            return _fetch(ref)
        if "/" in ref or Path(ref).is_dir():
            return Path(ref)
        name, _, version = ref.partition("@")
        return self.path(name, version or None)

    def load(self, ref: str) -> FrozenModel:
        return load_model(self.resolve(ref))


def _fetch(uri: str) -> Path:
    """Copy a remote model folder (its two files) into a per-URI cache directory."""
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    key = hashlib.sha256(uri.encode()).hexdigest()[:16]
    local = Path(tempfile.gettempdir()) / "dqm-playground-ds-models" / key
    local.mkdir(parents=True, exist_ok=True)
    for name in (MODEL_FILE, ARRAYS_FILE):
        with fsspec.open(uri.rstrip("/") + "/" + name, "rb") as src:
            (local / name).write_bytes(src.read())
    return local
