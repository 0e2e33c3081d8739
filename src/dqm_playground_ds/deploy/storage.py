"""Where each dataset of an environment lives, read from catalog configuration alone.

The generator runs on a laptop or in CI without the cluster's secrets, so it never instantiates
datasets (that would need credentials and may touch remote storage): it resolves the catalog
configuration, dataset factories included, and looks at ``type`` and the path argument (at most
importing a type's class, to see whether it can load at all).
"""

from __future__ import annotations

import logging
import re
import typing
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, NoReturn

from kedro.io import CatalogConfigResolver
from kedro.io.core import parse_dataset_definition

_PROTOCOL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_LOCAL_PROTOCOLS = {"file", "local", "memory"}
_PATH_KEYS = ("filepath", "path", "folder", "directory")
_RUNTIME_PATTERNS = {"{default}": {"type": "kedro.io.MemoryDataset"}}  # what `kedro run` uses
_WRAPPERS = ("CachedDataset",)  # keep a copy in memory, persist through their inner `dataset`
# load() always raises: a consumer gets the data only from a CachedDataset's in-process copy
# (kedro-datasets annotates such load() methods NoReturn; these names also work uninstalled)
_SAVE_ONLY = ("MatplotlibDataset", "MatplotlibWriter")


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
        memory = ds_type is None or _short(ds_type).endswith("MemoryDataset")
        inner = entry
        while _short(inner.get("type")) in _WRAPPERS and inner.get("dataset"):
            wrapped = inner["dataset"]
            inner = wrapped if isinstance(wrapped, dict) else {"type": wrapped}
        if inner is not entry and save_only(inner.get("type")):
            memory = True  # e.g. figures cached for a report node: readable only in this process
        location = next((str(inner[k]) for k in _PATH_KEYS if inner.get(k)), None)
        preset = memory and "data" in entry
        return DatasetInfo(name=name, type=ds_type, memory=memory, location=location, preset=preset)

    def is_memory(self, name: str) -> bool:
        return self.info(name).memory


def _short(ds_type: Any) -> str:
    return str(ds_type).rsplit(".", 1)[-1] if ds_type else ""


def save_only(ds_type: Any) -> bool:
    """Whether a dataset type can save but never load (matplotlib figures, for one)."""
    if not ds_type:
        return False
    if _short(ds_type) in _SAVE_ONLY:
        return True
    try:  # importing the class needs no credentials and touches no storage
        cls, _ = parse_dataset_definition({"type": ds_type})
        return typing.get_type_hints(cls.load).get("return") is NoReturn
    except Exception:  # unknown or uninstalled type: let `kedro run` report it
        return False


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
