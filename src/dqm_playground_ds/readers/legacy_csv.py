"""Reader of the legacy ML4DQM "DataFrame" CSV files that the playground platform ingests.

Layout (see ``shared/data/real/README.md``): a written pandas MultiIndex repeats ``fromrun, fromlumi,
hname``; ``hname`` is the SHORT ROOT name; ``histo`` is a string ``"[0, 0, ...]"`` WITH under/overflow
(Xbins+2 values in 1D, (Ybins+2)*(Xbins+2) in 2D, y-major); ``entries`` is ROOT's ``fEntries``; 1D rows
say ``Ybins=1, Ymin=0, Ymax=1``. Older exports lack the repeated columns and add ``Json``/``DCSbit``.
The dimension is decided by the number of values (and checked against ``metype`` when present).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pandas as pd

from dqm_playground_ds.readers.dqmio.selection import MESpec, as_patterns, match_names
from dqm_playground_ds.schema import COLUMNS, KEY, empty_histograms

REQUIRED = (
    "fromrun",
    "fromlumi",
    "hname",
    "histo",
    "entries",
    "Xmax",
    "Xmin",
    "Xbins",
    "Ymax",
    "Ymin",
    "Ybins",
)
TWO_D_TYPES = {6, 7, 8, 13}
ONE_D_TYPES = {3, 4, 5, 12}


class LegacyCSVError(ValueError):
    """A legacy CSV file or one of its rows is malformed; the message names the file and line."""


def _parse_histo(text: object, where: str) -> np.ndarray:
    if not isinstance(text, str):
        raise LegacyCSVError(f"{where}: histo is {text!r}, expected a string '[v0, v1, ...]'")
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise LegacyCSVError(f"{where}: histo does not look like '[v0, v1, ...]': {body[:40]!r}")
    try:
        values = np.array(body[1:-1].split(","), dtype=np.float64)
    except ValueError as exc:
        raise LegacyCSVError(f"{where}: histo holds a non-number ({exc})") from exc
    return values


def _convert_chunk(chunk: pd.DataFrame, path: str, lines: np.ndarray) -> pd.DataFrame:
    n = len(chunk)
    out = {c: np.empty(n, dtype=object) for c in ("data",)}
    dims = np.zeros(n, dtype=np.int8)
    xb = chunk["Xbins"].to_numpy(np.int64)
    yb = chunk["Ybins"].to_numpy(np.int64)
    metype = chunk["metype"].to_numpy() if "metype" in chunk.columns else None
    for i, text in enumerate(chunk["histo"].to_numpy()):
        where = f"{path} line {lines[i]}"
        values = _parse_histo(text, where)
        if values.size == xb[i] + 2 and (metype is None or int(metype[i]) not in TWO_D_TYPES):
            dims[i] = 1
            out["data"][i] = values[1:-1].copy()
        elif values.size == (xb[i] + 2) * (yb[i] + 2) and (
            metype is None or int(metype[i]) not in ONE_D_TYPES
        ):
            dims[i] = 2
            out["data"][i] = values.reshape(yb[i] + 2, xb[i] + 2)[1:-1, 1:-1].reshape(-1).copy()
        else:
            raise LegacyCSVError(
                f"{where}: histo has {values.size} values; expected Xbins+2 = {xb[i] + 2} (1D) or "
                f"(Xbins+2)*(Ybins+2) = {(xb[i] + 2) * (yb[i] + 2)} (2D)"
                + (f" for metype {metype[i]}" if metype is not None else "")
            )
    two_d = dims == 2
    table = pd.DataFrame(
        {
            "run": chunk["fromrun"].to_numpy(np.int64),
            "lumi": chunk["fromlumi"].to_numpy(np.int64),
            "me": chunk["hname"].astype("string").to_numpy(),
            "dim": dims,
            "entries": chunk["entries"].to_numpy(np.float64),
            "x_min": chunk["Xmin"].to_numpy(np.float64),
            "x_max": chunk["Xmax"].to_numpy(np.float64),
            "x_bins": xb.astype(np.int32),
            "y_min": np.where(two_d, chunk["Ymin"].to_numpy(np.float64), np.nan),
            "y_max": np.where(two_d, chunk["Ymax"].to_numpy(np.float64), np.nan),
            "y_bins": np.where(two_d, yb, 0).astype(np.int32),
            "data": out["data"],
            "source": [path] * n,
        }
    )
    return table.astype({k: v for k, v in COLUMNS.items() if k != "data"})


INTEGER_COLUMNS = ("fromrun", "fromlumi", "Xbins", "Ybins")
FLOAT_COLUMNS = ("entries", "Xmin", "Xmax", "Ymin", "Ymax")


def _chunks(reader: Iterator[pd.DataFrame], path: str) -> Iterator[pd.DataFrame]:
    """The reader's chunks; a malformed row (extra fields, unbalanced quote) names its line."""
    while True:
        try:
            chunk = next(reader)
        except StopIteration:
            return
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise LegacyCSVError(f"{path}: malformed CSV ({detail})") from exc
        yield chunk


