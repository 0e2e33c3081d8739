"""Data overview: LS per run by label, entries per LS of every ME, the run x LS map; bounded
sizes with many runs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dqm_playground_ds.reporting.plotting import (
    plot_entries_per_ls,
    plot_ls_per_run,
    plot_run_overview,
)
from dqm_playground_ds.reporting.plotting.overview import MAX_BARS, MAX_WIDTH_IN, bin_index


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
    data_lines = [ln for ln in ax.lines if len(ln.get_xdata()) == 2 * 5 + 1]
    assert len(data_lines) == 3  # one line per ME ...
    for line in data_lines:  # ... broken between the runs: no segment across a run boundary
        assert np.isnan(np.asarray(line.get_ydata(), float)[5])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c"]
    assert ax.get_yscale() == "log"
    assert np.isclose(ax.get_xlim()[1], 9.5)
    rendered(fig)


def test_bins_are_contiguous_and_bounded():
    for n, k in ((5, 40), (500, 40), (41, 40), (1, 3)):
        b = bin_index(n, k)
        assert b[0] == 0 and np.all(np.diff(b) >= 0) and np.all(np.diff(b) <= 1)
        assert b.max() + 1 == min(n, k)


def _many_runs(n_runs: int, n_ls: int = 4) -> pd.DataFrame:
    runs = np.repeat(np.arange(1000, 1000 + n_runs), n_ls)
    lumi = np.tile(np.arange(1, n_ls + 1), n_runs)
    return pd.DataFrame({"run": runs, "lumi": lumi})


def test_ls_per_run_bins_many_runs_into_a_bounded_figure(style):
    keys = _many_runs(500)
    counts = keys.groupby("run").size().rename("good").reset_index().assign(bad=1, unknown=0)
    fig = plot_ls_per_run(counts, style=style)
    (ax,) = fig.axes
    assert len(ax.get_xticklabels()) == MAX_BARS
    assert ax.get_xticklabels()[0].get_text() == "1000-\n1012"
    assert fig.get_size_inches()[0] <= MAX_WIDTH_IN
    assert "2500 LS in 500 runs" in [t.get_text() for t in ax.texts]


def test_entries_per_ls_does_not_label_every_run_when_there_are_many(style):
    frame = _many_runs(200).assign(me="X/a", entries=10.0)
    fig = plot_entries_per_ls(frame, style=style)
    (ax,) = fig.axes
    assert len(ax.lines) == 1 and not [t for t in ax.texts if t.get_text().startswith("1")]
    assert "200 runs" in ax.get_xlabel()


def test_run_overview_keeps_the_worst_value_of_each_cell(style, rendered):
    frame = _many_runs(300, 10).assign(ratio=0.5, label="good")
    frame.loc[(frame["run"] == 1100) & (frame["lumi"] == 3), ["ratio", "label"]] = (50.0, "bad")
    fig = plot_run_overview(frame, max_rows=30, max_columns=5, style=style)
    labels, scores = (ax.images[0].get_array() for ax in fig.axes[:2])
    assert scores.shape == labels.shape == (30, 5)
    assert np.isclose(scores.max(), np.log10(50.0)) and (labels == 2).sum() == 1
    row, col = np.unravel_index(np.argmax(scores), scores.shape)
    assert (row, col) == (100 * 30 // 300, (3 - 1) * 5 // 10)
    assert tuple(fig.get_size_inches()) == (16.0, 8.0)
    rendered(fig)
