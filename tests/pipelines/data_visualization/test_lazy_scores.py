"""The per-ME scores handed over unread (``lazy: true``): the plots read the rows they need and
draw what they draw from the whole table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dqm_playground_ds.datasets import ParquetTableDataset
from dqm_playground_ds.frame_parts import ParquetFrame
from dqm_playground_ds.pipelines.data_visualization import nodes
from dqm_playground_ds.pipelines.data_visualization.params import DataVisualizationParams
from tests import viz_inputs

PARAMS = DataVisualizationParams.model_validate({"style": {"dpi": 20}})


class _Spy(ParquetFrame):
    def __init__(self, frame: ParquetFrame) -> None:
        super().__init__(frame.path)
        self.reads: list[dict] = []

    def read(self, where=None, columns=None):
        self.reads.append({k: sorted(v) for k, v in (where or {}).items()})
        self.columns = columns
        return super().read(where, columns)


def _lazy(scores: pd.DataFrame, tmp_path) -> _Spy:
    ds = ParquetTableDataset(filepath=str(tmp_path / "me_scores.parquet"), lazy=True)
    ds.save(scores)
    return _Spy(ds.load())


def _drawn(fig) -> list[np.ndarray]:
    """What a figure shows: its images' arrays and its bars' heights, axis by axis."""
    out = []
    for ax in fig.axes:
        out += [np.ma.filled(im.get_array(), np.nan) for im in ax.get_images()]
        out += [
            np.ma.filled(c.get_array(), np.nan) for c in ax.collections if c.get_array() is not None
        ]
        out.append(np.array([p.get_height() for p in ax.patches if hasattr(p, "get_height")]))
        out += [np.asarray(p.get_data().values) for p in ax.patches if hasattr(p, "get_data")]
        out.append(np.array([t.get_text() for t in ax.get_yticklabels()]))
    return out


def _assert_same(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_score_correlations_read_the_report_strategy_only(tmp_path):
    inputs = viz_inputs.make_inputs()
    scores, ls = inputs["me_scores"], inputs["lumisections"]
    lazy = _lazy(scores, tmp_path)
    fig = nodes.plot_score_correlations(lazy, ls, viz_inputs.BEST, PARAMS)
    assert lazy.reads == [{"strategy": [viz_inputs.BEST]}]
    assert set(lazy.columns) == {"run", "lumi", "me", "strategy", "score"}  # no raw_* columns
    _assert_same(
        _drawn(fig), _drawn(nodes.plot_score_correlations(scores, ls, viz_inputs.BEST, PARAMS))
    )


def test_top_lumisections_read_their_strategies_and_runs_only(tmp_path):
    inputs = viz_inputs.make_inputs()
    top = nodes.select_top_lumisections(inputs["lumisection_predictions"], viz_inputs.BEST, PARAMS)
    assert len(top) >= 1
    lazy = _lazy(inputs["me_scores"], tmp_path)
    args = (inputs["histograms"], inputs["me_references"])
    figures = nodes.plot_top_lumisections(top, *args, lazy, PARAMS)
    (read,) = lazy.reads
    assert read == {"strategy": sorted(set(top["strategy"])), "run": sorted(set(top["run"]))}
    expected = nodes.plot_top_lumisections(top, *args, inputs["me_scores"], PARAMS)
    assert sorted(figures) == sorted(expected)
    for name in expected:
        _assert_same(_drawn(figures[name]), _drawn(expected[name]))


def test_an_unknown_strategy_is_named_with_those_the_table_has(tmp_path, caplog):
    inputs = viz_inputs.make_inputs()
    lazy = _lazy(inputs["me_scores"], tmp_path)
    params = PARAMS.model_copy(
        update={"correlation": PARAMS.correlation.model_copy(update={"strategies": ["reff"]})}
    )
    fig = nodes.plot_score_correlations(lazy, inputs["lumisections"], viz_inputs.BEST, params)
    assert "strategies ['reff'] not in the predictions (have ['ref', 'iso'])" in caplog.text
    assert lazy.reads == [{"strategy": [viz_inputs.BEST]}]  # the report strategy drawn instead
    assert fig.axes
