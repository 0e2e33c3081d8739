"""Working points: a threshold from a target false-alarm rate, and a persistence requirement.

The threshold is the ``1 - rate`` quantile of the scores of good *training* LS. Those scores
should be out-of-fold (a model scores its own training data too well, which would put the
threshold low and the real false-alarm rate far above the target). With fewer than ``1 / rate``
training LS the quantile is the largest score and the achievable rate is ``1 / n``: this is logged.

Persistence: a real problem usually lasts several LS while noise does not; requiring ``k``
consecutive flagged LS of one run lowers false alarms at the cost of the first LS of a problem.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


def threshold_for_rate(scores: np.ndarray, rate: float) -> float:
    """Smallest threshold with at most ``rate`` of ``scores`` strictly above it (NaN ignored)."""
    if not 0 < rate < 1:
        raise ValueError(f"false-alarm rate must be in (0, 1), got {rate}")
    s = np.sort(np.asarray(scores, dtype=np.float64)[np.isfinite(scores)])
    if s.size == 0:
        raise ValueError("no finite score to set a threshold on")
    allowed = int(np.floor(rate * s.size))  # scores allowed above the threshold
    if allowed == 0:
        log.warning(
            "%d training scores cannot resolve a %.3g false-alarm rate; threshold = max score",
            s.size,
            rate,
        )
    return float(s[s.size - 1 - allowed])


def persistent(
    flags: np.ndarray, runs: np.ndarray, lumis: np.ndarray, min_consecutive: int = 2
) -> np.ndarray:
    """Keep a flag only inside a block of ``min_consecutive`` flagged LS, consecutive in one run."""
    flags = np.asarray(flags, dtype=bool)
    if min_consecutive <= 1 or flags.size == 0:
        return flags.copy()
    frame = pd.DataFrame({"run": runs, "lumi": lumis, "flag": flags})
    order = np.lexsort((frame["lumi"].to_numpy(), frame["run"].to_numpy()))
    f = frame.iloc[order]
    run, lumi, flag = f["run"].to_numpy(), f["lumi"].to_numpy(), f["flag"].to_numpy()
    # a new block starts where the flag, the run or LS continuity changes
    new = np.ones(len(f), dtype=bool)
    new[1:] = (flag[1:] != flag[:-1]) | (run[1:] != run[:-1]) | (lumi[1:] != lumi[:-1] + 1)
    block = np.cumsum(new)
    size = np.bincount(block)[block]
    keep = flag & (size >= min_consecutive)
    out = np.empty_like(keep)
    out[order] = keep
    return out
