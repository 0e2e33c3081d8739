"""``FullName`` without a Python object per entry: parse the branch's raw baskets, factorize exactly.

A type tree holds one ``FullName`` per (LS, ME), the same few hundred names over and over, so
selecting MEs costs mostly this branch: uproot's ``array()`` reads it basket by basket in Python,
and factorizing by ``bytes`` objects builds one per entry. Here the basket bytes (read on the
reader's thread pool) are split with numpy, and names are factorized by a 64-bit hash of their
padded bytes, then checked byte for byte against one representative per code, so a hash collision
cannot merge two names (it falls back to an exact factorization).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_LONG = 255  # a ROOT string longer than 254 bytes: 0xFF, then its length in 4 big-endian bytes
_MIX = np.uint64(0x9E3779B97F4A7C15)


class NamesError(ValueError):
    """The bytes of a ``FullName`` basket are not a sequence of ROOT strings."""


def parse_strings(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(characters, lengths) of the ROOT strings (1-byte length, then the bytes) of one basket.

    ``offsets`` are the basket's entry offsets (n + 1); raises :class:`NamesError` when an entry
    is not exactly one string.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    starts, ends = offsets[:-1], offsets[1:]
    n = len(starts)
    if n == 0:
        return np.empty(0, dtype=np.uint8), np.empty(0, dtype=np.int64)
    if (ends <= starts).any() or ends[-1] > len(data) or starts[0] < 0:
        raise NamesError("entry offsets are not increasing or run past the basket")
    lengths = data[starts].astype(np.int64)
    header = np.ones(n, dtype=np.int64)
    long = np.flatnonzero(lengths == _LONG)
    for i in long.tolist():  # rare: names are far shorter than 255 bytes
        s = int(starts[i])
        if s + 5 > ends[i]:
            raise NamesError(f"entry {i}: a long-string header runs past the entry")
        lengths[i] = int.from_bytes(data[s + 1 : s + 5].tobytes(), "big")
        header[i] = 5
    if (ends - starts != header + lengths).any():
        bad = int(np.flatnonzero(ends - starts != header + lengths)[0])
        raise NamesError(
            f"entry {bad}: {int(ends[bad] - starts[bad])} bytes, but its string header says "
            f"{int(lengths[bad])} characters"
        )
    keep = np.ones(int(ends[-1] - starts[0]), dtype=bool)
    header_at = np.repeat(starts - starts[0], header) + _ramp(header)
    keep[header_at] = False
    return data[int(starts[0]) : int(ends[-1])][keep], lengths


def _ramp(counts: np.ndarray) -> np.ndarray:
    """0, 1, ..., c - 1 for every count, concatenated."""
    total = int(counts.sum())
    return np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)


def factorize(chars: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int64 code per string, sorted unique strings as an object array of str)."""
    n = len(lengths)
    if n == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
    width = max(int(lengths.max()), 1)
    width = -(-width // 8) * 8  # whole 64-bit words
    fixed = np.zeros(n * width, dtype=np.uint8)  # names padded with NULs to one width
    starts = np.cumsum(lengths) - lengths
    fixed[np.repeat(np.arange(n, dtype=np.int64) * width, lengths) + _ramp(lengths)] = chars
    words = fixed.view(np.uint64).reshape(n, width // 8)
    with np.errstate(over="ignore"):
        h = lengths.astype(np.uint64)
        for k in range(words.shape[1]):
            h = (h ^ words[:, k]) * _MIX
            h ^= h >> np.uint64(29)
    codes, _ = pd.factorize(h)  # codes numbered in order of first appearance
    running = np.maximum.accumulate(codes)
    first = np.flatnonzero(np.concatenate(([True], running[1:] > running[:-1])))
    rep = first[codes]
    if not ((lengths == lengths[rep]).all() and (words == words[rep]).all()):
        return _factorize_exact(fixed.view(f"S{width}"))  # a hash collision
    uniques = [
        chars[s : s + ln].tobytes().decode()
        for s, ln in zip(starts[first], lengths[first], strict=True)
    ]
    order = np.argsort(np.array(uniques, dtype=object), kind="stable")  # code point = UTF-8 order
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[codes], np.array(uniques, dtype=object)[order]


def _factorize_exact(padded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(padded, sort=True)  # UTF-8 byte order = str order
    return codes.astype(np.int64), np.array([u.decode() for u in uniques], dtype=object)
