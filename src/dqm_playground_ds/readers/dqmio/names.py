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
_MAX_PERIOD_CANDIDATES = 4096  # strings of the first name's length tried as its repetition's start


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
    """(int64 code per string, sorted unique strings as an object array of str).

    A type tree repeats one LS's list of names LS after LS: the leading blocks equal to the first
    (compared byte for byte) take the first block's codes, and only the first block and what
    follows the repetition are factorized.
    """
    period, blocks = _repetition(chars, lengths)
    if blocks > 1:
        head = int(lengths[:period].sum())
        tail = period * blocks
        rest = np.concatenate((chars[:head], chars[head * blocks :]))
        codes, uniques = _factorize(rest, np.concatenate((lengths[:period], lengths[tail:])))
        return np.concatenate((np.tile(codes[:period], blocks), codes[period:])), uniques
    return _factorize(chars, lengths)


def _repetition(chars: np.ndarray, lengths: np.ndarray) -> tuple[int, int]:
    """(p, k): the first k * p strings are k copies of the first p (k = 1: no repetition)."""
    n = len(lengths)
    if n < 4:
        return n, 1
    first = chars[: int(lengths[0])]
    offsets = np.cumsum(lengths) - lengths
    candidates = np.flatnonzero(lengths[1 : n // 2 + 1] == lengths[0]) + 1
    candidates = candidates[:_MAX_PERIOD_CANDIDATES]  # a period longer than this: no fast path
    if len(candidates) == 0:
        return n, 1
    at = offsets[candidates][:, None] + np.arange(len(first))
    match = np.flatnonzero((chars[at] == first).all(axis=1))
    if len(match) == 0:
        return n, 1
    period = int(candidates[match[0]])
    block = lengths[:period]
    m = n // period
    same = (lengths[: m * period].reshape(m, period) == block).all(axis=1)
    m = int(np.argmin(same)) if not same.all() else m  # leading blocks of the same lengths
    width = int(block.sum())
    if m < 2 or width == 0:
        return n, 1
    rows = chars[: m * width].reshape(m, width)
    same = (rows == rows[0]).all(axis=1)
    m = int(np.argmin(same)) if not same.all() else m
    return (period, m) if m >= 2 else (n, 1)


def _factorize(chars: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
