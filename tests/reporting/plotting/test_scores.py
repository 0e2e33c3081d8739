"""LS scores along a run and the per-ME drivers of one LS."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dqm_playground_ds.reporting.plotting import (
    label_blocks,
    plot_me_contributions,
    plot_score_timeseries,
)


def _run(strategies=("a", "b")) -> pd.DataFrame:
    lumi = np.arange(1, 21)
    label = np.where(lumi <= 2, "unknown", np.where((lumi >= 10) & (lumi <= 12), "bad", "good"))
    frames = []
    for k, name in enumerate(strategies):
        score = np.where(label == "bad", 50.0, 1.0 + 0.1 * k)
        frames.append(
            pd.DataFrame(
                {
                    "lumi": lumi,
                    "strategy": name,
                    "score": score,
                    "threshold": 5.0,
                    "is_anomalous": score > 5.0,
                    "label": label,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_label_blocks_split_on_label_and_gaps():
    blocks = label_blocks(np.array([3, 1, 2, 5, 6]), np.array(["g", "b", "b", "g", "g"]))
    assert blocks == [("b", 1, 2), ("g", 3, 3), ("g", 5, 6)]


def test_timeseries_panel_per_strategy_threshold_flags_and_shading(style, rendered):
    fig = plot_score_timeseries(_run(), rlabel="Run 1", style=style)
    assert len(fig.axes) == 2
    for ax, name in zip(fig.axes, ("a", "b"), strict=True):
        assert name in [t.get_text() for t in ax.texts]
        assert "3 / 20 LS flagged" in [t.get_text() for t in ax.texts]
        flagged = [ln for ln in ax.lines if ln.get_color() == "#d62728" and ln.get_marker() == "o"]
        assert len(flagged) == 1 and list(flagged[0].get_xdata()) == [10, 11, 12]
        threshold = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
        assert len(threshold) == 1 and threshold[0].get_ydata()[0] == 5.0
        assert len(ax.patches) == 2  # the bad block and the uncertified block
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:3] == ["LS score", "flagged", "threshold"] and "certified bad" in legend
    assert fig.axes[-1].get_xlabel() == "Lumisection"
    rendered(fig)


def test_timeseries_selects_strategies_and_checks_columns(style):
    fig = plot_score_timeseries(_run(("a", "b", "c")), strategies=["c", "a"], style=style)
    assert [ax.texts[0].get_text() for ax in fig.axes] == ["c", "a"]
    with pytest.raises(ValueError, match="missing column"):
        plot_score_timeseries(_run().drop(columns="threshold"), style=style)
    with pytest.raises(ValueError, match="no strategy"):
        plot_score_timeseries(_run(), strategies=["zzz"], style=style)


def test_me_contributions_sorted_and_highlighted(style, rendered):
    scores = {"A/me1": 3.0, "A/me2": 12.0, "B/me3": -0.5, "B/me4": float("nan")}
    fig = plot_me_contributions(scores, highlight=["A/me2"], note="LS score 40", style=style)
    (ax,) = fig.axes
    assert len(ax.patches) == 3  # NaN is left out
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert names == ["me3", "me1", "me2"]  # highest on top
    red = [p for p in ax.patches if p.get_facecolor()[0] > 0.8]
    assert len(red) == 1 and red[0].get_width() == 12.0
    values = [t for t in ax.texts if t.get_text().strip() == "-0.5"]
    assert values and values[0].get_position()[0] >= 0  # right of zero: never on the names
    rendered(fig)
