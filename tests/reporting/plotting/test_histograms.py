"""One LS against the reference (1D ratio/pull, 2D data/reference/pull) and good examples."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from dqm_playground_ds.reporting.plotting import (
    Axis,
    expected_counts,
    plot_1d_comparison,
    plot_2d_comparison,
    plot_examples_1d,
    plot_examples_2d,
)

X = Axis(0.0, 10.0, 20, "Cluster charge [e]")
X2, Y2 = Axis(0, 6, 6, "z [cm]"), Axis(-3, 3, 4, "φ [rad]")


def test_expected_counts_and_pulls():
    ref = np.array([1.0, 3.0, 0.0])
    obs = np.array([10.0, 30.0, 4.0])
    assert np.allclose(expected_counts(obs, ref), [11.0, 33.0, 0.0])
    assert np.allclose(expected_counts(obs, np.zeros(3)), 0.0)


def test_1d_comparison_has_main_ratio_and_pull_panels(style, rendered):
    ref = np.exp(-0.5 * np.linspace(-2, 2, 20) ** 2)
    obs = np.round(1000 * ref / ref.sum())
    obs[3] += 200  # one hot bin
    fig = plot_1d_comparison(obs, ref, X, title="charge", rlabel="Run 1, LS 2", style=style)
    main, ratio, pull = fig.axes
    assert [t.get_text() for t in main.get_legend().get_texts()] == [
        "training reference",
        "this LS",
    ]
    assert pull.get_xlabel() == "Cluster charge [e]"
    assert ratio.get_ylabel() and pull.get_ylabel() == "Pull"
    bars = pull.patches
    assert len(bars) == X.bins
    red = [k for k, b in enumerate(bars) if b.get_facecolor()[0] > 0.8]
    assert red == [3]  # only the hot bin is beyond 3 sigma
    rendered(fig)


def test_2d_comparison_three_maps_white_empty_bins(style, rendered):
    ref = np.ones(X2.bins * Y2.bins)
    obs = np.full_like(ref, 50.0)
    obs[:3] = 0  # a dead area
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. matplotlib's deprecation of Colormap.set_bad
        fig = plot_2d_comparison(obs, ref, X2, Y2, title="zphi", rlabel="Run 1", style=style)
    maps = fig.axes[:3]
    assert len(fig.axes) == 6  # three maps, three colour bars
    assert [a.get_title() for a in maps] == [
        "Data (this LS)",
        "Training reference (scaled)",
        "Pull (reference test)",
    ]
    data_mesh = maps[0].collections[0]
    assert data_mesh.cmap.get_bad()[:3] == pytest.approx((1.0, 1.0, 1.0))
    assert np.ma.getmaskarray(data_mesh.get_array()).sum() == 3
    pull = maps[2].collections[0].get_array()
    assert pull.min() == pytest.approx(-5.0)  # clipped at the pull limit
    rendered(fig)


def test_examples_1d_overlay_with_reference(style):
    ref = np.exp(-0.5 * np.linspace(-2, 2, 20) ** 2)
    fig = plot_examples_1d([ref * 100, ref * 50], ["Run 1, LS 5", "Run 2, LS 7"], X, reference=ref)
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["Run 1, LS 5", "Run 2, LS 7", "training reference"]


def test_examples_2d_side_by_side(style):
    maps = [np.arange(24.0), np.ones(24)]
    fig = plot_examples_2d(maps, ["Run 1, LS 5", "Run 2, LS 7"], X2, Y2, style=style)
    assert len(fig.axes) == 4
    assert [a.get_title() for a in fig.axes[:2]] == ["Run 1, LS 5", "Run 2, LS 7"]
