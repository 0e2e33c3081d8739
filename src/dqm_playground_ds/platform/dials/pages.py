"""DIALS ``th1``/``th2`` cursor pages -> columns of the histogram table, and columns -> the table.

Why a DIALS-specific converter: a download is tens of thousands of records, and the CPU spent
turning them into the table is what a sharded download cannot hide behind the latency. So a page
whose records are well formed with one binning (the usual case) is converted column by column:
one ``itemgetter`` pass per field, the bins of the whole page in one ``np.fromiter`` (no per-record
arrays), numeric columns kept as numpy arrays and concatenated once per table. Any other page goes
through ``records.records_to_columns``, record by record, which names a bad record.

``FIELDS`` is what the table needs: the client asks DIALS for these only (``?fields=``), which
drops ``dataset``, ``dataset_id``, ``me_id`` and ``file_id`` from every record.

``gc_paused``: decoding a page allocates a thousand containers (a dict and a list per record),
which makes the cyclic garbage collector run full collections over the whole heap again and again
during a download (~15-20 % of its CPU at 10k histograms). Those records form no cycles, so the
collector is paused while a download's pages are read and converted into the table (sharded or
not, the same), and runs as usual afterwards: what the download leaves is then collected once.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd

from dqm_playground_ds.platform.records import ID_COLUMN, records_to_columns
from dqm_playground_ds.schema import COLUMNS

# DIALS th1/th2 field names for the playground's (same histogram encoding); DIALS rows have no id
DIALS_NAMES = {"run": "run_number", "lumisection": "ls_number", "title": "me", "id": ""}
FIELDS = {
    1: ("run_number", "ls_number", "me", "x_min", "x_max", "x_bin", "entries", "data"),
    2: ("run_number", "ls_number", "me", "x_min", "x_max", "x_bin", "y_min", "y_max", "y_bin",
        "entries", "data"),
}  # fmt: skip

_gc_lock = threading.Lock()
_gc_state = {"depth": 0, "was_enabled": False}


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic GC off while any thread is inside; back to how it was when the last one leaves."""
    with _gc_lock:
        if _gc_state["depth"] == 0:
            _gc_state["was_enabled"] = gc.isenabled()
            gc.disable()
        _gc_state["depth"] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_state["depth"] -= 1
            if _gc_state["depth"] == 0 and _gc_state["was_enabled"]:
                gc.enable()


def page_columns(
    records: Sequence[Any], *, dim: int, source: str, on_bad: str = "raise"
) -> dict[str, Any]:
    """One page's columns (numpy arrays or lists); a page that is not uniform, record by record."""
    if records:
        fast = _uniform(records, dim, source)
        if fast is not None:
            return fast
    return records_to_columns(records, dim=dim, source=source, on_bad=on_bad, names=DIALS_NAMES)


def _bins(data: list[Any], n: int, dim: int, x_bins: int, y_bins: int) -> np.ndarray | None:
    """The page's bins as an ``(n, bins)`` array, or ``None`` when a record has another shape
    (flow bins, ragged rows: the per-record path deals with those)."""
    if dim == 2:
        if set(map(type, data)) != {list} or set(map(len, data)) != {y_bins}:
            return None
        data = list(chain.from_iterable(data))
    if set(map(type, data)) != {list} or set(map(len, data)) != {x_bins}:
        return None  # JSON arrays only (a string of x_bins digits would pass ``len``)
    size = n * x_bins * (y_bins if dim == 2 else 1)
    flat = np.fromiter(chain.from_iterable(data), dtype=np.float64, count=size)
    return flat.reshape(n, -1)


def _uniform(records: Sequence[Any], dim: int, source: str) -> dict[str, Any] | None:
    """The whole page at once when every record has every field and the same binning, else
    ``None`` (never an error: the per-record path then says what is wrong)."""
    try:
        values = {f: list(map(itemgetter(f), records)) for f in FIELDS[dim]}
        if any(None in v for v in values.values()):
            return None
        n, xs = len(records), values["x_bin"]
        x_bins = int(xs[0])
        y_bins = int(values["y_bin"][0]) if dim == 2 else 0
        if xs.count(xs[0]) != n or (dim == 2 and values["y_bin"].count(values["y_bin"][0]) != n):
            return None
        if x_bins <= 0 or (dim == 2 and y_bins <= 0):
            return None
        data = _bins(values["data"], n, dim, x_bins, y_bins)
        if data is None:
            return None
        nan = np.full(n, np.nan)
        return {
            "run": np.array(values["run_number"], dtype=np.int64),
            "lumi": np.array(values["ls_number"], dtype=np.int64),
            "me": list(map(str, values["me"])),
            "dim": np.full(n, dim, dtype=np.int64),
            "entries": np.array(values["entries"], dtype=np.float64),
            "x_min": np.array(values["x_min"], dtype=np.float64),
            "x_max": np.array(values["x_max"], dtype=np.float64),
            "x_bins": np.full(n, x_bins, dtype=np.int64),
            "y_min": np.array(values["y_min"], dtype=np.float64) if dim == 2 else nan,
            "y_max": np.array(values["y_max"], dtype=np.float64) if dim == 2 else nan,
            "y_bins": np.full(n, y_bins, dtype=np.int64),
            "data": data,  # (n, bins): split into row views once, in ``to_frame``
            "source": [source] * n,
            ID_COLUMN: np.full(n, -1, dtype=np.int64),
        }
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError):
        return None


def _rows(data: Any) -> list[Any]:
    return list(data)  # an (n, bins) array gives n row views; a list stays a list of arrays


def to_frame(parts: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Pages' columns as one frame with the schema's dtypes (plus ``platform_id``), each column
    concatenated once."""
    out: dict[str, Any] = {}
    for name, dtype in (*COLUMNS.items(), (ID_COLUMN, "int64")):
        if name == "data":
            rows = [row for p in parts for row in _rows(p[name])]
            data = np.empty(len(rows), dtype=object)
            data[:] = rows
            out[name] = data
        elif dtype == "string":
            out[name] = pd.array([v for p in parts for v in p[name]], dtype="string")
        elif parts:
            out[name] = np.concatenate([np.asarray(p[name], dtype=dtype) for p in parts])
        else:
            out[name] = np.empty(0, dtype=dtype)
    return pd.DataFrame(out)


def in_table_order(table: pd.DataFrame) -> tuple[pd.DataFrame, int | None]:
    """``table`` sorted by (run, lumi, me), as the project's reader orders it, and the position of
    the first histogram that appears twice (``None``: none does). One ``lexsort`` over integer
    keys (ME names as their sorted codes) instead of sorting and comparing strings row by row."""
    if table.empty:
        return table.reset_index(drop=True), None
    codes, _ = pd.factorize(table["me"], sort=True)
    run, lumi = table["run"].to_numpy(), table["lumi"].to_numpy()
    order = np.lexsort((codes, lumi, run))  # stable, last key first
    if not np.array_equal(order, np.arange(len(order))):
        table = table.take(order).reset_index(drop=True)
        codes, run, lumi = codes[order], run[order], lumi[order]
    same = (run[1:] == run[:-1]) & (lumi[1:] == lumi[:-1]) & (codes[1:] == codes[:-1])
    first = int(np.argmax(same)) + 1 if same.any() else None
    return table.reset_index(drop=True), first
