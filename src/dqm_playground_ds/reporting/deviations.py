"""How far each ME is from its reference in each LS: the reference test's chi2/ndf per LS."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from dqm_playground_ds.detection.reference import Reference
from dqm_playground_ds.histogram_tables import HistogramTable, as_table
from dqm_playground_ds.schema import data_matrix

DEVIATION_COLUMNS = ["run", "lumi", "me", "entries", "chi2_ndf"]


def me_deviation_table(
    histograms: HistogramTable | pd.DataFrame,
    references: Mapping[str, Reference],
    chunk_size: int = 4096,
) -> pd.DataFrame:
    """Per (run, lumi, me): entries and chi2/ndf of the histogram against the ME's reference,
    from the same deviance pulls the reference test flags on. MEs without a reference, or whose
    binning differs from it, are left out. Reads one ME at a time, bins stacked by chunks."""
    frames = []
    table = as_table(histograms)
    for me in table.mes():
        ref = references.get(str(me))
        if ref is None:
            continue
        rows = table.read(me=me)
        rows = rows[rows["lumi"] > 0]
        if rows.empty:
            continue
        chi2 = _chi2(rows, ref, chunk_size)
        if chi2 is None:
            continue
        frames.append(
            pd.DataFrame(
                {
                    "run": rows["run"].to_numpy(),
                    "lumi": rows["lumi"].to_numpy(),
                    "me": str(me),
                    "entries": rows["entries"].to_numpy(dtype=np.float64),
                    "chi2_ndf": chi2,
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=DEVIATION_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def _chi2(rows: pd.DataFrame, ref: Reference, chunk_size: int) -> np.ndarray | None:
    """chi2/ndf of every row, or None when the rows' binning is not the reference's."""
    out = []
    for start in range(0, len(rows), chunk_size):
        try:
            m = data_matrix(rows.iloc[start : start + chunk_size])
        except ValueError:
            return None
        if m.shape[1] != len(ref.shape):
            return None
        out.append(ref.chi2(m))
    return np.concatenate(out)


def quality_ok_keys(lumisections: pd.DataFrame) -> pd.DataFrame:
    """(run, lumi) of the LS that pass the quality cuts (all LS if there is no quality)."""
    ok = lumisections
    if "quality" in ok:
        ok = ok[ok["quality"] == "ok"]
    return ok[["run", "lumi"]]


def wide(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """``column`` of a long (run, lumi, me) table as LS x ME."""
    return table.pivot_table(index=["run", "lumi"], columns="me", values=column, aggfunc="first")
