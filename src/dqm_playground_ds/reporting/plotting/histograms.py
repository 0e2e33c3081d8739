"""One LS's histogram against the training reference, and examples of good histograms.

The reference is the ME's fitted :class:`~dqm_playground_ds.detection.reference.Reference`: its
shape is scaled to the integral of the LS shown, so that what differs is the shape, which is what
the detectors judge, and the pull panels show its deviance pulls, the very pulls the reference
test flags on (with the reference's statistics and run-to-run spread). A bare shape array is taken
as a reference known exactly (no statistics of its own, no extra spread).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import mplhep as hep
import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure

from dqm_playground_ds.detection.reference import Reference
from dqm_playground_ds.reporting.plotting.style import (
    DEFAULT_STYLE,
    Style,
    edges,
    label_axes,
    new_figure,
    styled,
)

__all__ = [
    "Axis",
    "as_reference",
    "expected_counts",
    "plot_1d_comparison",
    "plot_2d_comparison",
    "plot_examples_1d",
    "plot_examples_2d",
]


@dataclass(frozen=True)
class Axis:
    """A regular binned axis and its title."""

    lo: float
    hi: float
    bins: int
    title: str = ""

    @property
    def edges(self) -> np.ndarray:
        return edges(self.lo, self.hi, self.bins)


def expected_counts(observed: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The reference shape scaled to the integral of ``observed``."""
    observed = np.asarray(observed, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    total = reference.sum()
    if total <= 0:
        return np.zeros_like(observed)
    return reference * (observed.sum() / total)


def as_reference(reference: Reference | np.ndarray) -> Reference:
    """``reference`` itself, or a bare shape (any normalisation) as an exactly known reference."""
    if isinstance(reference, Reference):
        return reference
    shape = np.asarray(reference, dtype=np.float64)
    total = shape.sum()
    shape = shape / total if total > 0 else np.zeros_like(shape)
    return Reference(shape, np.inf, np.zeros_like(shape), 1, "poisson")


def _pull_limit(p: np.ndarray, floor: float = 4.0, cap: float = 20.0) -> float:
    finite = np.abs(p[np.isfinite(p)])
    top = float(finite.max()) if finite.size else 0.0
    return float(min(max(floor, 1.1 * top), cap))


@styled
def _main_limits(main: Any, observed: np.ndarray, expected: np.ndarray, logy: bool) -> None:
    """Room above the highest bin for the legend; on a log axis, from the smallest filled bin."""
    main.set_ylabel("Entries")
    if logy:
        main.set_yscale("log")
        positive = np.r_[observed[observed > 0], expected[expected > 0]]
        if positive.size:
            main.set_ylim(0.5 * positive.min(), 30 * positive.max())
    else:
        main.set_ylim(0, 1.35 * max(observed.max(initial=0), expected.max(initial=0), 1))


def _ratio_panel(rax: Any, centres: np.ndarray, observed: np.ndarray, expected: np.ndarray) -> None:
    """Data over reference with Poisson errors; the range follows the populated bins."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(expected > 0, observed / expected, np.nan)
        ratio_err = np.where(expected > 0, np.sqrt(observed) / expected, np.nan)
    rax.axhline(1.0, color="#3f7fbf", lw=1.2)
    rax.errorbar(centres, ratio, yerr=ratio_err, fmt="o", color="black", ms=3, lw=1)
    finite = ratio[np.isfinite(ratio) & (expected > 0.01 * expected.max(initial=0))]
    spread = float(np.nanmax(np.abs(finite - 1))) if finite.size else 0.5
    half = min(max(0.25, 1.2 * spread), 1.0)
    rax.set_ylim(1 - half, 1 + half)
    rax.set_ylabel("Data / ref.", fontsize="small")


def _pull_panel(
    pax: Any,
    e: np.ndarray,
    centres: np.ndarray,
    p: np.ndarray,
    observed: np.ndarray,
    expected: np.ndarray,
) -> None:
    """The reference test's deviance pulls; |pull| >= 3 in red, off-scale ones at the edge."""
    p[(observed == 0) & (expected == 0)] = np.nan
    lim = _pull_limit(p)
    colors = np.where(np.abs(p) >= 3, "#d62728", "#7f7f7f")
    pax.bar(centres, np.clip(np.nan_to_num(p), -lim, lim), width=e[1] - e[0], color=colors)
    for level in (-3, 3):
        pax.axhline(level, color="#d62728", lw=0.8, ls="--")
    pax.axhline(0, color="black", lw=0.8)
    pax.set_ylim(-lim, lim)
    pax.set_ylabel("Pull", fontsize="small")  # the reference test's deviance pulls


def plot_1d_comparison(
    observed: np.ndarray,
    reference: Reference | np.ndarray,
    x: Axis,
    *,
    title: str = "",
    rlabel: str = "",
    data_label: str = "this LS",
    reference_label: str = "training reference",
    logy: bool = False,
    style: Style = DEFAULT_STYLE,
) -> Figure:
    """Data points over the scaled reference, with a ratio and a pull panel below.

    Bins where both are empty are left blank in the lower panels; pulls beyond the axis are
    drawn at its edge so that nothing off-scale disappears.
    """
    observed = np.asarray(observed, dtype=np.float64)
    reference = as_reference(reference)
    expected = reference.expected(observed)
    e = x.edges
    centres = 0.5 * (e[1:] + e[:-1])
    fig = new_figure((9, 9), style)
    main, rax, pax = fig.subplots(3, 1, sharex=True, height_ratios=[3, 1, 1])
    hep.histplot(
        expected,
        e,
        ax=main,
        histtype="fill",
        color="#9cc3e6",
        alpha=0.8,
        label=reference_label,
        flow=None,
    )
    hep.histplot(expected, e, ax=main, histtype="step", color="#3f7fbf", flow=None)
    hep.histplot(
        observed,
        e,
        ax=main,
        histtype="errorbar",
        yerr=np.sqrt(observed),
        color="black",
        label=data_label,
        flow=None,
        markersize=5,
    )
    _main_limits(main, observed, expected, logy)
    main.legend(loc="upper right", title=title or None, title_fontsize="x-small")
    label_axes(main, style, rlabel)

    _ratio_panel(rax, centres, observed, expected)
    _pull_panel(pax, e, centres, reference.pulls(observed), observed, expected)
    pax.set_xlabel(x.title or "x")
    pax.set_xlim(e[0], e[-1])
    return fig


def _map(values: np.ndarray, x: Axis, y: Axis) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(y.bins, x.bins)


@styled
def plot_2d_comparison(
    observed: np.ndarray,
    reference: Reference | np.ndarray,
    x: Axis,
    y: Axis,
    *,
    title: str = "",
    rlabel: str = "",
    pull_limit: float = 5.0,
    style: Style = DEFAULT_STYLE,
) -> Figure:
    """Data, scaled reference and pull maps side by side (``data`` in the schema's y-major order).

    Empty bins of the data and reference maps are white, as in the DQM GUI, so dead areas show;
    data and reference share one colour scale. Pulls are clipped at ``pull_limit``.
    """
    reference = as_reference(reference)
    obs = _map(observed, x, y)
    exp = _map(reference.expected(np.asarray(observed, dtype=np.float64)), x, y)
    pull = _map(reference.pulls(observed), x, y)
    pull[(obs == 0) & (exp == 0)] = np.nan
    xe, ye = x.edges, y.edges
    fig = new_figure((21, 7.2), style)
    axes = fig.subplots(1, 3, sharey=True)
    norm = Normalize(vmin=0, vmax=max(obs.max(initial=0), exp.max(initial=0), 1))
    cmap = _white_under("viridis")
    panels = (
        (obs, "Data (this LS)", cmap, norm, "Entries"),
        (exp, "Training reference (scaled)", cmap, norm, "Entries"),
        (
            np.clip(pull, -pull_limit, pull_limit),
            "Pull (reference test)",
            "RdBu_r",
            Normalize(-pull_limit, pull_limit),
            "Pull",
        ),
    )
    for ax, (values, name, cm, nm, cbar_label) in zip(axes, panels, strict=True):
        shown = np.ma.masked_where(values <= 0, values) if cbar_label == "Entries" else values
        mesh = ax.pcolormesh(xe, ye, shown, cmap=cm, norm=nm, rasterized=True)
        ax.set_facecolor("white")
        cbar = fig.colorbar(mesh, ax=ax, pad=0.01, fraction=0.05)
        cbar.set_label(cbar_label, fontsize="small")
        ax.set_title(name, loc="center", pad=34)
        ax.set_xlabel(x.title or "x")
    axes[0].set_ylabel(y.title or "y")
    label_axes(axes[0], style)
    axes[2].text(
        1.0, 1.015, rlabel, transform=axes[2].transAxes, ha="right", va="bottom", fontsize="small"
    )
    if title:
        fig.suptitle(title, fontsize="small")
    return fig


def _white_under(name: str) -> Colormap:
    """``name`` with masked (empty) bins drawn white, as in the DQM GUI."""
    return colormaps[name].with_extremes(bad="white")


@styled
def plot_examples_1d(
    histograms: Sequence[np.ndarray],
    labels: Sequence[str],
    x: Axis,
    *,
    reference: np.ndarray | None = None,
    title: str = "",
    style: Style = DEFAULT_STYLE,
) -> Figure:
    """Shapes (unit area) of a few good LS overlaid, with the training reference dashed.

    They should lie on top of each other: a mismatch here means a problem in the extraction or
    in the data, before any model is involved.
    """
    e = x.edges
    width = e[1:] - e[:-1]
    fig = new_figure((9, 7), style)
    ax = fig.subplots()
    for values, label in zip(histograms, labels, strict=True):
        h = np.asarray(values, dtype=np.float64)
        total = h.sum()
        if total > 0:
            hep.histplot(
                h / total / width, e, ax=ax, histtype="step", lw=1.6, label=label, flow=None
            )
    if reference is not None and np.sum(reference) > 0:
        ref = np.asarray(reference, dtype=np.float64)
        hep.histplot(
            ref / ref.sum() / width,
            e,
            ax=ax,
            histtype="step",
            color="black",
            ls="--",
            lw=1.6,
            label="training reference",
            flow=None,
        )
    ax.set_xlabel(x.title or "x")
    ax.set_ylabel("Fraction of entries / unit")
    ax.set_xlim(e[0], e[-1])
    ax.set_ylim(0, ax.get_ylim()[1] * 1.3)
    ax.legend(loc="upper right", title=title or None, title_fontsize="x-small")
    label_axes(ax, style)
    return fig


@styled
def plot_examples_2d(
    histograms: Sequence[np.ndarray],
    labels: Sequence[str],
    x: Axis,
    y: Axis,
    *,
    title: str = "",
    style: Style = DEFAULT_STYLE,
) -> Figure:
    """A few good LS maps side by side (white = empty bin), each with its own colour scale."""
    n = max(len(histograms), 1)
    fig = new_figure((7 * n + 1, 6.6), style)
    axes = np.atleast_1d(fig.subplots(1, n, sharey=True, squeeze=False)[0])
    cmap = _white_under("viridis")
    for ax, h, label in zip(axes, histograms, labels, strict=False):
        m = _map(h, x, y)
        mesh = ax.pcolormesh(
            x.edges, y.edges, np.ma.masked_where(m <= 0, m), cmap=cmap, rasterized=True
        )
        fig.colorbar(mesh, ax=ax, pad=0.01, fraction=0.05).set_label("Entries", fontsize="small")
        ax.set_title(label, pad=34)
        ax.set_xlabel(x.title or "x")
    axes[0].set_ylabel(y.title or "y")
    label_axes(axes[0], style)
    if title:
        fig.suptitle(title, fontsize="small")
    return fig
