"""Refuse to apply a model to data it was not trained for: other MEs, other binnings.

Preprocessing would mark such LS ``missing`` or ``bad_binning`` one by one and the run would end
with every LS flagged; a model/data mismatch is a configuration error, so it stops the run with a
message naming the MEs and both binnings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dqm_playground_ds.processing.preprocessing import BINNING_COLUMNS


class ModelMismatchError(ValueError):
    """The new data does not carry the MEs or binnings the model was trained on."""


def _fmt(b: tuple[float, ...]) -> str:
    dim, nx, x0, x1, ny, y0, y1 = b
    if int(dim) == 1:
        return f"1D {int(nx)} bins [{x0:g}, {x1:g}]"
    return f"2D {int(nx)}x{int(ny)} bins x [{x0:g}, {x1:g}] y [{y0:g}, {y1:g}]"


def check_compatible(
    binning: dict[str, tuple[float, ...]], histograms: pd.DataFrame, model: str = "model"
) -> None:
    """Every model ME is in ``histograms`` and its most common binning there is the model's."""
    hist = histograms[histograms["lumi"] > 0] if "lumi" in histograms else histograms
    if hist.empty:
        return
    present = set(hist["me"].astype(str).unique())
    missing = sorted(set(binning) - present)
    problems = []
    if missing:
        problems.append(
            f"MEs the model was trained on are absent from the new data: {missing} "
            f"(the data has {sorted(present)[:10]}{' ...' if len(present) > 10 else ''})"
        )
    for me, rows in hist[hist["me"].isin(list(binning))].groupby("me", observed=True):
        frame = rows.loc[:, list(BINNING_COLUMNS)].astype("float64").fillna(0.0)
        common = tuple(float(v) for v in frame.value_counts().index[0])
        expected = tuple(float(v) for v in binning[str(me)])
        if not np.allclose(common, expected, rtol=1e-9, atol=0.0):
            problems.append(
                f"{me}: the model expects {_fmt(expected)}, the data has {_fmt(common)}"
            )
    if problems:
        raise ModelMismatchError(
            f"{model} cannot score these data (trained on other MEs or binnings):\n  "
            + "\n  ".join(problems)
        )
