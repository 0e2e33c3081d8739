"""What was read: LS per run and label, entries per LS of every ME, and a run x LS map.

Every figure has a bounded size whatever the number of runs: with many runs, consecutive runs
share a bar (LS per run), run boundaries are not labelled one by one (entries per LS), and the run x
LS map bins both axes. These are the first plots to look at after an extraction: a run with too few LS, an ME with no
entries, or entries that do not follow the luminosity along a fill show a reading or selection
problem before any model is trained on it.
"""

from __future__ import annotations

from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dqm_playground_ds.reporting.plotting.style import (
    DEFAULT_STYLE,
    LABEL_COLORS,
    Style,
    label_axes,
    new_figure,
    short_name,
    styled,
)

__all__ = ["bin_index", "plot_entries_per_ls", "plot_ls_per_run", "plot_run_overview"]

#: above this many runs, consecutive runs share a bar / the run boundaries are not labelled
MAX_BARS = 40
MAX_RUN_LABELS = 30
MAX_WIDTH_IN = 24.0  # 2400 px at the default 100 dpi

_LABEL_TEXT = {
    "good": "good (golden)",
    "bad": "bad (DCS on, not golden)",
    "unknown": "not certified (DCS off)",
}


def bin_index(n: int, n_bins: int) -> np.ndarray:
    """Bin of each of ``n`` ordered items in at most ``n_bins`` contiguous, near-equal bins."""
    n_bins = max(1, min(n, n_bins))
    return (np.arange(n) * n_bins) // max(n, 1)


def _bin_runs(counts: pd.DataFrame, max_bars: int) -> pd.DataFrame:
    """Consecutive runs summed into at most ``max_bars`` bars labelled 'first-last'."""
    b = bin_index(len(counts), max_bars)
    cols = [c for c in ("good", "bad", "unknown") if c in counts]
    out = counts.groupby(b)[cols].sum()
    first = counts.groupby(b)["run"].min()
    last = counts.groupby(b)["run"].max()
    out["run"] = [f"{a}" if a == z else f"{a}-\n{z}" for a, z in zip(first, last, strict=True)]
    return out.reset_index(drop=True)


@styled
def plot_ls_per_run(
    counts: pd.DataFrame, *, max_bars: int = MAX_BARS, style: Style = DEFAULT_STYLE
) -> Figure:
    """Stacked bars of LS per run by certification label.

    ``counts``: one row per run, columns ``run``, ``good``, ``bad``, ``unknown`` and optionally
    ``split`` (shown under the run number). More than ``max_bars`` runs: consecutive runs share a
    bar (labelled by their first and last run), so the figure's width is bounded.
    """
    counts = counts.sort_values("run").reset_index(drop=True)
    n_runs = len(counts)
    if n_runs > max_bars:
        counts = _bin_runs(counts, max_bars)
    fig = new_figure((min(max(8.0, 2.5 + 1.3 * len(counts)), MAX_WIDTH_IN), 7), style)
    ax = fig.subplots()
    x = np.arange(len(counts))
    bottom = np.zeros(len(counts))
    for label in ("good", "bad", "unknown"):
        values = counts[label].to_numpy(dtype=np.float64) if label in counts else bottom * 0
        ax.bar(
            x, values, bottom=bottom, color=LABEL_COLORS[label], width=0.7, label=_LABEL_TEXT[label]
        )
        bottom += values
    for xi, total in zip(x, bottom, strict=True):
        ax.text(float(xi), total, f"{int(total)}", ha="center", va="bottom", fontsize="x-small")
    ticks = [
        f"{r}\n({s})" if "split" in counts else str(r)
        for r, s in zip(counts["run"], counts.get("split", counts["run"]), strict=True)
    ]
    ax.set_xticks(x, ticks, fontsize="x-small")
    ax.tick_params(axis="x", which="minor", bottom=False, top=False)
    ax.set_xlabel("Run" if n_runs == len(counts) else f"Runs ({n_runs} in {len(counts)} bins)")
    ax.set_ylabel("Lumisections")
    ax.set_ylim(0, max(bottom.max(initial=0), 1) * 1.3)
    ax.legend(loc="upper right", fontsize="x-small")
    label_axes(ax, style, f"{int(bottom.sum())} LS in {n_runs} runs")
    return fig


@styled
def plot_entries_per_ls(frame: pd.DataFrame, *, style: Style = DEFAULT_STYLE) -> Figure:
    """Entries of every ME per LS, runs side by side in LS order (log scale).

    ``frame``: columns ``run``, ``lumi``, ``me``, ``entries`` (one row per run, LS and ME).
    """
    keys = frame[["run", "lumi"]].drop_duplicates().sort_values(["run", "lumi"])
    keys = keys.reset_index(drop=True)
    position = pd.Series(np.arange(len(keys)), index=pd.MultiIndex.from_frame(keys))
    fig = new_figure((15, 7.5), style)
    ax = fig.subplots()
    mes = sorted(frame["me"].astype(str).unique())
    for me in mes:
        d = frame[frame["me"] == me].sort_values(["run", "lumi"])
        x = position.reindex(pd.MultiIndex.from_frame(d[["run", "lumi"]])).to_numpy(float)
        y = d["entries"].to_numpy(dtype=np.float64)
        y = np.where(y > 0, y, np.nan)
        # one line per ME, broken (NaN) at run boundaries: one artist, not one per run
        cut = np.flatnonzero(np.diff(d["run"].to_numpy())) + 1
        ax.plot(np.insert(x, cut, np.nan), np.insert(y, cut, np.nan), lw=1.2, label=short_name(me))
    ax.set_yscale("log")
    starts = keys.groupby("run").head(1).index.to_numpy()
    if len(starts) > MAX_RUN_LABELS:  # many runs: every boundary labelled would be unreadable
        starts = starts[:0]
        ax.set_xlabel(f"Lumisection ({keys['run'].nunique()} runs in order)")
    for k, start in enumerate(starts):
        if k:
            ax.axvline(start - 0.5, color="black", lw=0.8, ls=":")
        ax.text(
            start + 1,
            0.985,
            f"{keys['run'].iloc[start]}",
            transform=ax.get_xaxis_transform(),
            va="top",
            ha="left",
            fontsize="xx-small",
            bbox={"facecolor": "white", "alpha": 0.85, "lw": 0, "pad": 1},
        )
    ax.set_xlim(-0.5, len(keys) - 0.5)
    low, high = ax.get_ylim()
    ax.set_ylim(low, high * 30)
    if not ax.get_xlabel():
        ax.set_xlabel("Lumisection (runs in order)")
    ax.set_ylabel("Entries per LS")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="x-small", frameon=False)
    label_axes(ax, style, "Entries per LS")
    return fig


