"""Extraction nodes: read every item of a histogram source, record bad ones, build one table."""

from __future__ import annotations

import logging

import pandas as pd

from dqm_playground_ds.extraction import ExtractionError, PartitionStore, extract_table
from dqm_playground_ds.pipelines.data_extraction.params import ExtractionParams
from dqm_playground_ds.readers.dqmio import resolve_duplicates
from dqm_playground_ds.schema import KEY, validate_histograms
from dqm_playground_ds.sources import HistogramSource

log = logging.getLogger(__name__)


def extract_histograms(
    source: HistogramSource, params: ExtractionParams, store: PartitionStore | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read every item of ``source`` into one histogram table and a file index.

    Items are read in ``workers`` processes into the partition ``store`` (the catalog's
    ``histogram_store``; none: a temporary one), so a re-run reads only new inputs. An item that
    cannot be read (corrupt, truncated, not DQMIO, lacking a requested ME) becomes a ``bad`` row of
    the index with its error; the others are read. Keys repeated across items are refused by
    default (``duplicates: raise``): summing them is right for split inputs of one merge, wrong for
    the same file extracted twice, so the user decides.
    """
    p = params
    out = partition_store(source, store)
    workers = p.jobs(out)
    try:
        histograms, index = extract_table(source, p.request(), partitions_dir=out,
                                          workers=workers, retry_bad=p.retry_bad,
                                          progress=p.progress)  # fmt: skip
    except ExtractionError as exc:
        where = "data_extraction.me" if str(exc).startswith("ME selection") else "data_extraction"
        raise ValueError(f"{where}: {exc}") from None
    if not histograms.empty:
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
