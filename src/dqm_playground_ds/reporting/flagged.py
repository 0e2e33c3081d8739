"""The flagged-LS table: every LS the report strategy flags, with how many strategies agree."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dqm_playground_ds.reporting.plotting import short_name


def me_list(value: Any) -> list[str]:
    """The MEs of a ``top_mes`` cell: a sequence (predictions) or ``a; b`` text (CSV tables)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    items = str(value).split("; ") if isinstance(value, str) else list(value)
    return [str(m) for m in items if m]


def short_mes(value: Any) -> str:
    """``top_mes`` as short ME names, comma separated (what a table cell shows)."""
    return ", ".join(short_name(m) for m in me_list(value))


def flagged_table(predictions: pd.DataFrame, strategy: str) -> pd.DataFrame:
    """Every LS flagged by ``strategy``, all runs, sorted by run and LS: score, score / threshold,
    label, split, quality, its leading MEs and ``k / n`` strategies flagging it too."""
    n_strategies = predictions["strategy"].nunique()
    agree = predictions.groupby(["run", "lumi"])["is_anomalous"].sum().rename("flagged_by")
    d = predictions[
        (predictions["strategy"] == strategy) & predictions["is_anomalous"].astype(bool)
    ]
    d = d.merge(agree.reset_index(), on=["run", "lumi"], how="left")
    missing = pd.Series(pd.NA, index=d.index)
    out = pd.DataFrame(
        {
            "run": d["run"].astype("int64"),
            "LS": d["lumi"].astype("int64"),
            "score": d["score"].astype(float),
            "score / threshold": d["score"].astype(float) / d["threshold"].astype(float),
            "label": d.get("label", missing),
            "split": d.get("split", missing),
            "quality": d.get("quality", missing),
            "top MEs": [short_mes(v) for v in d["top_mes"]],
            "flagged by": [f"{int(k)} / {n_strategies}" for k in d["flagged_by"]],
        }
    )
    return out.sort_values(["run", "LS"]).reset_index(drop=True)
