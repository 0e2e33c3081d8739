"""Integrity check of every histogram from what the serialized object itself stores.

ZSTD baskets (ROOT's 505 setting, the project's writer's default) carry no checksum, so a flipped
bit in a file can decompress to a histogram that parses: its bin contents are then silently wrong.
(ZLIB baskets end with an Adler-32 checksum; they are what a ``TFile`` opened without a setting
gets in ROOT 6.40, and CMSSW's ``DQMRootOutputModule`` opens its file so.) Two checks catch that
without any external reference:

* **structure**: every entry of one ME and byte length holds the same bytes outside its statistics,
  arrays and axis limits (names, titles, attributes, byte counts, class versions, array sizes); an
  entry that disagrees with a strict majority of its group is corrupt; axis limits must be finite
  and increasing;
* **content**: ROOT keeps ``fEntries`` (number of fills) and ``fTsumw`` (sum of in-range weights)
  beside the bins. Where one of them equals the sum of the bins (with or without the flow bins) for
  most entries of an ME, an entry where none of them does is corrupt. MEs whose statistics never
  match their bins (weighted fills, ``SetBinContent`` without statistics) are not judged, so a
  valid file is never flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from dqm_playground_ds.readers.dqmio.gather import gather
from dqm_playground_ds.readers.dqmio.layout import EntryLayout

_EPS = float(np.finfo(np.float64).eps)
LOOSE, LOOSE_LIMIT = 1e-5, 1e-4  # contents summed in float32 with rounding


@dataclass(frozen=True)
class Failure:
    """One histogram that fails the check: where it is and why."""

    entry: int
    me: str
    run: int
    lumi: int
    reason: str

    def __str__(self) -> str:
        return f"entry {self.entry} ({self.me}, run {self.run} lumi {self.lumi}): {self.reason}"


@lru_cache(maxsize=4096)
def static_ranges(layout: EntryLayout) -> tuple[tuple[int, int], ...]:
    """Byte ranges [lo, hi) of an entry that must be equal in every entry of its ME and length."""
    ranges, lo = [], 0
    for v_lo, v_hi in sorted(layout.variable):
        if v_lo > lo:
            ranges.append((lo, v_lo))
        lo = max(lo, v_hi)
    if lo < layout.length:
        ranges.append((lo, layout.length))
    return tuple(ranges)


def structure_outliers(buf: np.ndarray, starts: np.ndarray, layout: EntryLayout) -> np.ndarray:
    """Mask of entries whose fixed bytes differ from those of a strict majority of the group.

    The fixed bytes are compared range by range (views when the entries are equally spaced);
    only a group where some entry differs is gathered whole to find the majority.
    """
    n = len(starts)
    bad = np.zeros(n, dtype=bool)
    if n < 3:
        return bad
    ranges = static_ranges(layout)
    blocks = [gather(buf, starts, lo, hi - lo) for lo, hi in ranges]
    same = np.ones(n, dtype=bool)
    for block in blocks:
        same &= (block == block[0]).all(axis=1)
    if same.all():
        return bad
    if 2 * int(same.sum()) > n:
        return ~same
    rows = np.concatenate(blocks, axis=1)
    _, inverse, counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
    top = int(np.argmax(counts))
    if 2 * int(counts[top]) > n:
        return inverse.reshape(-1) != top
    return bad  # no majority: nothing to compare against


def bad_axes(cols: dict[str, np.ndarray], dim: int) -> np.ndarray:
    """Axis limits that no histogram can have (not finite, or not increasing)."""
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(cols["x_min"]) & np.isfinite(cols["x_max"]))
        bad |= ~(cols["x_max"] > cols["x_min"])
        if dim == 2:
            bad |= ~(np.isfinite(cols["y_min"]) & np.isfinite(cols["y_max"]))
            bad |= ~(cols["y_max"] > cols["y_min"])
    return bad


def residuals(
    raw: np.ndarray,
    inner: np.ndarray,
    layout: EntryLayout,
    entries: np.ndarray,
    tsumw: np.ndarray,
) -> np.ndarray:
    """Relative distance of the stored statistics to the bin sums (the best of three matches).

    ``raw`` are the (n, fN) arrays in ROOT's layout (flow bins included, any dtype); ``inner`` the
    in-range bins as float64 (n, bins), as the reader already holds them: only the flow bins of
    ``raw`` are converted and summed again.
    """
    in_range = inner.sum(axis=1)
    if layout.dim == 1:
        flow = raw[:, 0].astype(np.float64) + raw[:, -1]
    else:
        grid = raw.reshape(len(raw), layout.ny + 2, layout.nx + 2)
        flow = grid[:, 0, :].sum(axis=1, dtype=np.float64) + grid[:, -1, :].sum(
            axis=1, dtype=np.float64
        )
        flow += grid[:, 1:-1, 0].sum(axis=1, dtype=np.float64)
        flow += grid[:, 1:-1, -1].sum(axis=1, dtype=np.float64)
    total = in_range + flow
    with np.errstate(invalid="ignore", over="ignore"):
        by_entries = np.minimum(np.abs(entries - in_range), np.abs(entries - total))
        r = by_entries / np.maximum(np.abs(entries), 1.0)
        by_tsumw = np.abs(tsumw - in_range) / np.maximum(np.abs(tsumw), 1.0)
        r = np.where(tsumw != 0, np.minimum(r, by_tsumw), r)
    return np.where(np.isfinite(r), r, np.inf)


def content_outliers(r: np.ndarray, n_values: int) -> np.ndarray:
    """Entries of one ME whose statistics disagree with their bins where most of the ME's agree.

    Sums that are exact up to float64 rounding (counts, doubles) are held to that rounding bound
    (``n_values`` bins); sums of float32 contents to a looser one.
    """
    n = len(r)
    tight = max(4.0 * n_values * _EPS, 1e-14)
    for tol, limit in ((tight, 8 * tight), (LOOSE, LOOSE_LIMIT)):
        if 2 * int((r <= tol).sum()) > n:
            return r > limit
    return np.zeros(n, dtype=bool)
