"""Correlation matrices between MEs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dqm_playground_ds.reporting.plotting import (
    correlation_matrix,
    plot_correlation_matrices,
    plot_correlation_matrix,
)


def _wide() -> pd.DataFrame:
    x = np.arange(10.0)
    return pd.DataFrame({"A/m1": x, "A/m2": -(x**3), "B/m3": np.ones(10)})


def test_rank_correlation_and_constant_columns():
    m = correlation_matrix(_wide())
    assert m.loc["A/m1", "A/m2"] == pytest.approx(-1.0)
    assert np.isnan(m.loc["A/m1", "B/m3"])


def test_matrix_cells_are_annotated(style, rendered):
    fig = plot_correlation_matrix(correlation_matrix(_wide()), title="scores", style=style)
    ax = fig.axes[0]
    assert len(fig.axes) == 2  # matrix + colour bar
    cells = [t.get_text() for t in ax.texts if t.get_text() in ("1.00", "-1.00", "n/a")]
    assert len(cells) == 9 and cells.count("n/a") == 5
    assert [t.get_text() for t in ax.get_xticklabels()] == ["m1", "m2", "m3"]
    rendered(fig)


def test_matrices_side_by_side_share_one_colour_bar(style):
    m = correlation_matrix(_wide())
    fig = plot_correlation_matrices({"entries": m, "chi2": m.iloc[:2, :2]}, style=style)
    assert len(fig.axes) == 3
    assert [a.get_title() for a in fig.axes[:2]] == ["entries", "chi2"]
    with pytest.raises(ValueError, match="no correlation matrix to plot"):
        plot_correlation_matrices({}, style=style)
