"""LS scores along a run, and which MEs drove the score of one LS.

A shifter reads a run left to right: the certification labels are shaded behind the scores, so an
excursion that coincides with a bad block is recognised at a glance, and a flag in a good block
stands out as a candidate false alarm (or a problem the certification missed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from dqm_playground_ds.reporting.plotting.style import (
    DEFAULT_STYLE,
    LABEL_COLORS,
    Style,
    label_axes,
    new_figure,
    short_name,
    styled,
)

__all__ = ["TIMESERIES_COLUMNS", "label_blocks", "plot_me_contributions", "plot_score_timeseries"]

TIMESERIES_COLUMNS = ("lumi", "strategy", "score", "threshold", "is_anomalous", "label")

_SHADE = {
    "bad": ("certified bad", LABEL_COLORS["bad"], 0.16),
    "unknown": ("not certified (DCS off)", LABEL_COLORS["unknown"], 0.30),
}


def label_blocks(lumi: np.ndarray, label: np.ndarray) -> list[tuple[str, int, int]]:
    """Contiguous (label, first LS, last LS) blocks of a run; a gap in LS numbers ends a block."""
    order = np.argsort(lumi, kind="stable")
    lumi, label = np.asarray(lumi)[order], np.asarray(label, dtype=object)[order]
    blocks: list[tuple[str, int, int]] = []
    for ls, lab in zip(lumi.tolist(), label.tolist(), strict=True):
        if blocks and blocks[-1][0] == lab and blocks[-1][2] == ls - 1:
            blocks[-1] = (lab, blocks[-1][1], ls)
        else:
            blocks.append((lab, ls, ls))
    return blocks


def _score_panel(ax: Any, d: pd.DataFrame, name: str, blocks: list[Any], logy: bool) -> None:
    """One strategy's panel: shaded labels, score steps, flagged LS, threshold, counts."""
    lumi = d["lumi"].to_numpy()
    score = d["score"].to_numpy(dtype=np.float64)
    threshold = float(d["threshold"].iloc[0])
    flagged = d["is_anomalous"].to_numpy(dtype=bool)
    for lab, first, last in blocks:
        _, color, alpha = _SHADE[lab]
        ax.axvspan(first - 0.5, last + 0.5, color=color, alpha=alpha, lw=0)
    shown = score.copy()
    if logy:
        positive = np.r_[score[np.isfinite(score) & (score > 0)], threshold]
        floor = 0.5 * positive[positive > 0].min() if (positive > 0).any() else 1e-3
        shown = np.where(np.isfinite(score), np.maximum(score, floor), np.nan)
        ax.set_yscale("log")
    ax.plot(lumi, shown, color="black", lw=0.9, drawstyle="steps-mid")
    ax.plot(lumi[~flagged], shown[~flagged], "o", color="black", ms=2.5)
    ax.plot(
        lumi[flagged],
        shown[flagged],
        "o",
        color=LABEL_COLORS["bad"],
        ms=5,
        markeredgecolor="black",
        markeredgewidth=0.5,
    )
    ax.axhline(threshold, color=LABEL_COLORS["bad"], ls="--", lw=1.3)
    ax.text(
        0.005,
        0.93,
        name,
        transform=ax.transAxes,
        ha="left",
        va="top",
        fontsize="small",
        weight="bold",
        bbox={"facecolor": "white", "alpha": 0.8, "lw": 0, "pad": 1.5},
    )
    ax.text(
        0.995,
        0.93,
        f"{int(flagged.sum())} / {len(d)} LS flagged",
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize="x-small",
        bbox={"facecolor": "white", "alpha": 0.8, "lw": 0, "pad": 1.5},
    )
    if logy:
        top = np.nanmax(np.r_[shown[np.isfinite(shown)], threshold])
        bottom = np.nanmin(np.r_[shown[np.isfinite(shown)], threshold])
        ax.set_ylim(bottom / 1.6, top * 6)
    ax.set_ylabel("Score", fontsize="small")
    ax.tick_params(axis="y", which="minor", left=False, right=False)


