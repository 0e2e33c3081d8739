"""Extraction nodes: read every item of a histogram source, record bad ones, build one table."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
from tqdm.auto import tqdm

from dqm_playground_ds.dqmio import resolve_duplicates
from dqm_playground_ds.schema import KEY, empty_histograms, validate_histograms
from dqm_playground_ds.sources import HistogramSource, SourceError, index_frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractionParams:
    """``params:data_extraction``: which MEs to take and how to treat gaps and repeats."""

    me: list[str] | None = None
    include_run_level: bool = False
    missing_me: Literal["bad", "ignore"] = "bad"
    duplicates: Literal["raise", "sum", "first"] = "raise"
    progress: bool = True

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> ExtractionParams:
        known = set(cls.__dataclass_fields__)
        unknown = set(params) - known
        if unknown:
            raise ValueError(
                f"data_extraction: unknown parameter(s) {sorted(unknown)}; known {sorted(known)}"
            )
        me = params.get("me")
        if isinstance(me, str):
            me = [me]
        out = cls(**{**params, "me": list(me) if me is not None else None})
        if out.missing_me not in ("bad", "ignore"):
            raise ValueError(
                f"data_extraction.missing_me must be 'bad' or 'ignore', got {out.missing_me!r}"
            )
        if out.duplicates not in ("raise", "sum", "first"):
            raise ValueError(
                f"data_extraction.duplicates must be raise, sum or first, got {out.duplicates!r}"
            )
        return out


def _read_item(
    source: HistogramSource, item: str, p: ExtractionParams
) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    row: dict[str, Any] = {"path": item}
    try:
        row.update(source.describe(item))
        missing = "ignore" if p.missing_me == "ignore" else "raise"
        table = source.read(item, p.me, p.include_run_level, missing=missing)
    except SourceError as exc:
        row.update(status="bad", error=str(exc))
        return None, row
    row.update(status="ok", error=None)
    return table, row


def extract_histograms(
    source: HistogramSource, params: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read every item of ``source`` into one histogram table and a file index.

    An item that cannot be read (corrupt, truncated, not DQMIO, lacking a requested ME) becomes a
    ``bad`` row of the index with its error; the others are read. Keys repeated across items are
    refused by default (``duplicates: raise``): summing them is right for split inputs of one merge,
    wrong for the same file extracted twice, so the user decides.
    """
    p = ExtractionParams.from_dict(dict(params))
    items = source.items()
    if not items:
        log.error("histogram source %s found no input", getattr(source, "path", source))
    tables, rows = [], []
    bar = tqdm(items, desc=f"extracting ({source.kind})", unit="file", disable=not p.progress)
    n_hist = 0
    for item in bar:
        table, row = _read_item(source, item, p)
        rows.append(row)
        if table is not None:
            tables.append(table)
            n_hist += len(table)
            bar.set_postfix(histograms=n_hist, bad=sum(r["status"] == "bad" for r in rows))
    index = index_frame(rows)
    histograms = pd.concat(tables, ignore_index=True) if tables else empty_histograms()
    if not histograms.empty:
        if p.duplicates == "first":
            histograms = histograms.drop_duplicates(KEY, keep="first", ignore_index=True)
        else:
            histograms = resolve_duplicates(histograms, p.duplicates, "extracted inputs")
    bad = index[index["status"] == "bad"]
    log.info(
        "extracted %d histograms (%d MEs, %d LS) from %d input(s); %d bad input(s)",
        len(histograms),
        histograms["me"].nunique(),
        len(histograms[["run", "lumi"]].drop_duplicates()),
        len(index) - len(bad),
        len(bad),
    )
    for _, r in bad.iterrows():
        log.warning("bad input, skipped: %s", r["error"])
    histograms = validate_histograms(histograms.sort_values(KEY, ignore_index=True))
    return histograms, index
