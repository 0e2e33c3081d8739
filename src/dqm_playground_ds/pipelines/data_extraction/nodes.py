"""Extraction nodes: read every item of a histogram source, record bad ones, build one table."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from dqm_playground_ds.extraction import (
    ExtractionError,
    PartitionStore,
    Request,
    check_pattern,
    check_workers,
    extract_table,
)
from dqm_playground_ds.readers.dqmio import resolve_duplicates
from dqm_playground_ds.schema import KEY, validate_histograms
from dqm_playground_ds.sources import HistogramSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractionParams:
    """``params:data_extraction``: which MEs to take and how to treat gaps and repeats."""

    me: list[str] | None = None
    include_run_level: bool = False
    missing_me: Literal["bad", "ignore"] = "bad"
    duplicates: Literal["raise", "sum", "first"] = "raise"
    progress: bool = True
    workers: int = 1  # processes reading inputs in parallel
    retry_bad: bool = False  # read inputs recorded as bad in an earlier run again

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> ExtractionParams:
        """Check every value (type and range), naming the parameter and what it expects."""
        known = set(cls.__dataclass_fields__)
        unknown = set(params) - known
        if unknown:
            raise ValueError(
                f"data_extraction: unknown parameter(s) {sorted(unknown)}; known {sorted(known)}"
            )
        me = params.get("me")
        if isinstance(me, str):
            me = [me]
        if me is not None:
            if not isinstance(me, (list, tuple)):
                raise ValueError(
                    f"data_extraction.me must be a list of ME names or regular expressions "
                    f"(or null for all), got {me!r}"
                )
            me = [check_pattern(m, "data_extraction.me") for m in me]
        for name in ("include_run_level", "progress", "retry_bad"):
            if name in params and not isinstance(params[name], bool):
                raise ValueError(
                    f"data_extraction.{name} must be true or false, got {params[name]!r}"
                )
        try:
            check_workers(params.get("workers", 1), "data_extraction.workers")
        except ExtractionError as exc:
            raise ValueError(str(exc)) from None
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


def extract_histograms(
    source: HistogramSource, params: dict[str, Any], store: PartitionStore | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read every item of ``source`` into one histogram table and a file index.

    Items are read in ``workers`` processes into the partition ``store`` (the catalog's
    ``histogram_store``; none: a temporary one), so a re-run reads only new inputs. An item that
    cannot be read (corrupt, truncated, not DQMIO, lacking a requested ME) becomes a ``bad`` row of
    the index with its error; the others are read. Keys repeated across items are refused by
    default (``duplicates: raise``): summing them is right for split inputs of one merge, wrong for
    the same file extracted twice, so the user decides.
    """
    p = ExtractionParams.from_dict(dict(params))
    request = Request(
        me=tuple(p.me) if p.me is not None else None,
        include_run_level=p.include_run_level,
        missing="ignore" if p.missing_me == "ignore" else "raise",
    )
    try:
        histograms, index = extract_table(
            source,
            request,
            partitions_dir=partition_store(source, store),
            workers=p.workers,
            retry_bad=p.retry_bad,
            progress=p.progress,
        )
    except ExtractionError as exc:
        raise ValueError(f"data_extraction.me: {exc}") from None
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
    if histograms.empty and len(index):
        first = f"; first: {bad['error'].iloc[0]}" if len(bad) else ""
        raise ValueError(
            f"extraction gave no histogram from {len(index)} input(s) ({len(bad)} bad{first}); "
            "check data_extraction.me and the inputs"
        )
    histograms = validate_histograms(histograms.sort_values(KEY, ignore_index=True))
    return histograms, index


def partition_store(
    source: HistogramSource, store: PartitionStore | None
) -> PartitionStore | str | None:
    """The store to extract into: the catalog's, else the source's deprecated ``partitions``
    folder, else None (a temporary one); both, at different places, is an error."""
    legacy = getattr(source, "partitions_dir", None)
    if store is None:
        return legacy
    if legacy and not store.same_location(legacy):
        raise ValueError(
            f"two partition stores: histogram_store at {store.url!r} and the source's "
            f"`partitions: {legacy}`; remove `partitions` from the source's catalog entry"
        )
    return store
