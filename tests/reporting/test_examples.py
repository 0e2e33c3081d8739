"""Good-LS examples: one LS per run, training runs first; axes and their configured titles."""

from __future__ import annotations

from dqm_playground_ds.detection.reference import references_from_table
from dqm_playground_ds.reporting.axes import axis_titles, histogram_axes
from dqm_playground_ds.reporting.examples import example_figures, good_examples
from dqm_playground_ds.reporting.overview import entries_per_ls, ls_per_run
from dqm_playground_ds.reporting.plotting import Style
from tests import viz_inputs


def test_one_good_quality_ok_ls_per_run_training_first():
    ls = viz_inputs.lumisections()
    assert good_examples(ls, 2) == [(1001, 7), (1002, 9)]  # the middle good LS of each run
    picks = good_examples(ls, 5)  # more than runs: more LS of the runs there are
    assert len(picks) == 5 and len(set(picks)) == 5
    labels = ls.set_index(["run", "lumi"])["label"]
    assert all(labels[p] == "good" for p in picks)


def test_one_figure_per_me_with_the_reference_overlaid():
    inputs = viz_inputs.make_inputs()
    refs = references_from_table(inputs["me_references"])
    figs = example_figures(
        inputs["histograms"], inputs["lumisections"], refs, 3, 2, {}, Style(dpi=30)
    )
    assert len(figs) == len(viz_inputs.MES)
    one_d = figs["charge_PXLayer_1.png"]
    labels = [t.get_text() for t in one_d.axes[0].get_legend().get_texts()]
    assert labels[-1] == "training reference" and len(labels) == 3 + 1


def test_axis_titles_later_patterns_win():
    titles = {".*charge.*": {"x": "Charge"}, ".*PXLayer_1": {"x": "Layer 1", "y": "Y"}}
    assert axis_titles("Pixel/charge_PXLayer_1", titles) == ("Layer 1", "Y")
    assert axis_titles("Pixel/charge_PXLayer_2", titles) == ("Charge", "")
    row = viz_inputs.me_references().iloc[2].to_dict()
    x, y = histogram_axes(row, {})
    assert (x.bins, y.bins, y.lo, y.hi) == (viz_inputs.X_BINS_2D, viz_inputs.Y_BINS_2D, -3.0, 3.0)
    assert histogram_axes(viz_inputs.me_references().iloc[0].to_dict(), {})[1] is None


def test_overview_tables():
    inputs = viz_inputs.make_inputs()
    counts = ls_per_run(inputs["lumisections"])
    assert counts.set_index("run").loc[1002, ["good", "bad", "unknown", "split"]].tolist() == [
        8,
        3,
        1,
        "apply",
    ]
    assert len(entries_per_ls(inputs["histograms"])) == len(inputs["histograms"])
