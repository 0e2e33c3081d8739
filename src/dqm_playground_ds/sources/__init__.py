"""Where histograms come from: a registry of source kinds, like the detector registry.

A source kind is a factory ``(**config) -> HistogramSource``; ``config`` is the catalog entry of
:class:`~dqm_playground_ds.datasets.HistogramSourceDataset` minus ``type`` and ``kind``. Built-in
kinds are named by ``"module:attribute"`` so that asking for ``dqmio`` never imports the platform
clients; a project adds its own with :func:`register_source` (see ``docs/sources.md``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from dqm_playground_ds.sources.base import (
    INDEX_COLUMNS,
    HistogramSource,
    SourceError,
    empty_index,
    expand,
    file_size,
    index_frame,
    local_problem,
)
from dqm_playground_ds.sources.files import DQMIOFiles, DQMIOToolsFiles, LegacyCSVFiles

SourceFactory = Callable[..., HistogramSource]

_SOURCES: dict[str, SourceFactory | str] = {
    "dqmio": "dqm_playground_ds.sources.files:DQMIOFiles",
    "legacy_csv": "dqm_playground_ds.sources.files:LegacyCSVFiles",
    "dqmiotools": "dqm_playground_ds.sources.files:DQMIOToolsFiles",
    "playground_api": "dqm_playground_ds.sources.platforms:playground_api",
    "dials": "dqm_playground_ds.sources.platforms:dials",
}


def register_source(kind: str, factory: SourceFactory | str, *, replace: bool = False) -> None:
    """Make ``kind: <kind>`` usable in the catalog; ``factory`` may be ``"module:attribute"``."""
    if not kind or not kind.isidentifier():
        raise ValueError(f"a source kind must be an identifier, got {kind!r}")
    if kind in _SOURCES and not replace:
        raise ValueError(f"source kind {kind!r} is already registered (pass replace=True)")
    _SOURCES[kind] = factory


def source_kinds() -> list[str]:
    return sorted(_SOURCES)


def source_factory(kind: str) -> SourceFactory:
    try:
        entry = _SOURCES[kind]
    except KeyError:
        raise ValueError(
            f"unknown histogram source kind {kind!r}; expected one of {source_kinds()}"
        ) from None
    if isinstance(entry, str):
        module, _, attribute = entry.partition(":")
        entry = getattr(importlib.import_module(module), attribute)
    return entry


def make_source(kind: str, /, **config: Any) -> HistogramSource:
    """The source of ``kind`` built from its catalog configuration (a bad key is a ``TypeError``)."""
    return source_factory(kind)(**config)


__all__ = [
    "INDEX_COLUMNS",
    "DQMIOFiles",
    "DQMIOToolsFiles",
    "HistogramSource",
    "LegacyCSVFiles",
    "SourceError",
    "SourceFactory",
    "empty_index",
    "expand",
    "file_size",
    "index_frame",
    "local_problem",
    "make_source",
    "register_source",
    "source_factory",
    "source_kinds",
]
