"""Data overview: LS per run by label, entries per LS of every ME."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dqm_playground_ds.plotting import plot_entries_per_ls, plot_ls_per_run


def test_ls_per_run_stacked_by_label(style, rendered):
    counts = pd.DataFrame(
        {
            "run": [2, 1],
            "good": [10, 20],
            "bad": [3, 0],
            "unknown": [1, 2],
            "split": ["apply", "train"],
        }
    )
    fig = plot_ls_per_run(counts, style=style)
    (ax,) = fig.axes
    assert len(ax.patches) == 3 * 2
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1\n(train)", "2\n(apply)"]
    totals = [t.get_text() for t in ax.texts if t.get_text().isdigit()]
    assert totals == ["22", "14"]
    assert "36 LS in 2 runs" in [t.get_text() for t in ax.texts]
    rendered(fig)


def test_entries_per_ls_one_line_per_me_and_run(style, rendered):
    rows = [
        {"run": run, "lumi": ls, "me": f"X/{me}", "entries": 100.0 * (ls + 1)}
        for run in (1, 2)
        for ls in range(1, 6)
        for me in ("a", "b", "c")
    ]
    fig = plot_entries_per_ls(pd.DataFrame(rows), style=style)
    (ax,) = fig.axes
    data_lines = [ln for ln in ax.lines if len(ln.get_xdata()) == 5]
    assert len(data_lines) == 3 * 2  # no line across a run boundary
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c"]
    assert ax.get_yscale() == "log"
    assert np.isclose(ax.get_xlim()[1], 9.5)
    rendered(fig)
