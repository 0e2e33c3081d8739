"""The content check's bin sums against a plain sum over ROOT's whole array."""

from __future__ import annotations

import numpy as np
import pytest

from dqm_playground_ds.readers.dqmio.integrity import (
    content_outliers,
    residuals,
    structure_outliers,
)
from dqm_playground_ds.readers.dqmio.layout import EntryLayout
from dqm_playground_ds.readers.dqmio.reader import _strip_flow


def _layout(dim: int, nx: int, ny: int) -> EntryLayout:
    return EntryLayout(
        length=0, dim=dim, dtype=">f4", th1_rel=0, th1_head=b"", x_rel=0,
        y_rel=-1 if dim == 1 else 0, entries_rel=0, array_rel=0, nx=nx, ny=ny,
    )  # fmt: skip


@pytest.mark.parametrize("dim", [1, 2])
def test_residuals_match_sums_with_and_without_the_flow_bins(dim):
    rng = np.random.default_rng(3)
    nx, ny = 7, (5 if dim == 2 else 0)
    layout = _layout(dim, nx, ny)
    raw = rng.poisson(4.0, size=(6, layout.n_values)).astype(">f4")
    inner = _strip_flow(raw, layout)
    full = raw.astype(np.float64)
    total = full.sum(axis=1)
    in_range = inner.sum(axis=1)
    assert (total > in_range).all()  # every entry has something in its flow bins
    zero = np.zeros(len(raw))
    # fEntries = every fill (flow included), or only the in-range ones; fTsumw = in-range sum
    np.testing.assert_array_equal(residuals(raw, inner, layout, total, zero), 0.0)
    np.testing.assert_array_equal(residuals(raw, inner, layout, in_range, zero), 0.0)
    np.testing.assert_array_equal(residuals(raw, inner, layout, zero + 1e9, in_range), 0.0)
    # one fill off, in fEntries only: seen at the size of one fill
    off = total.copy()
    off[2] += 1.0
    r = residuals(raw, inner, layout, off, zero)
    assert r[2] == pytest.approx(1.0 / off[2]) and (np.delete(r, 2) == 0).all()
    assert content_outliers(r, layout.n_values).tolist() == [False, False, True] + [False] * 3


@pytest.mark.parametrize("gap", [0, None], ids=["equally-spaced", "irregular"])
def test_structure_outliers_follow_the_majority_of_fixed_bytes(gap):
    """Bytes outside the variable regions must agree; which entry is odd does not matter."""
    from dataclasses import replace

    rng = np.random.default_rng(5)
    layout = replace(_layout(1, 3, 0), length=40, variable=((30, 40), (8, 16), (12, 20)))
    n = 5
    gaps = [gap or 0] * n if gap is not None else [0, 7, 1, 13, 2]
    starts = np.cumsum([0] + [40 + g for g in gaps[:-1]]).astype(np.int64)
    proto = rng.integers(0, 256, 40, dtype=np.uint8)
    buf = rng.integers(0, 256, int(starts[-1]) + 40, dtype=np.uint8)  # noise between entries
    for s in starts:
        buf[s : s + 40] = proto
        buf[s + 8 : s + 20] = rng.integers(0, 256, 12)  # variable: differs everywhere
        buf[s + 30 : s + 40] = rng.integers(0, 256, 10)

    def flagged(changes: dict[int, tuple[int, int]]) -> list[bool]:
        b = buf.copy()
        for entry, (pos, value) in changes.items():
            b[starts[entry] + pos] = value
        return structure_outliers(b, starts, layout).tolist()

    assert flagged({}) == [False] * n
    assert flagged({0: (3, proto[3] ^ 1)}) == [True] + [False] * 4  # the first one is odd
    assert flagged({1: (25, proto[25] ^ 1), 4: (0, proto[0] ^ 2)}) == [0, 1, 0, 0, 1]
    assert flagged({0: (21, 0), 1: (21, 0), 2: (21, 1), 3: (21, 1), 4: (21, 2)}) == [False] * n
    assert flagged({e: (5, proto[5] ^ 4) for e in (0, 1)}) == [True, True, False, False, False]
    assert flagged({2: (10, 0)}) == [False] * n  # a variable byte
