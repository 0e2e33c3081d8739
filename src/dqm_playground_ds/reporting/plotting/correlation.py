"""Correlation matrices between MEs.

Two questions a DQM expert asks of a multi-ME detector: do the per-ME scores carry independent
information (a block of highly correlated MEs counts several times in a combined score), and do
the MEs themselves move together from LS to LS (luminosity, a shared readout)? Rank correlation
(Spearman) is the default: scores are heavy-tailed, and one bad LS must not make two MEs look
correlated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from dqm_playground_ds.reporting.plotting.style import (
    DEFAULT_STYLE,
    Style,
    label_axes,
    new_figure,
    short_name,
    styled,
)

__all__ = ["correlation_matrix", "plot_correlation_matrices", "plot_correlation_matrix"]


def correlation_matrix(wide: pd.DataFrame, method: str = "spearman") -> pd.DataFrame:
    """Correlation between the columns of an (LS x ME) table; constant columns give NaN."""
    return wide.astype("float64").corr(method=method, min_periods=3)


def _draw(fig: Figure, ax, matrix: pd.DataFrame, title: str, annotate: bool):
    names = [short_name(str(c)) for c in matrix.columns]
    values = matrix.to_numpy(dtype=np.float64)
    image = ax.imshow(
        np.ma.masked_invalid(values), cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest"
    )
    n = len(names)
    ax.set_xticks(range(n), names, rotation=40, ha="right", fontsize="xx-small")
    ax.set_yticks(range(n), names, fontsize="xx-small")
    ax.tick_params(which="minor", bottom=False, top=False, left=False, right=False)
    ax.tick_params(which="major", length=0)
    if annotate and n <= 20:
        for i in range(n):
            for j in range(n):
                v = values[i, j]
                text = "n/a" if not np.isfinite(v) else f"{v:.2f}"
                color = "white" if np.isfinite(v) and abs(v) > 0.6 else "black"
                ax.text(j, i, text, ha="center", va="center", color=color, fontsize="xx-small")
    ax.set_title(title, fontsize="small", pad=30)
    return image


@styled
def plot_correlation_matrix(
    matrix: pd.DataFrame,
    *,
    title: str = "",
    colorbar_label: str = "Spearman correlation",
    annotate: bool = True,
    style: Style = DEFAULT_STYLE,
) -> Figure:
    """A square correlation matrix, values written in the cells, ME short names on the axes."""
    n = len(matrix.columns)
    size = min(max(7.0, 2.5 + 0.9 * n), 16.0)
    fig = new_figure((size + 1.5, size), style)
    ax = fig.subplots()
    image = _draw(fig, ax, matrix, title, annotate)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02).set_label(colorbar_label, fontsize="small")
    label_axes(ax, style)
    return fig


@styled
def plot_correlation_matrices(
    matrices: dict[str, pd.DataFrame],
    *,
    colorbar_label: str = "Spearman correlation",
    annotate: bool = True,
    style: Style = DEFAULT_STYLE,
) -> Figure:
    """Several correlation matrices side by side (one colour scale), titled by their keys."""
    if not matrices:
        raise ValueError("no correlation matrix to plot")
    n = max(len(m.columns) for m in matrices.values())
    size = min(max(7.0, 2.5 + 0.9 * n), 14.0)
    fig = new_figure((size * len(matrices) + 1.5, size), style)
    axes = np.atleast_1d(fig.subplots(1, len(matrices), squeeze=False)[0])
    image = None
    for ax, (title, matrix) in zip(axes, matrices.items(), strict=True):
        image = _draw(fig, ax, matrix, title, annotate)
    assert image is not None  # at least one matrix
    fig.colorbar(image, ax=list(axes), fraction=0.03, pad=0.02).set_label(
        colorbar_label, fontsize="small"
    )
    label_axes(axes[0], style)
    return fig
