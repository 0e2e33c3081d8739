"""The one histogram table every source produces (see ``docs/architecture.md``).

One row per (run, lumi, me). ``data`` holds bin contents without under/overflow; 2D maps are flattened
row-major with y outer and x inner, the convention of both web platforms. Bin contents are kept as
float64 so that TH1D/TH2D values survive exactly; Parquet stores them as ``list<double>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = [
    "COLUMNS",
    "HISTOGRAM_SCHEMA",
    "KEY",
    "HistogramSchemaError",
    "data_matrix",
    "empty_histograms",
    "validate_histograms",
]

# column -> pandas dtype of the in-memory table
COLUMNS: dict[str, str] = {
    "run": "int64",
    "lumi": "int64",
    "me": "string",
    "dim": "int8",
    "entries": "float64",
    "x_min": "float64",
    "x_max": "float64",
    "x_bins": "int32",
    "y_min": "float64",
    "y_max": "float64",
    "y_bins": "int32",
    "data": "object",
    "source": "string",
}

KEY = ["run", "lumi", "me"]

# One name per policy, shared by the readers, the extraction and the parameters:
MissingMEs = Literal["raise", "ignore"]
"""An input lacks a requested ME: ``raise`` (the input is an error, recorded bad) or ``ignore``."""
Duplicates = Literal["raise", "sum", "first"]
"""A (run, lumi, me) key met twice: refuse, add the bins (CMSSW's merge), or keep the first."""

HISTOGRAM_SCHEMA = pa.schema(
    [
        ("run", pa.int64()),
        ("lumi", pa.int64()),
        ("me", pa.string()),
        ("dim", pa.int8()),
        ("entries", pa.float64()),
        ("x_min", pa.float64()),
        ("x_max", pa.float64()),
        ("x_bins", pa.int32()),
        ("y_min", pa.float64()),
        ("y_max", pa.float64()),
        ("y_bins", pa.int32()),
        ("data", pa.list_(pa.float64())),
        ("source", pa.string()),
    ]
)


class HistogramSchemaError(ValueError):
    """A table does not follow the histogram schema; the message names the column or row."""


def empty_histograms() -> pd.DataFrame:
    """A table with the schema's columns and no rows."""
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in COLUMNS.items()})


def _row_label(df: pd.DataFrame, pos: int) -> str:
    row = df.iloc[pos]
    parts = []
    for col in ("run", "lumi", "me", "source"):
        if col in df.columns:
            value = row[col]
            value = value.item() if isinstance(value, np.generic) else value
            parts.append(f"{col}={value!r}")
    return f"row {pos} ({', '.join(parts)})"


def _first_bad(df: pd.DataFrame, mask: np.ndarray | pd.Series, what: str) -> None:
    mask = np.asarray(mask, dtype=bool)
    if mask.any():
        pos = int(np.flatnonzero(mask)[0])
        raise HistogramSchemaError(
            f"{_row_label(df, pos)}: {what} ({int(mask.sum())} bad row(s) in all)"
        )


def _as_float_array(value: object) -> np.ndarray:
    return np.asarray(value, dtype=np.float64).reshape(-1)


def _coerce_columns(out: pd.DataFrame, name: str) -> None:
    """Every numeric column to its schema dtype, in place; names the first row that is not."""
    for col, dtype in COLUMNS.items():
        if col in ("data", "me", "source"):
            continue
        try:
            values = pd.to_numeric(out[col], errors="raise")
        except (TypeError, ValueError) as exc:
            bad = pd.to_numeric(out[col], errors="coerce").isna() & out[col].notna()
            _first_bad(out, bad.to_numpy(), f"{col} is not numeric")
            raise HistogramSchemaError(f"{name}: column {col} is not numeric: {exc}") from exc
        if dtype.startswith("int"):
            if col == "y_bins":
                values = values.fillna(0)
            frac = values.to_numpy(dtype=np.float64) % 1 != 0
            _first_bad(out, frac, f"{col}={values[np.argmax(frac)]} is not an integer")
        out[col] = values.astype(dtype)
    out["me"] = out["me"].astype("string")
    out["source"] = out["source"].fillna("").astype("string")