_LABEL_CODE = {"good": 0, "unknown": 1, "bad": 2}  # the worst label of a cell wins


@styled
def _run_axes(
    axes: Any, runs: np.ndarray, row_of: pd.Series, n_rows: int, n_cols: int, max_lumi: int
) -> None:
    """Run numbers on the rows (the first run of each), LS on the columns."""
    n_ticks = min(n_rows, 20)
    ticks = np.unique(np.linspace(0, n_rows - 1, n_ticks).round().astype(int))
    first_run = pd.Series(runs).groupby(row_of.to_numpy()).min()
    axes[0].set_yticks(ticks, [str(first_run.iloc[t]) for t in ticks], fontsize="x-small")
    axes[0].set_ylabel("Run" if n_rows == len(runs) else f"Run ({len(runs)} in {n_rows} rows)")
    for ax in axes:
        ax.set_xlabel("Lumisection" + (f" ({n_cols} bins)" if n_cols < max_lumi else ""))
        ax.tick_params(axis="y", which="minor", left=False, right=False)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _label_map(
    ax: Any,
    frame: pd.DataFrame,
    cell: np.ndarray,
    n_rows: int,
    n_cols: int,
    extent: tuple[float, float, float, float],
) -> None:
    """The certification label of every cell (its worst LS), good / unknown / bad."""
    code = frame["label"].astype(object).map(_LABEL_CODE).fillna(1).to_numpy(float)
    labels = np.full(n_rows * n_cols, np.nan)
    o = np.argsort(code, kind="stable")
    labels[cell[o]] = code[o]
    cmap = ListedColormap([LABEL_COLORS[k] for k in ("good", "unknown", "bad")]).with_extremes(
        bad="white"
    )
    ax.imshow(
        labels.reshape(n_rows, n_cols),
        aspect="auto",
        interpolation="nearest",
        cmap=cmap,
        vmin=-0.5,
        vmax=2.5,
        extent=extent,
    )
    ax.set_title("Certification (worst per cell)", loc="right", fontsize="small")


def plot_run_overview(
    frame: pd.DataFrame,
    *,
    max_rows: int = 120,
    max_columns: int = 400,
    title: str = "",
    style: Style = DEFAULT_STYLE,
) -> Figure:
    """Run x LS maps of the certification label and of score / threshold, for any number of runs.

    ``frame``: one row per LS, columns ``run``, ``lumi``, ``ratio`` (score / threshold of one
    strategy) and optionally ``label``. With more than ``max_rows`` runs (``max_columns`` LS)
    consecutive runs (LS) share a cell showing their worst value, so a flagged LS is never hidden;
    the figure has a fixed size.
    """
    runs = np.sort(frame["run"].unique())
    row_of = pd.Series(bin_index(len(runs), max_rows), index=runs)
    n_rows = int(row_of.max()) + 1 if len(runs) else 1
    max_lumi = int(frame["lumi"].max()) if len(frame) else 1
    n_cols = max(1, min(max_lumi, max_columns))
    rows = row_of.reindex(frame["run"].to_numpy()).to_numpy()
    cols = ((frame["lumi"].to_numpy() - 1).clip(0) * n_cols) // max_lumi
    cell = rows * n_cols + cols
    ratio = np.full(n_rows * n_cols, np.nan)
    values = frame["ratio"].to_numpy(dtype=np.float64)
    values = np.where(np.isfinite(values), values, np.nan)
    order = np.argsort(values, kind="stable")  # last write per cell = its largest ratio
    order = order[~np.isnan(values[order])]
    ratio[cell[order]] = values[order]
    has_label = "label" in frame
    panels = 2 if has_label else 1
    fig = new_figure((16.0, 8.0), style)
    axes = np.atleast_1d(fig.subplots(1, panels, sharey=True, squeeze=False)[0])
    extent = (0.5, max_lumi + 0.5, n_rows - 0.5, -0.5)
    if has_label:
        _label_map(axes[0], frame, cell, n_rows, n_cols, extent)
    cmap = mpl.colormaps["RdBu_r"].with_extremes(bad="white")
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log10(np.where(ratio > 0, ratio, 1e-3))
    log_ratio[np.isnan(ratio)] = np.nan
    image = axes[-1].imshow(
        log_ratio.reshape(n_rows, n_cols),
        aspect="auto",
        interpolation="nearest",
        cmap=cmap,
        vmin=-2,
        vmax=2,
        extent=extent,
    )
    fig.colorbar(image, ax=axes[-1], label="log10(score / threshold), max per cell")
    head = title or f"{len(frame)} LS in {len(runs)} runs"
    axes[-1].set_title(f"{head}: score / threshold", loc="right", fontsize="small")
    _run_axes(axes, runs, row_of, n_rows, n_cols, max_lumi)
    label_axes(axes[0], style)
    return fig
