"""Monitor-element selection by exact names or regular expressions."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence

import numpy as np

MESpec = str | Sequence[str] | None


def as_patterns(me: MESpec) -> list[str] | None:
    """Normalise a selection: ``None`` (everything), one string, or a sequence of strings."""
    if me is None:
        return None
    if isinstance(me, str):
        return [me]
    patterns = list(me)
    for p in patterns:
        if not isinstance(p, str) or not p:
            raise TypeError(f"ME selection must be non-empty strings, got {p!r}")
    return patterns


def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def match_names(names: Iterable[str], patterns: list[str] | None) -> tuple[np.ndarray, list[str]]:
    """Return (mask over ``names``, patterns that matched nothing).

    A pattern selects a name equal to it or fully matched by it as a regular expression, so real ME
    names with regex characters in them (``PXDisk_+1``) still select themselves exactly.
    """
    names = list(names)
    if patterns is None:
        return np.ones(len(names), dtype=bool), []
    mask = np.zeros(len(names), dtype=bool)
    unmatched = []
    for pattern in patterns:
        regex = _compile(pattern)
        hit = np.fromiter(
            (n == pattern or (regex is not None and regex.fullmatch(n) is not None) for n in names),
            dtype=bool,
            count=len(names),
        )
        if not hit.any():
            unmatched.append(pattern)
        mask |= hit
    return mask, unmatched


def suggest(missing: list[str], names: Iterable[str], n: int = 3) -> dict[str, list[str]]:
    """Close matches for each missing pattern (on the full name and on the short name)."""
    names = sorted(set(names))
    by_short: dict[str, list[str]] = {}
    for name in names:
        by_short.setdefault(name.rsplit("/", 1)[-1], []).append(name)
    out = {}
    for pattern in missing:
        near = difflib.get_close_matches(pattern, names, n=n, cutoff=0.6)
        short = pattern.rsplit("/", 1)[-1]
        for s in difflib.get_close_matches(short, list(by_short), n=n, cutoff=0.8):
            near.extend(x for x in by_short[s] if x not in near)
        out[pattern] = near[:n]
    return out
