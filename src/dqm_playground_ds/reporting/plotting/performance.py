"""How well a strategy separates bad from good LS: ROC curves and AUC per anomaly type.

ROC curves are drawn twice: on a linear axis (the AUC's picture) and with a logarithmic false-alarm
axis, because the operating region of a monitoring system is the left edge: at 1 % false alarms a
shifter already sees one spurious flag every ~100 LS (about 40 minutes of data taking).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from dqm_playground_ds.reporting.plotting.style import (
    DEFAULT_STYLE,
    Style,
    label_axes,
    new_figure,
    styled,
)

__all__ = ["RocCurve", "plot_auc_bars", "plot_roc"]


@dataclass(frozen=True)
class RocCurve:
    """One ROC curve with its AUC and bootstrap interval (NaN when unknown)."""

    label: str
    fpr: np.ndarray
    tpr: np.ndarray
    auc: float = float("nan")
    auc_lo: float = float("nan")
    auc_hi: float = float("nan")
    emphasis: bool = False

    def legend(self) -> str:
        if not np.isfinite(self.auc):
            return self.label
        text = f"{self.label}: AUC {self.auc:.3f}"
        if np.isfinite(self.auc_lo) and np.isfinite(self.auc_hi):
            text += f" [{self.auc_lo:.3f}, {self.auc_hi:.3f}]"
        return text


def _colors(n: int) -> list:
    cmap = colormaps["tab10"]
    return [cmap(k % 10) for k in range(n)]


@styled
def plot_roc(
    curves: Sequence[RocCurve],
    *,
    title: str = "",
    fpr_marks: Sequence[float] = (0.01,),
    style: Style = DEFAULT_STYLE,
) -> Figure:
    """Curves of one strategy: linear panel and log-FPR panel; emphasised curves in black."""
    fig = new_figure((16, 7.6), style)
    lin, log = fig.subplots(1, 2)
    plain = [c for c in curves if not c.emphasis]
    colors = dict(zip([c.label for c in plain], _colors(len(plain)), strict=True))
    smallest = 1.0
    for c in curves:
        kw = (
            {"color": "black", "lw": 2.6, "zorder": 5}
            if c.emphasis
            else {"color": colors[c.label], "lw": 1.6}
        )
        fpr = np.asarray(c.fpr, dtype=np.float64)
        tpr = np.asarray(c.tpr, dtype=np.float64)
        lin.plot(fpr, tpr, drawstyle="steps-post", label=c.legend(), **kw)
        log.plot(fpr, tpr, drawstyle="steps-post", **kw)
        if (fpr > 0).any():
            smallest = min(smallest, float(fpr[fpr > 0].min()))
    lin.plot([0, 1], [0, 1], color="#9c9ca1", ls=":", lw=1)
    lin.set_xlim(0, 1)
    lin.set_ylim(0, 1.02)
    lin.set_xlabel("False-alarm rate (good LS flagged)")
    lin.set_ylabel("Efficiency (bad LS flagged)")
    lin.legend(
        loc="lower right",
        fontsize="xx-small",
        title=title or None,
        title_fontsize="x-small",
        frameon=True,
        framealpha=0.9,
    )
    log.set_xscale("log")
    log.set_xlim(max(min(smallest, 1e-3) / 2, 1e-5), 1)
    log.set_ylim(0, 1.02)
    for f in fpr_marks:
        log.axvline(f, color="#9c9ca1", ls="--", lw=1)
        log.text(
            f,
            0.02,
            f" {f:.0%} ",
            rotation=90,
            va="bottom",
            ha="right",
            fontsize="xx-small",
            color="#5f5f5f",
        )
    log.set_xlabel("False-alarm rate (log)")
    log.set_ylabel("Efficiency")
    label_axes(lin, style, None)
    label_axes(log, Style(experiment="", text="", dpi=style.dpi), title)
    return fig


@styled
def plot_auc_bars(
    table: pd.DataFrame,
    *,
    order: Sequence[str] | None = None,
    style: Style = DEFAULT_STYLE,
) -> Figure:
    """Grouped bars: AUC per anomaly type (groups) and strategy (bars), bootstrap interval as
    error bar. ``table`` has columns strategy, anomaly_type, auc and optionally auc_lo, auc_hi.
    """
    types = list(order) if order is not None else list(dict.fromkeys(table["anomaly_type"]))
    strategies = list(dict.fromkeys(table["strategy"]))
    n_s = max(len(strategies), 1)
    width = 0.8 / n_s
    fig = new_figure((max(10.0, 1.2 + 0.32 * len(types) * n_s + 0.6 * len(types)), 7.5), style)
    ax = fig.subplots()
    lowest = 1.0
    for k, (name, color) in enumerate(zip(strategies, _colors(n_s), strict=True)):
        d = table[table["strategy"] == name].set_index("anomaly_type").reindex(types)
        auc = d["auc"].to_numpy(dtype=np.float64)
        lo = d["auc_lo"].to_numpy(dtype=np.float64) if "auc_lo" in d else np.full_like(auc, np.nan)
        hi = d["auc_hi"].to_numpy(dtype=np.float64) if "auc_hi" in d else np.full_like(auc, np.nan)
        err = np.vstack([np.nan_to_num(auc - lo), np.nan_to_num(hi - auc)])
        x = np.arange(len(types)) - 0.4 + width * (k + 0.5)
        ax.bar(
            x,
            auc,
            width=width * 0.92,
            color=color,
            label=name,
            yerr=err,
            error_kw={"lw": 0.8, "capsize": 1.5},
        )
        if np.isfinite(auc).any():
            lowest = min(lowest, float(np.nanmin(np.where(np.isfinite(lo), lo, auc))))
    ax.axhline(0.5, color="black", lw=0.8, ls=":")
    ax.axhline(0.95, color="#2ca02c", lw=1, ls="--", label="AUC 0.95")  # in the legend: no overlap
    ax.set_xticks(
        range(len(types)),
        [t.replace("_", " ") for t in types],
        rotation=20,
        ha="right",
        fontsize="small",
    )
    ax.tick_params(axis="x", which="minor", bottom=False, top=False)
    ax.set_xlim(-0.5, len(types) - 0.5)
    ax.set_ylim(min(0.5, np.floor(lowest * 20) / 20 - 0.05), 1.01)
    ax.set_ylabel("ROC AUC")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="x-small", frameon=False)
    label_axes(ax, style, "AUC per anomaly type")
    return fig
