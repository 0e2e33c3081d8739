"""Playground histogram records <-> the project's histogram table (``schema.py``).

A 1D record maps as ``title -> me``, ``lumisection -> lumi``, ``x_bin -> x_bins``, ``data`` as is; a
2D record's ``data`` is a list of y rows of x values, flattened row-major (y outer, x inner), which is
the schema's order. ``source`` is the query URL the record came from. A record that cannot form a
histogram raises :class:`RecordError` naming the record, never a bare ``KeyError``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from dqm_playground_ds.platform.errors import RecordError
from dqm_playground_ds.schema import COLUMNS

log = logging.getLogger(__name__)

FIELDS_1D = ("run", "lumisection", "title", "data", "x_min", "x_max", "x_bin")
FIELDS_2D = (*FIELDS_1D, "y_min", "y_max", "y_bin")
ID_COLUMN = "platform_id"


def _label(record: Mapping[str, Any], dim: int) -> str:
    parts = [f"{dim}D record"]
    for key in ("id", "run", "lumisection", "title"):
        if key in record:
            parts.append(f"{key}={record[key]!r}")
    return " ".join(parts)


def _bins(record: Mapping[str, Any], dim: int, x_bins: int, y_bins: int) -> np.ndarray:
    """The record's bin contents, flattened y-outer/x-inner, without under/overflow."""
    try:
        arr = np.asarray(record["data"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RecordError(f"{_label(record, dim)}: data is not numeric or ragged ({exc})") from exc
    if dim == 1:
        arr = arr.reshape(-1)
        if arr.size == x_bins + 2:  # a platform export that kept the flow bins
            arr = arr[1:-1]
        if arr.size != x_bins:
            raise RecordError(f"{_label(record, dim)}: data has {arr.size} values, x_bin={x_bins}")
        return arr
    if arr.ndim != 2:
        raise RecordError(
            f"{_label(record, dim)}: 2D data must be a list of y rows of x values, "
            f"got an array of shape {arr.shape}"
        )
    if arr.shape == (y_bins + 2, x_bins + 2):
        arr = arr[1:-1, 1:-1]
    if arr.shape != (y_bins, x_bins):
        raise RecordError(
            f"{_label(record, dim)}: data is {arr.shape[0]} rows of {arr.shape[1]}, "
            f"expected y_bin={y_bins} rows of x_bin={x_bins}"
        )
    return arr.reshape(-1)


def record_to_row(record: Mapping[str, Any], dim: int, source: str) -> dict[str, Any]:
    """One histogram-table row from one playground record; raise ``RecordError`` when it is bad."""
    if not isinstance(record, Mapping):
        raise RecordError(f"{dim}D record is not an object: {str(record)[:80]!r}")
    required = FIELDS_1D if dim == 1 else FIELDS_2D
    missing = [f for f in required if record.get(f) is None]
    if missing:
        raise RecordError(f"{_label(record, dim)} lacks field(s) {missing}")
    try:
        x_bins = int(record["x_bin"])
        y_bins = int(record["y_bin"]) if dim == 2 else 0
        row = {
            "run": int(record["run"]),
            "lumi": int(record["lumisection"]),
            "me": str(record["title"]),
            "dim": dim,
            "x_min": float(record["x_min"]),
            "x_max": float(record["x_max"]),
            "x_bins": x_bins,
            "y_min": float(record["y_min"]) if dim == 2 else np.nan,
            "y_max": float(record["y_max"]) if dim == 2 else np.nan,
            "y_bins": y_bins,
        }
    except (TypeError, ValueError) as exc:
        raise RecordError(f"{_label(record, dim)}: a field has the wrong type ({exc})") from exc
    data = _bins(record, dim, x_bins, y_bins)
    entries = record.get("entries")
    row["entries"] = float(entries) if entries is not None else float(data.sum())
    row["data"] = data
    row["source"] = source
    row[ID_COLUMN] = int(record["id"]) if record.get("id") is not None else -1
    return row


def _uniform_columns(
    records: Sequence[Mapping[str, Any]],
    dim: int,
    source: str,
    names: Mapping[str, str] | None = None,
) -> dict[str, list[Any]] | None:
    """A whole page at once when every record is well formed with the same binning (the usual
    case: one ME per query); ``None`` sends the page through the per-record path, which names
    the bad record. ``names`` maps playground field names to the server's (DIALS: ``run`` is
    ``run_number``...), so no record is copied to rename its fields."""
    names = names or {}
    try:
        fields = FIELDS_2D if dim == 2 else FIELDS_1D
        values = {f: [r[names.get(f, f)] for r in records] for f in fields}
        if any(None in v for v in values.values()):
            return None
        x_bins, n = int(values["x_bin"][0]), len(records)
        y_bins = int(values["y_bin"][0]) if dim == 2 else 0
        if values["x_bin"].count(values["x_bin"][0]) != n or (
            dim == 2 and values["y_bin"].count(values["y_bin"][0]) != n
        ):
            return None
        data = np.array(values["data"], dtype=np.float64)
        if data.shape != ((n, x_bins) if dim == 1 else (n, y_bins, x_bins)):
            return None
        data = data.reshape(n, -1)
        given = [r.get("entries") for r in records]
        entries = np.array([0.0 if e is None else e for e in given], dtype=np.float64)
        if None in given:  # no entries: the sum of the bins, as record by record
            missing = np.array([e is None for e in given])
            entries[missing] = data[missing].sum(axis=1)
        id_name = names.get("id", "id")
        ids = [r.get(id_name) for r in records] if id_name else [None] * n

        def col(name: str, dtype: Any) -> list[Any]:
            return np.array(values[name], dtype=dtype).tolist()

        return {
            "run": col("run", np.int64),
            "lumi": col("lumisection", np.int64),
            "me": [str(t) for t in values["title"]],
            "dim": [dim] * n,
            "entries": entries.tolist(),
            "x_min": col("x_min", np.float64),
            "x_max": col("x_max", np.float64),
            "x_bins": [x_bins] * n,
            "y_min": col("y_min", np.float64) if dim == 2 else [np.nan] * n,
            "y_max": col("y_max", np.float64) if dim == 2 else [np.nan] * n,
            "y_bins": [y_bins] * n,
            "data": list(data),
            "source": [source] * n,
            ID_COLUMN: [int(i) if i is not None else -1 for i in ids],
        }
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        return None


def records_to_columns(
    records: Sequence[Mapping[str, Any]],
    *,
    dim: int,
    source: str,
    on_bad: str = "raise",
    names: Mapping[str, str] | None = None,
) -> dict[str, list[Any]]:
    """Records of one page as columns of histogram-table values (plus ``platform_id``).

    ``on_bad="skip"`` logs and drops a bad record instead of raising; the caller decides whether a
    partial table is acceptable. ``names`` maps the playground's field names (``run``,
    ``lumisection``, ``title``, ``id``) to the server's; an empty name means the field is absent.
    """
    if on_bad not in ("raise", "skip"):
        raise ValueError(f"on_bad must be 'raise' or 'skip', got {on_bad!r}")
    if records and all(isinstance(r, Mapping) for r in records):
        fast = _uniform_columns(records, dim, source, names)
        if fast is not None:
            return fast
    if names:
        records = [_renamed(r, names) for r in records]
    columns: dict[str, list[Any]] = {c: [] for c in (*COLUMNS, ID_COLUMN)}
    for record in records:
        try:
            row = record_to_row(record, dim, source)
        except RecordError as exc:
            if on_bad == "raise":
                raise RecordError(f"{exc} (from {source})") from exc
            log.warning("skipped a bad record from %s: %s", source, exc)
            continue
        for name, values in columns.items():
            values.append(row[name])
    return columns


def _renamed(record: Any, names: Mapping[str, str]) -> Any:
    """A record in the playground's field names (bad records keep their content for the error)."""
    if not isinstance(record, Mapping):
        return record
    out = dict(record)
    for ours, theirs in names.items():
        if theirs != ours:
            out.pop(ours, None)
            if theirs and theirs in record:
                out[ours] = record[theirs]
    return out


def columns_to_frame(parts: Iterable[Mapping[str, list[Any]]]) -> pd.DataFrame:
    """Column lists (one mapping per page) as one frame with the schema's dtypes."""
    parts = list(parts)
    out = {}
    for name, dtype in (*COLUMNS.items(), (ID_COLUMN, "int64")):
        values = [v for part in parts for v in part[name]]
        if name == "data":
            data = np.empty(len(values), dtype=object)
            data[:] = values
            out[name] = data
        elif dtype == "string":
            out[name] = pd.array(values, dtype="string")
        else:
            out[name] = np.asarray(values, dtype=dtype)
    return pd.DataFrame(out)


def records_to_frame(
    records: Sequence[Mapping[str, Any]], *, dim: int, source: str, on_bad: str = "raise"
) -> pd.DataFrame:
    """Records of one page as histogram-table rows (plus ``platform_id``), not yet validated."""
    return columns_to_frame([records_to_columns(records, dim=dim, source=source, on_bad=on_bad)])


def data_field(values: np.ndarray, dim: int, x_bins: int, y_bins: int) -> list[Any]:
    """The record's ``data`` field for flattened bins: a list, or y rows of x values for 2D."""
    arr = np.asarray(values, dtype=np.float64)
    if dim == 2:
        return arr.reshape(y_bins, x_bins).tolist()
    return arr.tolist()
