"""Extraction nodes: read every item of a histogram source, record bad ones, hand on one table."""

from __future__ import annotations

import logging

import pandas as pd

from dqm_playground_ds.extraction import (
    ExtractionError,
    PartitionStore,
    extract_table,
    extract_view,
)
from dqm_playground_ds.histogram_tables import FrameTable, HistogramTable
from dqm_playground_ds.pipelines.data_extraction.params import ExtractionParams
from dqm_playground_ds.readers.dqmio import resolve_duplicates
from dqm_playground_ds.schema import KEY, validate_histograms
from dqm_playground_ds.sources import HistogramSource

log = logging.getLogger(__name__)


def extract_histograms(
    source: HistogramSource, params: ExtractionParams, store: PartitionStore | None = None
) -> tuple[HistogramTable, pd.DataFrame]:
    """Read every item of ``source`` into the histogram table and a file index.

    Items are read in ``workers`` processes into the partition ``store`` (the catalog's
    ``histogram_store``; none: a temporary one), so a re-run reads only new inputs. The table is
    handed on as a lazy view of this source's partitions (the ``histograms`` dataset writes it
    one ME at a time), never concatenated in memory. An item that cannot be read (corrupt,
    truncated, not DQMIO, lacking a requested ME) becomes a ``bad`` row of the index with its
    error; the others are read. Keys repeated across items are refused by default
    (``duplicates: raise``): summing them is right for split inputs of one merge, wrong for the
    same file extracted twice, so the user decides.
    """
    p = params
    out = partition_store(source, store)
    workers = p.jobs(out)
    try:
        if out is None:
            frame, index = extract_table(source, p.request(), workers=workers,
                                         progress=p.progress)  # fmt: skip
            if not frame.empty:
                frame = resolve_duplicates(frame, p.duplicates, "extracted inputs")
            table: HistogramTable = FrameTable(
                validate_histograms(frame.sort_values(KEY, ignore_index=True))
            )
        else:
            table, index = extract_view(source, p.request(), out, workers=workers,
                                        retry_bad=p.retry_bad, progress=p.progress,
                                        duplicates=p.duplicates)  # fmt: skip
    except ExtractionError as exc:
        where = "data_extraction.me" if str(exc).startswith("ME selection") else "data_extraction"
        raise ValueError(f"{where}: {exc}") from None
    keys = table.read(columns=KEY)  # applies the duplicates policy: a refused key stops here
    _log_extracted(keys, index)
    return table, index


def _log_extracted(keys: pd.DataFrame, index: pd.DataFrame) -> None:
    bad = index[index["status"] == "bad"]
    log.info(
        "extracted %d histograms (%d MEs, %d LS) from %d input(s); %d bad input(s)",
        len(keys),
        keys["me"].nunique(),
        len(keys[["run", "lumi"]].drop_duplicates()),
        len(index) - len(bad),
        len(bad),
    )
    for _, r in bad.iterrows():
        log.warning("bad input, skipped: %s", r["error"])
    if keys.empty and len(index):
        first = f"; first: {bad['error'].iloc[0]}" if len(bad) else ""
        raise ValueError(
            f"extraction gave no histogram from {len(index)} input(s) ({len(bad)} bad{first}); "
            "check data_extraction.me and the inputs"
        )


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