def _check_numbers(chunk: pd.DataFrame, path: str, line: int) -> None:
    """Run, lumi and bin counts are integers, axis limits and entries numbers: else name the line."""
    optional = ("metype",) if "metype" in chunk.columns else ()
    for col in (*INTEGER_COLUMNS, *optional, *FLOAT_COLUMNS):
        values = pd.to_numeric(chunk[col], errors="coerce")
        bad = values.isna().to_numpy().copy()
        integer = col in INTEGER_COLUMNS or col in optional
        if integer:
            with np.errstate(invalid="ignore"):
                bad |= ~np.isfinite(values.to_numpy(np.float64)) | (values % 1 != 0).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            kind = "an integer" if integer else "a number"
            raise LegacyCSVError(
                f"{path} line {line + i}: {col} is {chunk[col].iloc[i]!r}, expected {kind}"
            )
        chunk[col] = values.astype(np.int64) if integer else values


def iter_legacy_csv(
    path: str | os.PathLike[str],
    me: MESpec = None,
    include_run_level: bool = False,
    *,
    chunksize: int = 2000,
) -> Iterator[pd.DataFrame]:
    """Stream a legacy CSV file as histogram-table pieces of ``chunksize`` rows."""
    path = os.fspath(path)
    patterns = as_patterns(me)
    try:
        reader = pd.read_csv(path, chunksize=chunksize, dtype={"histo": str}, low_memory=False)
    except FileNotFoundError as exc:
        raise LegacyCSVError(f"{path}: file not found") from exc
    except pd.errors.EmptyDataError as exc:
        raise LegacyCSVError(f"{path}: file is empty") from exc
    line = 2
    with reader:
        for chunk in _chunks(reader, path):
            missing = [c for c in REQUIRED if c not in chunk.columns]
            if missing:
                raise LegacyCSVError(
                    f"{path}: not a legacy ML4DQM DataFrame CSV, missing column(s) {missing}"
                )
            bad = chunk[list(REQUIRED)].isna().any(axis=1).to_numpy()
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                cols = [c for c in REQUIRED if pd.isna(chunk.iloc[i][c])]
                raise LegacyCSVError(f"{path} line {line + i}: empty value in {cols}")
            _check_numbers(chunk, path, line)
            keep = np.ones(len(chunk), dtype=bool)
            if patterns is not None:
                keep, _ = match_names(chunk["hname"].astype(str), patterns)
            if not include_run_level:
                keep &= chunk["fromlumi"].to_numpy() > 0
            selected = chunk[keep]
            if len(selected):
                yield _convert_chunk(selected, path, line + np.flatnonzero(keep))
            line += len(chunk)


def read_legacy_csv(
    path: str | os.PathLike[str],
    me: MESpec = None,
    include_run_level: bool = False,
    *,
    chunksize: int = 2000,
) -> pd.DataFrame:
    """Read a legacy ML4DQM DataFrame CSV file into the histogram table (sorted by run, lumi, me)."""
    parts = list(iter_legacy_csv(path, me, include_run_level, chunksize=chunksize))
    if not parts:
        return empty_histograms()
    table = pd.concat(parts, ignore_index=True)
    dup = table.duplicated(KEY)
    if dup.any():
        row = table[dup].iloc[0]
        raise LegacyCSVError(
            f"{os.fspath(path)}: run {row['run']} lumi {row['lumi']} {row['me']} appears more than once"
        )
    return table.sort_values(KEY, kind="stable", ignore_index=True)
