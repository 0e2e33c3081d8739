"""The flagged LS worth opening first, one per problem: the report's detail plots follow them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

TOP_COLUMNS = [
    "rank",
    "run",
    "lumi",
    "strategy",
    "score",
    "threshold",
    "label",
    "split",
    "quality",
    "block_first",
    "block_last",
    "n_strategies_flagging",
    "top_mes",
]


def leading_me(value: Any) -> str:
    """The first ME of a ``top_mes`` cell, "" if none."""
    items = list(value) if value is not None and not isinstance(value, str) else [value]
    return str(items[0]) if items and items[0] is not None else ""


def flagged_blocks(lumi: np.ndarray, leading: np.ndarray) -> np.ndarray:
    """Block number of each flagged LS (sorted by LS): a block is a run of consecutive LS whose
    leading ME is the same, i.e. one problem, even when a strategy flags a whole run."""
    if not len(lumi):
        return np.empty(0, dtype=int)
    new = np.r_[True, (np.diff(lumi) != 1) | (leading[1:] != leading[:-1])]
    return np.cumsum(new)


def _block_bounds(flagged: pd.DataFrame) -> pd.DataFrame:
    """(run, lumi, block_first, block_last) of every flagged LS (sorted by run and LS)."""
    blocks = []
    for run, rows in flagged.groupby("run", sort=True):
        leading = np.array([leading_me(v) for v in rows["top_mes"]], dtype=object)
        b = flagged_blocks(rows["lumi"].to_numpy(), leading)
        blocks.append(
            pd.DataFrame(
                {
                    "run": run,
                    "lumi": rows["lumi"].to_numpy(),
                    "block_first": rows.groupby(b)["lumi"].transform("min").to_numpy(),
                    "block_last": rows.groupby(b)["lumi"].transform("max").to_numpy(),
                }
            )
        )
    return pd.concat(blocks) if blocks else pd.DataFrame()


def select_top_lumisections(
    predictions: pd.DataFrame,
    strategy: str,
    n: int,
    splits: Sequence[str] | None = ("apply",),
    exclude_quality_failures: bool = True,
    distinct_blocks: bool = True,
) -> pd.DataFrame:
    """The ``n`` flagged LS of ``strategy`` with the highest score, ranked.

    ``distinct_blocks``: only the peak LS of each block (consecutive flagged LS with the same
    leading ME), so that five plots show five problems rather than five LS of one.
    ``exclude_quality_failures``: LS that fail the quality cuts (ramp-up, low statistics) are
    skipped; their histograms are noise and the quality detail already says why. ``splits``: the
    splits the LS may come from (None = any).
    """
    agree = predictions.groupby(["run", "lumi"])["is_anomalous"].sum()
    d = predictions[
        (predictions["strategy"] == strategy) & predictions["is_anomalous"].astype(bool)
    ]
    d = d.sort_values(["run", "lumi"]).reset_index(drop=True)
    bounds = _block_bounds(d)
    if bounds.empty:
        return pd.DataFrame(columns=TOP_COLUMNS)
    d = d.merge(bounds, on=["run", "lumi"], how="left")
    if splits is not None and "split" in d:
        d = d[d["split"].isin(list(splits))]
    if exclude_quality_failures and "quality" in d:
        d = d[d["quality"].fillna("ok") == "ok"]
    d = d.sort_values("score", ascending=False, kind="stable")
    if distinct_blocks:
        d = d.drop_duplicates(["run", "block_first"])
    d = d.head(int(n)).reset_index(drop=True)
    d = d.merge(agree.rename("n_strategies_flagging").reset_index(), on=["run", "lumi"], how="left")
    d["rank"] = np.arange(1, len(d) + 1)
    d["top_mes"] = ["; ".join(str(m) for m in (v if v is not None else [])) for v in d["top_mes"]]
    for col in ("label", "split", "quality"):
        if col not in d:
            d[col] = pd.NA
    return d[TOP_COLUMNS].astype({"rank": "int64", "run": "int64", "lumi": "int64"})


def top_prefix(rank: int, run: int, lumi: int) -> str:
    """File-name prefix shared by the plots of one top LS (the report groups them by it)."""
    return f"{int(rank):02d}_run{int(run)}_ls{int(lumi):04d}"