def _score_legend(fig: Figure, right_edge: float) -> None:
    """Score, flag, threshold and label shading, in one row above the panels."""
    handles = [
        Line2D([], [], color="black", marker="o", ms=3, lw=0.9, label="LS score"),
        Line2D(
            [],
            [],
            color=LABEL_COLORS["bad"],
            marker="o",
            ms=5,
            lw=0,
            markeredgecolor="black",
            label="flagged",
        ),
        Line2D([], [], color=LABEL_COLORS["bad"], ls="--", lw=1.3, label="threshold"),
        *(Patch(color=c, alpha=a, label=t) for t, c, a in _SHADE.values()),
    ]
    fig.legend(
        handles=handles,
        loc="upper right",
        bbox_to_anchor=(right_edge, 1.0),
        ncols=len(handles),
        fontsize="x-small",
        frameon=False,
    )


@styled
def plot_score_timeseries(
    frame: pd.DataFrame,
    *,
    strategies: Sequence[str] | None = None,
    rlabel: str = "",
    logy: bool = True,
    style: Style = DEFAULT_STYLE,
) -> Figure:
    """One panel per strategy: LS score, its threshold, flagged LS, certification labels shaded.

    ``frame`` holds one run (columns :data:`TIMESERIES_COLUMNS`). Scores are drawn on a log axis
    by default because a single bad LS can be 100x above threshold; zero scores sit on the
    axis floor.
    """
    missing = set(TIMESERIES_COLUMNS) - set(frame.columns)
    if missing:
        raise ValueError(f"score time series: missing column(s) {sorted(missing)}")
    names = list(strategies) if strategies is not None else list(dict.fromkeys(frame["strategy"]))
    names = [n for n in names if (frame["strategy"] == n).any()]
    if not names:
        raise ValueError("score time series: no strategy to plot")
    labels = frame.drop_duplicates("lumi")[["lumi", "label"]]
    blocks = [
        b
        for b in label_blocks(
            labels["lumi"].to_numpy(), labels["label"].fillna("unknown").to_numpy()
        )
        if b[0] in _SHADE
    ]
    lo, hi = int(frame["lumi"].min()), int(frame["lumi"].max())

    # fixed margins instead of constrained layout: the panels stack simply, and the layout engine
    # would measure every tick label of every panel again at each draw (most of the cost)
    width, panel, top, bottom, left, right = 14.0, 1.9, 1.2, 0.8, 1.0, 0.3
    height = top + bottom + panel * len(names)
    fig = new_figure((width, height), style, layout=None)
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        top=1 - top / height,
        bottom=bottom / height,
        hspace=0.08,
    )
    axes = np.atleast_1d(fig.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0])
    for ax, name in zip(axes, names, strict=True):
        _score_panel(ax, frame[frame["strategy"] == name].sort_values("lumi"), name, blocks, logy)
    axes[-1].set_xlabel("Lumisection")
    axes[-1].set_xlim(lo - 0.5, hi + 0.5)
    _score_legend(fig, 1 - right / width)
    label_axes(axes[0], style, rlabel)
    return fig


@styled
def plot_me_contributions(
    scores: Mapping[str, float],
    *,
    highlight: Sequence[str] = (),
    score_label: str = "ME score",
    rlabel: str = "",
    note: str = "",
    style: Style = DEFAULT_STYLE,
) -> Figure:
    """Horizontal bars of the per-ME scores of one LS, highest on top; ``highlight`` in red.

    This is the "why" of a flag: which histograms to open first.
    """
    items = sorted(
        ((short_name(m), float(v)) for m, v in scores.items() if np.isfinite(v)),
        key=lambda kv: kv[1],
    )
    marked = {short_name(m) for m in highlight}
    fig = new_figure((10, 1.8 + 0.55 * max(len(items), 1)), style)
    ax = fig.subplots()
    if items:
        names, values = zip(*items, strict=True)
        colors = [LABEL_COLORS["bad"] if n in marked else "#7f7f7f" for n in names]
        ax.barh(range(len(names)), values, color=colors, height=0.7)
        ax.set_yticks(range(len(names)), names, fontsize="x-small")
        ax.tick_params(axis="y", which="minor", left=False, right=False)
        for k, v in enumerate(values):  # values right of the zero line: never on the ME names
            ax.text(max(v, 0.0), k, f" {v:.3g}", va="center", ha="left", fontsize="xx-small")
        top = max(*values, 0)
        ax.set_xlim(min(*values, 0) * 1.15, top * 1.2 if top > 0 else 1)
    else:
        ax.text(0.5, 0.5, "no per-ME score", transform=ax.transAxes, ha="center")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel(score_label)
    if note:
        ax.text(
            0.98,
            0.04,
            note,
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize="x-small",
            bbox={"facecolor": "white", "alpha": 0.85, "lw": 0},
        )
    label_axes(ax, style, rlabel)
    return fig
