"""Errors of the DQMIO reader: each names the file (and tree/entry where known) and what is wrong."""

from __future__ import annotations

import re
from collections.abc import Sequence


class DQMIOError(Exception):
    """A file cannot be read as DQMIO (missing, not ROOT, truncated, corrupt, no ``Indices``...)."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = str(path)
        self.detail = detail
        super().__init__(f"{path}: {detail}")


class MissingMEError(DQMIOError):
    """A requested monitor element (exact name or pattern) matches nothing in the file."""

    def __init__(self, path: str, missing: list[str], suggestions: dict[str, list[str]]) -> None:
        self.missing = missing
        self.suggestions = suggestions
        parts = []
        for name in missing:
            near = suggestions.get(name) or []
            hint = f" (close matches: {', '.join(near)})" if near else ""
            try:
                re.compile(name)
            except re.error as exc:
                hint += f" (it is not a valid regular expression either: {exc})"
            parts.append(f"{name!r}{hint}")
        super().__init__(path, f"monitor element(s) not found: {'; '.join(parts)}")


class IntegrityError(DQMIOError):
    """Histograms whose bytes contradict what the object itself stores (a corrupt file)."""

    def __init__(self, path: str, tree: str, failures: Sequence[object], shown: int = 5) -> None:
        self.failures = failures
        listed = "; ".join(str(f) for f in failures[:shown])
        more = f"; and {len(failures) - shown} more" if len(failures) > shown else ""
        super().__init__(
            path,
            f"integrity check failed for {len(failures)} histogram(s) of {tree}, the file is "
            f"corrupt: {listed}{more}",
        )
