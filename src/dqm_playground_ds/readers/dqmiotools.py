"""Reader of dqmiotools Parquet exports (LukaLambrecht/dqmiotools) into the histogram table.

Columns ``fromrun, fromlumi, hname, metype, histo, entries, Xmin, Xmax, Xbins, Ymin, Ymax, Ybins``;
``histo`` has no flow bins and 2D is flattened **x-major** (``values().flatten()`` of an (nx, ny) array),
so it is transposed into the schema's y-outer order. ``entries`` there is the bin sum.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from dqm_playground_ds.readers.dqmio.selection import MESpec, as_patterns, match_names
from dqm_playground_ds.schema import COLUMNS, KEY, empty_histograms

REQUIRED = (
    "fromrun",
    "fromlumi",
    "hname",
    "metype",
    "histo",
    "entries",
    "Xmin",
    "Xmax",
    "Xbins",
    "Ymin",
    "Ymax",
    "Ybins",
)
TWO_D_TYPES = {6, 7, 8, 13}


class DQMIOToolsError(ValueError):
    """A dqmiotools Parquet file is malformed; the message names the file and row."""


def read_dqmiotools_parquet(
    path: str | os.PathLike[str], me: MESpec = None, include_run_level: bool = False
) -> pd.DataFrame:
    path = os.fspath(path)
    raw = pd.read_parquet(path)
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise DQMIOToolsError(f"{path}: not a dqmiotools parquet file, missing column(s) {missing}")
    keep = np.ones(len(raw), dtype=bool)
    patterns = as_patterns(me)
    if patterns is not None:
        keep, _ = match_names(raw["hname"].astype(str), patterns)
    if not include_run_level:
        keep &= raw["fromlumi"].to_numpy() > 0
    raw = raw[keep].reset_index(drop=True)
    if raw.empty:
        return empty_histograms()
    two_d = raw["metype"].isin(TWO_D_TYPES).to_numpy()
    xb = raw["Xbins"].to_numpy(np.int64)
    yb = raw["Ybins"].to_numpy(np.int64)
    data = np.empty(len(raw), dtype=object)
    for i, values in enumerate(raw["histo"].to_numpy()):
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        expected = xb[i] * yb[i] if two_d[i] else xb[i]
        if arr.size != expected:
            raise DQMIOToolsError(
                f"{path} row {i}: histo has {arr.size} values, Xbins/Ybins say {expected}"
            )
        data[i] = arr.reshape(xb[i], yb[i]).T.reshape(-1).copy() if two_d[i] else arr
    table = pd.DataFrame(
        {
            "run": raw["fromrun"].to_numpy(np.int64),
            "lumi": raw["fromlumi"].to_numpy(np.int64),
            "me": raw["hname"].astype(str).to_numpy(),
            "dim": np.where(two_d, 2, 1).astype(np.int8),
            "entries": raw["entries"].to_numpy(np.float64),
            "x_min": raw["Xmin"].to_numpy(np.float64),
            "x_max": raw["Xmax"].to_numpy(np.float64),
            "x_bins": xb.astype(np.int32),
            "y_min": np.where(two_d, raw["Ymin"].to_numpy(np.float64), np.nan),
            "y_max": np.where(two_d, raw["Ymax"].to_numpy(np.float64), np.nan),
            "y_bins": np.where(two_d, yb, 0).astype(np.int32),
            "data": data,
            "source": [path] * len(raw),
        }
    )
    table = table.astype({k: v for k, v in COLUMNS.items() if k != "data"})
    return table.sort_values(KEY, kind="stable", ignore_index=True)
