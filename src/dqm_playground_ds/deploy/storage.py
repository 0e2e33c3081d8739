"""Where each dataset of an environment lives, read from catalog configuration alone.

The generator runs on a laptop or in CI without the cluster's secrets, so it never instantiates
datasets (that would need credentials and may touch remote storage): it resolves the catalog
configuration, dataset factories included, and looks at ``type`` and the path argument.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from kedro.io import CatalogConfigResolver

_PROTOCOL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_LOCAL_PROTOCOLS = {"file", "local", "memory"}
_PATH_KEYS = ("filepath", "path", "folder", "directory")
_RUNTIME_PATTERNS = {"{default}": {"type": "kedro.io.MemoryDataset"}}  # what `kedro run` uses


@dataclass(frozen=True)
class DatasetInfo:
    """``memory``: lives in one process only; ``preset``: a MemoryDataset whose ``data`` is in
    the configuration, so every pod starts with it; ``location``: its path or URL, if any."""

    name: str
    type: str | None
    memory: bool
    location: str | None
    preset: bool = False


class Catalog:
    """Classify dataset names against one environment's catalog configuration."""

    def __init__(self, config: dict[str, Any]) -> None:
        # credentials are irrelevant to where data lives, and absent where the generator runs
        clean = {
            name: {k: v for k, v in entry.items() if k != "credentials"}
            for name, entry in config.items()
            if isinstance(entry, dict) and not name.startswith("_")
        }
        self._resolver = CatalogConfigResolver(clean, default_runtime_patterns=_RUNTIME_PATTERNS)
        self._cache: dict[str, DatasetInfo] = {}

    def info(self, name: str) -> DatasetInfo:
        if name not in self._cache:
            self._cache[name] = self._info(name)
        return self._cache[name]

    def _info(self, name: str) -> DatasetInfo:
        # the resolver warns on every catch-all match: that is the point of a catch-all here
        resolver_log = logging.getLogger(CatalogConfigResolver.__module__)
        level = resolver_log.level
        resolver_log.setLevel(logging.ERROR)
        try:
            entry = self._resolver.resolve_pattern(name) or {}
        finally:
            resolver_log.setLevel(level)
        ds_type = entry.get("type")
        memory = ds_type is None or str(ds_type).rsplit(".", 1)[-1].endswith("MemoryDataset")
        location = next((str(entry[k]) for k in _PATH_KEYS if entry.get(k)), None)
        preset = memory and "data" in entry
        return DatasetInfo(name=name, type=ds_type, memory=memory, location=location, preset=preset)

    def is_memory(self, name: str) -> bool:
        return self.info(name).memory


def is_shared(location: str, shared_dirs: tuple[str, ...], project_root: str) -> bool:
    """True if every pod sees the same data at ``location``.

    Remote URLs (``s3://``, ``root://``, ...) are shared; a local path is shared only below one of
    ``shared_dirs`` (project-relative folders mounted from a shared volume, e.g. ``data``).
    """
    match = _PROTOCOL.match(location)
    if match and match.group(1).lower() not in _LOCAL_PROTOCOLS:
        return True
    path = PurePosixPath(location[match.end() :] if match else location)
    root = PurePosixPath(project_root)
    for shared in shared_dirs:
        base = root / shared
        candidate = path if path.is_absolute() else root / path
        if _normalise(candidate).is_relative_to(_normalise(base)):
            return True
    return False


def _normalise(path: PurePosixPath) -> PurePosixPath:
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            if len(parts) > 1:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return PurePosixPath(*parts)
