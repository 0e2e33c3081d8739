"""What was read: LS per run and label, entries per LS of every ME.

These are the first plots to look at after an extraction: a run with too few LS, an ME with no
entries, or entries that do not follow the luminosity along a fill show a reading or selection
problem before any model is trained on it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from dqm_playground_ds.plotting.style import (
    DEFAULT_STYLE,
    LABEL_COLORS,
    Style,
    label_axes,
    new_figure,
    short_name,
    styled,
)

__all__ = ["plot_entries_per_ls", "plot_ls_per_run"]

_LABEL_TEXT = {
    "good": "good (golden)",
    "bad": "bad (DCS on, not golden)",
    "unknown": "not certified (DCS off)",
}


@styled
def plot_ls_per_run(counts: pd.DataFrame, *, style: Style = DEFAULT_STYLE) -> Figure:
    """Stacked bars of LS per run by certification label.

    ``counts``: one row per run, columns ``run``, ``good``, ``bad``, ``unknown`` and optionally
    ``split`` (shown under the run number).
    """
    counts = counts.sort_values("run").reset_index(drop=True)
    fig = new_figure((max(8.0, 2.5 + 1.3 * len(counts)), 7), style)
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
        ax.text(xi, total, f"{int(total)}", ha="center", va="bottom", fontsize="x-small")
    ticks = [
        f"{r}\n({s})" if "split" in counts else str(r)
        for r, s in zip(counts["run"], counts.get("split", counts["run"]), strict=True)
    ]
    ax.set_xticks(x, ticks, fontsize="x-small")
    ax.tick_params(axis="x", which="minor", bottom=False, top=False)
    ax.set_xlabel("Run")
    ax.set_ylabel("Lumisections")
    ax.set_ylim(0, max(bottom.max(initial=0), 1) * 1.3)
    ax.legend(loc="upper right", fontsize="x-small")
    label_axes(ax, style, f"{int(bottom.sum())} LS in {len(counts)} runs")
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
        x = position.reindex(pd.MultiIndex.from_frame(d[["run", "lumi"]])).to_numpy()
        y = d["entries"].to_numpy(dtype=np.float64)
        y = np.where(y > 0, y, np.nan)
        color = None
        for run in d["run"].unique():  # no line across a run boundary
            sel = (d["run"] == run).to_numpy()
            label = short_name(me) if color is None else None
            (line,) = ax.plot(x[sel], y[sel], lw=1.2, label=label, color=color)
            color = line.get_color()
    ax.set_yscale("log")
    starts = keys.groupby("run").head(1).index.to_numpy()
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
    ax.set_xlabel("Lumisection (runs in order)")
    ax.set_ylabel("Entries per LS")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="x-small", frameon=False)
    label_axes(ax, style, "Entries per LS")
    return fig
