"""Certification labels per lumisection (LS) from Run Registry style JSON masks.

A mask maps run numbers to 1-based inclusive LS ranges, ``{"315257": [[1, 88], [91, 92]]}``. The
labels follow the field's convention (``docs/anomaly-detection.md``):

================================  =========  =====================
LS                                label      ``label_reason``
================================  =========  =====================
run in the bad-runs list          bad        ``bad_run``
in the golden JSON                good       ``golden``
DCS on, run certified, not golden bad        ``dcs_on_not_golden``
DCS off (a DCS JSON is given)     unknown    ``dcs_off``
no DCS JSON, run certified        bad        ``not_golden``
run absent from the golden JSON   unknown    ``run_not_certified``
================================  =========  =====================

A run absent from the golden JSON is *not yet certified*, not bad. Masks are validated strictly: a
malformed run key or range raises :class:`LabelError` naming the run; overlapping ranges raise too
unless ``overlap="merge"`` (they are then merged and logged). Touching ranges (``[1, 5], [6, 9]``)
are not overlaps and are merged silently, as the Run Registry itself writes them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

GOOD, BAD, UNKNOWN = "good", "bad", "unknown"
LABELS = (GOOD, BAD, UNKNOWN)

Overlap = Literal["raise", "merge"]


class LabelError(ValueError):
    """A certification mask or bad-runs list is malformed; the message names the run and range."""


def _as_int(value: Any, what: str) -> int:
    # bool is an int subclass and 1.5 is not a run number: refuse both instead of guessing
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, str)):
        raise LabelError(f"{what}: {value!r} is not an integer")
    try:
        return int(value)
    except ValueError as exc:
        raise LabelError(f"{what}: {value!r} is not an integer") from exc


@dataclass(frozen=True)
class LumiMask:
    """Sorted, non-overlapping 1-based inclusive LS ranges per run."""

    ranges: Mapping[int, tuple[tuple[int, int], ...]]
    name: str = "mask"

    @classmethod
    def from_json(
        cls,
        mapping: Mapping[Any, Any],
        *,
        name: str = "mask",
        overlap: Overlap = "raise",
        overlap_setting: str = "overlap='merge'",
    ) -> LumiMask:
        """Validate a Run Registry mapping; ``overlap`` decides between an error and a merge.

        ``overlap_setting`` is how the caller's user asks for a merge (named in the error).
        """
        if overlap not in ("raise", "merge"):
            raise LabelError(f"{name}: overlap must be 'raise' or 'merge', got {overlap!r}")
        if not isinstance(mapping, Mapping):
            raise LabelError(
                f"{name}: expected a mapping run -> ranges, got {type(mapping).__name__}"
            )
        out: dict[int, tuple[tuple[int, int], ...]] = {}
        for key, value in mapping.items():
            run = _as_int(key, f"{name}: run key")
            if run <= 0:
                raise LabelError(f"{name}: run {key!r} must be positive")
            if run in out:
                raise LabelError(f"{name}: run {run} appears twice")
            out[run] = _ranges(value, f"{name}: run {run}", overlap, overlap_setting)
        return cls(out, name)

    @property
    def runs(self) -> frozenset[int]:
        return frozenset(self.ranges)

    def __len__(self) -> int:
        """Number of LS in the mask."""
        return sum(b - a + 1 for r in self.ranges.values() for a, b in r)

    def contains(self, runs: Iterable[int], lumis: Iterable[int]) -> np.ndarray:
        """Vectorised membership of (run, lumi) pairs."""
        runs = np.asarray(list(runs) if not isinstance(runs, np.ndarray) else runs, dtype=np.int64)
        lumis = np.asarray(
            list(lumis) if not isinstance(lumis, np.ndarray) else lumis, dtype=np.int64
        )
        out = np.zeros(len(runs), dtype=bool)
        for run in np.unique(runs):
            ranges = self.ranges.get(int(run))
            if not ranges:
                continue
            sel = runs == run
            starts = np.array([a for a, _ in ranges])
            ends = np.array([b for _, b in ranges])
            idx = np.searchsorted(starts, lumis[sel], side="right") - 1
            ok = idx >= 0
            ok[ok] = lumis[sel][ok] <= ends[idx[ok]]
            out[sel] = ok
        return out

    def to_json(self) -> dict[str, list[list[int]]]:
        return {str(r): [[a, b] for a, b in self.ranges[r]] for r in sorted(self.ranges)}


def _ranges(
    value: Any, what: str, overlap: Overlap, setting: str = "overlap='merge'"
) -> tuple[tuple[int, int], ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise LabelError(f"{what}: expected a list of [first, last] ranges, got {value!r}")
    pairs = []
    for raw in value:
        if isinstance(raw, (str, bytes)) or not isinstance(raw, Iterable):
            raise LabelError(f"{what}: range {raw!r} is not [first, last]")
        item = list(raw)
        if len(item) != 2:
            raise LabelError(f"{what}: range {item!r} is not [first, last]")
        first, last = (_as_int(v, f"{what} range {item!r}") for v in item)
        if first < 1:
            raise LabelError(f"{what}: range {item!r} starts below LS 1 (ranges are 1-based)")
        if last < first:
            raise LabelError(f"{what}: range {item!r} ends before it starts")
        pairs.append((first, last))
    pairs.sort()
    merged: list[tuple[int, int]] = []
    for first, last in pairs:
        if merged and first <= merged[-1][1]:
            if overlap == "raise":
                raise LabelError(
                    f"{what}: ranges {list(merged[-1])} and {[first, last]} overlap "
                    f"(set {setting} to merge them)"
                )
            log.warning("%s: merging overlapping ranges %s and %s", what, merged[-1], [first, last])
            merged[-1] = (merged[-1][0], max(last, merged[-1][1]))
        elif merged and first == merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return tuple(merged)


def parse_bad_runs(value: Iterable[Any] | None) -> frozenset[int]:
    """A list of run numbers (ints or digit strings); ``None`` is the empty list."""
    if value is None:
        return frozenset()
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise LabelError(f"bad runs: expected a list of run numbers, got {value!r}")
    return frozenset(_as_int(v, "bad runs") for v in value)


def label_lumisections(
    runs: Iterable[int],
    lumis: Iterable[int],
    golden: LumiMask,
    dcs: LumiMask | None = None,
    bad_runs: Iterable[int] = (),
    certified_runs: Literal["golden", "dcs"] = "golden",
) -> pd.DataFrame:
    """``label`` (good/bad/unknown) and ``label_reason`` for each (run, lumi); see module doc.

    ``certified_runs="dcs"``: every run of the DCS JSON has been certified (a golden JSON that
    omits runs with no good LS, as in the 2017 ML4DQM set), so its DCS-on LS outside the golden
    JSON are bad, not ``run_not_certified``.
    """
    if certified_runs not in ("golden", "dcs"):
        raise LabelError(
            f"data_processing.labels.certified_runs must be golden or dcs, got {certified_runs!r}"
        )
    if certified_runs == "dcs" and dcs is None:
        raise LabelError("data_processing.labels.certified_runs=dcs needs a DCS JSON")
    runs = np.asarray(list(runs) if not isinstance(runs, np.ndarray) else runs, dtype=np.int64)
    lumis = np.asarray(list(lumis) if not isinstance(lumis, np.ndarray) else lumis, dtype=np.int64)
    bad_runs = frozenset(int(r) for r in bad_runs)
    in_golden = golden.contains(runs, lumis)
    certified = np.isin(runs, list(golden.runs))
    if certified_runs == "dcs" and dcs is not None:
        certified |= np.isin(runs, list(dcs.runs))
    reason = np.full(len(runs), "run_not_certified", dtype=object)
    if dcs is None:
        reason[certified] = "not_golden"
    else:
        in_dcs = dcs.contains(runs, lumis)
        reason[certified | np.isin(runs, list(dcs.runs))] = "dcs_off"
        reason[certified & in_dcs] = "dcs_on_not_golden"
        inconsistent = in_golden & ~in_dcs
        if inconsistent.any():
            log.warning(
                "%d LS are golden but not DCS-on (e.g. run %d LS %d); kept as good",
                int(inconsistent.sum()),
                runs[inconsistent][0],
                lumis[inconsistent][0],
            )
    reason[in_golden] = "golden"
    is_bad_run = np.isin(runs, list(bad_runs))
    if (is_bad_run & in_golden).any():
        log.warning("bad-runs list overrides %d golden LS", int((is_bad_run & in_golden).sum()))
    reason[is_bad_run] = "bad_run"
    label = np.full(len(runs), UNKNOWN, dtype=object)
    label[np.isin(reason, ["golden"])] = GOOD
    label[np.isin(reason, ["bad_run", "dcs_on_not_golden", "not_golden"])] = BAD
    return pd.DataFrame(
        {
            "run": runs,
            "lumi": lumis,
            "label": pd.Series(label, dtype="string"),
            "label_reason": pd.Series(reason, dtype="string"),
        }
    )
