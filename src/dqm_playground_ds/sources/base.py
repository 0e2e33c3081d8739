"""The protocol every histogram source follows, and the file-index helpers they share.

The extraction pipeline is given a ``HistogramSource`` by a catalog dataset and asks it for its items
(files, or API queries), then reads each item into the histogram table. A bad item raises
``SourceError`` (or a subclass) naming it; the pipeline records it as ``bad`` and goes on.
"""

from __future__ import annotations

import errno
import glob as globlib
import os
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import fsspec
import pandas as pd

from dqm_playground_ds.readers.dqmio.selection import MESpec

INDEX_COLUMNS = {
    "path": "string",
    "size": "Int64",
    "guid": "string",
    "runs": "object",
    "n_lumis": "Int64",
    "n_mes": "Int64",
    "n_histograms": "Int64",
    "n_rows": "Int64",
    "seconds": "float64",
    "status": "string",
    "error": "string",
}


class SourceError(Exception):
    """One item of a source cannot be read; the message names it and says why."""


@runtime_checkable
class HistogramSource(Protocol):
    kind: str

    def items(self) -> list[str]:
        """Identifiers of what can be read (file paths/URLs, API queries), in a stable order."""

    def describe(self, item: str) -> dict[str, Any]:
        """File-index fields known without decoding histograms (size, guid, runs, n_lumis, n_mes)."""

    def read(
        self, item: str, me: MESpec, include_run_level: bool, missing: str = "raise"
    ) -> pd.DataFrame:
        """The item's histograms in the histogram schema; raise ``SourceError`` when it is bad.

        ``missing="raise"`` makes a requested ME the item lacks an error; ``"ignore"`` reads the rest.
        """


def expand(path: str, pattern: str | None) -> list[str]:
    """Files under ``path`` matching ``pattern`` (a glob), local or any fsspec URL, sorted."""
    if "://" in path and not path.startswith("file://"):
        fs, _, _ = fsspec.get_fs_token_paths(path)
        protocol = path.split("://", 1)[0]
        target = path.rstrip("/") + "/" + pattern if pattern else path
        return sorted(f"{protocol}://{p}" if "://" not in p else p for p in fs.glob(target))
    local = path[len("file://") :] if path.startswith("file://") else path
    target = os.path.join(local, pattern) if pattern else local
    last = os.path.basename(pattern or local)
    named = "." in last  # "*.root": a directory so named is a misplaced input, not a folder
    return sorted(
        p
        for p in globlib.glob(target, recursive=True)
        if os.path.isfile(p) or os.path.islink(p) or (named and os.path.isdir(p))
    )


def local_problem(path: str) -> str | None:
    """Why a local input that the glob found is no file to read (None for a file or a URL).

    Dangling symlinks, symlink loops and directories named like inputs are recorded as bad inputs
    with this reason instead of vanishing from the file index.
    """
    local = path[len("file://") :] if path.startswith("file://") else path
    if "://" in local:
        return None
    if os.path.islink(local) and not os.path.exists(local):
        try:
            os.stat(local)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return "symlink loop (the link resolves to itself)"
        return f"dangling symlink (it points to {os.readlink(local)!r}, which does not exist)"
    if os.path.isdir(local):
        return "is a directory, not a file"
    return None


def file_size(path: str) -> int | None:
    try:
        if "://" in path:
            fs, _, (p,) = fsspec.get_fs_token_paths(path)
            return int(fs.size(p))
        return os.path.getsize(path)
    except Exception:
        return None


def empty_index() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in INDEX_COLUMNS.items()})


def index_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return empty_index()
    df = pd.DataFrame([{c: r.get(c) for c in INDEX_COLUMNS} for r in rows])
    return df.astype({c: t for c, t in INDEX_COLUMNS.items() if t != "object"})
