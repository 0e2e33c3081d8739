"""What was read: LS per run and label, entries per LS and ME (the extraction check)."""

from __future__ import annotations

import pandas as pd

from dqm_playground_ds.histogram_tables import HistogramTable, as_table
from dqm_playground_ds.reporting.run_summary import label_counts


def ls_per_run(lumisections: pd.DataFrame) -> pd.DataFrame:
    """(run, good, bad, unknown[, split]): LS per run and certification label."""
    counts = label_counts(lumisections).reset_index()
    if "split" in lumisections:
        split = lumisections.groupby("run")["split"].agg(lambda s: "/".join(sorted(set(s))))
        counts["split"] = counts["run"].map(split)
    return counts


def entries_per_ls(histograms: HistogramTable | pd.DataFrame) -> pd.DataFrame:
    """(run, lumi, me, entries) of every LS histogram (run-level rows, lumi 0, left out); reads
    those four columns only, not the bins."""
    table = as_table(histograms).read(columns=["run", "lumi", "me", "entries"])
    return table[table["lumi"] > 0].reset_index(drop=True)