def _check_ranges(out: pd.DataFrame) -> None:
    """Positive runs, LS >= 0, dims 1 or 2, bins and axis ranges that make a histogram."""
    _first_bad(out, out["run"].to_numpy() <= 0, "run must be positive")
    _first_bad(out, out["lumi"].to_numpy() < 0, "lumi must be >= 0 (0 = run-level)")
    _first_bad(out, (out["me"].str.len() == 0).to_numpy(), "me is empty")
    dim = out["dim"].to_numpy()
    _first_bad(out, ~np.isin(dim, (1, 2)), "dim must be 1 or 2")
    _first_bad(out, out["x_bins"].to_numpy() <= 0, "x_bins must be positive")
    is2d = dim == 2
    _first_bad(out, is2d & (out["y_bins"].to_numpy() <= 0), "2D histogram needs y_bins > 0")
    _first_bad(out, ~is2d & (out["y_bins"].to_numpy() != 0), "1D histogram must have y_bins = 0")
    _first_bad(
        out,
        ~(out["x_max"].to_numpy() > out["x_min"].to_numpy()),
        "x_max must be greater than x_min",
    )
    _first_bad(
        out,
        is2d & ~(out["y_max"].to_numpy() > out["y_min"].to_numpy()),
        "2D histogram needs y_max > y_min",
    )
    out.loc[~is2d, ["y_min", "y_max"]] = np.nan


def _checked_data(out: pd.DataFrame) -> np.ndarray:
    """``data`` as one float64 array per row, of x_bins * y_bins values."""
    is2d = out["dim"].to_numpy() == 2
    expected = out["x_bins"].to_numpy(np.int64) * np.where(is2d, out["y_bins"].to_numpy(), 1)
    values = out["data"].to_numpy()
    ready = np.fromiter(
        (type(v) is np.ndarray and v.dtype == np.float64 and v.ndim == 1 for v in values),
        dtype=bool,
        count=len(values),
    )
    data = np.empty(len(values), dtype=object)
    data[ready] = values[ready]  # already float64 arrays (every reader's output): no copy
    for pos in np.flatnonzero(~ready).tolist():
        try:
            data[pos] = _as_float_array(values[pos])
        except (TypeError, ValueError) as exc:
            raise HistogramSchemaError(
                f"{_row_label(out, pos)}: data is not a sequence of numbers ({exc})"
            ) from exc
    sizes = np.fromiter((v.size for v in data), dtype=np.int64, count=len(data))
    wrong = sizes != expected
    if wrong.any():
        pos = int(np.flatnonzero(wrong)[0])
        raise HistogramSchemaError(
            f"{_row_label(out, pos)}: data has {sizes[pos]} values, "
            f"expected x_bins*y_bins = {expected[pos]} ({int(wrong.sum())} bad row(s) in all)"
        )
    return data


def validate_histograms(df: pd.DataFrame, *, name: str = "histogram table") -> pd.DataFrame:
    """Check and coerce a table into the histogram schema; raise on the first bad column or row.

    Returns a new frame with exactly the schema's columns, in order, with the schema's dtypes and
    ``data`` as one float64 numpy array per row.
    """
    if not isinstance(df, pd.DataFrame):
        raise HistogramSchemaError(f"{name}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise HistogramSchemaError(f"{name}: missing column(s) {missing}; has {list(df.columns)}")
    out = df.loc[:, list(COLUMNS)].reset_index(drop=True)
    if out.empty:
        return empty_histograms()

    for col in ("run", "lumi", "me", "dim", "x_bins", "data"):
        _first_bad(out, out[col].isna().to_numpy(), f"{col} is missing")
    _coerce_columns(out, name)
    _check_ranges(out)
    out["data"] = _checked_data(out)
    dup = out.duplicated(KEY, keep=False).to_numpy()
    _first_bad(out, dup, "duplicate (run, lumi, me) key")
    return out


def data_matrix(df: pd.DataFrame, rows: Sequence[int] | None = None) -> np.ndarray:
    """Stack the ``data`` column of same-shaped histograms into one (n, bins) float64 matrix."""
    values = df["data"].to_numpy() if rows is None else df["data"].to_numpy()[rows]
    if len(values) == 0:
        return np.empty((0, 0), dtype=np.float64)
    sizes = {len(v) for v in values}
    if len(sizes) != 1:
        raise HistogramSchemaError(f"histograms have different bin counts {sorted(sizes)}")
    return np.stack([np.asarray(v, dtype=np.float64) for v in values])
