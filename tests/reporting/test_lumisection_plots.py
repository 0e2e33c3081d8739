"""The figures of a top LS draw the reference's pulls (the reference test's), not another formula."""

from __future__ import annotations

import numpy as np
import pytest

from dqm_playground_ds.detection.reference import references_from_table
from dqm_playground_ds.reporting.lumisection_plots import (
    comparison_figure,
    per_me_scores,
    top_lumisection_figures,
)
from dqm_playground_ds.reporting.plotting import Style, safe_filename
from dqm_playground_ds.reporting.top_lumisections import select_top_lumisections
from tests import viz_inputs

STYLE = Style(dpi=30)


@pytest.fixture(scope="module")
def inputs() -> dict:
    return viz_inputs.make_inputs()


def _row(inputs: dict, run: int, lumi: int, me: str) -> dict:
    h = inputs["histograms"]
    return h[(h["run"] == run) & (h["lumi"] == lumi) & (h["me"] == me)].iloc[0].to_dict()


def test_1d_pull_panel_shows_the_reference_pulls(inputs):
    refs = references_from_table(inputs["me_references"])
    me = viz_inputs.ME_1D[0]
    row = _row(inputs, 1002, 6, me)  # in the bad block: a third of the bins empty
    fig = comparison_figure(row, refs[me], {}, STYLE)
    pull_ax = fig.axes[2]
    shown = np.array([b.get_height() for b in pull_ax.patches])
    expected = refs[me].pulls(np.asarray(row["data"], dtype=float))
    lim = pull_ax.get_ylim()[1]
    np.testing.assert_allclose(shown, np.clip(expected, -lim, lim))
    assert (shown[: len(shown) // 3] < -2).all()  # the empty bins of the bad block


def test_2d_pull_map_shows_the_reference_pulls(inputs):
    refs = references_from_table(inputs["me_references"])
    me = viz_inputs.ME_2D
    row = _row(inputs, 1002, 3, me)
    fig = comparison_figure(row, refs[me], {}, STYLE)
    shown = np.ma.filled(fig.axes[2].collections[0].get_array(), np.nan).reshape(-1)
    expected = refs[me].pulls(np.asarray(row["data"], dtype=float))
    ok = np.isfinite(shown)
    np.testing.assert_allclose(shown[ok], np.clip(expected, -5, 5)[ok])
    assert ok.all()  # every bin has entries here: none is blanked


def test_drivers_and_leading_mes_of_each_top_ls(inputs):
    preds = inputs["lumisection_predictions"]
    top = select_top_lumisections(preds, "ref", 5)
    refs = references_from_table(inputs["me_references"])
    figs = top_lumisection_figures(
        top, inputs["histograms"], refs, inputs["me_scores"], 2, {}, STYLE
    )
    prefix = "01_run1002_ls"
    names = sorted(figs)
    assert len(names) == 3 and all(n.startswith(prefix) for n in names)
    assert sum(n.endswith("_drivers.png") for n in names) == 1
    rank = f"01_run1002_ls{int(top.loc[0, 'lumi']):04d}"
    leading = top.loc[0, "top_mes"].split("; ")
    assert [n for n in names if "_drivers" not in n] == [
        f"{rank}_{k}_{safe_filename(m)}.png" for k, m in enumerate(leading, start=1)
    ]
    scores = per_me_scores(inputs["me_scores"], "ref", 1002, int(top.loc[0, "lumi"]))
    assert set(scores) == set(viz_inputs.MES)
    # no reference for an ME: its comparison is left out, the drivers stay
    fewer = top_lumisection_figures(
        top, inputs["histograms"], {}, inputs["me_scores"], 2, {}, STYLE
    )
    assert sorted(fewer) == [n for n in names if n.endswith("_drivers.png")]
