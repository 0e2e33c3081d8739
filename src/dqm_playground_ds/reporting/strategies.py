"""Which strategies the report shows, and whose flags it follows."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)


def present_strategies(frame: pd.DataFrame) -> list[str]:
    """Strategies of ``frame`` (a ``strategy`` column) in order of appearance."""
    return list(dict.fromkeys(frame["strategy"].astype(str)))


def select_strategies(frame: pd.DataFrame, wanted: Sequence[str] | None) -> list[str]:
    """``wanted`` in its order, those absent from ``frame`` skipped with a warning; None = all."""
    present = present_strategies(frame)
    if wanted is None:
        return present
    missing = [s for s in wanted if s not in present]
    if missing:
        log.warning("strategies %s not in the predictions (have %s): skipped", missing, present)
    return [s for s in wanted if s in present]


def choose_report_strategy(
    predictions: pd.DataFrame, metrics: Mapping[str, Any] | None, wanted: str | None
) -> str:
    """``wanted`` if given, else the strategy the evaluation found best, else the first one."""
    present = present_strategies(predictions)
    if not present:
        raise ValueError("lumisection_predictions is empty: nothing to report")
    if wanted is not None:
        if wanted not in present:
            raise ValueError(f"report_strategy {wanted!r} not among the predictions {present}")
        return str(wanted)
    best = (metrics or {}).get("best_strategy")
    if best in present:
        return str(best)
    log.warning("no best strategy in the metrics: the report follows %r", present[0])
    return present[0]
