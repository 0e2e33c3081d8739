"""The report is bounded by design: with hundreds of runs the visualization draws a fixed number of
per-run figures, no image is wider than the bound, and report.html does not grow with the number
of runs. Kedro's runner and the project's catalog entries, in a scratch folder (sizes, not time:
speed is in benchmarks/report_scale.py)."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from dqm_playground_ds.datasets.figures import png_size
from dqm_playground_ds.pipelines.data_visualization import create_pipeline
from dqm_playground_ds.pipelines.data_visualization.nodes import summarise_runs
from dqm_playground_ds.pipelines.data_visualization.params import DataVisualizationParams
from tests import viz_inputs

CONF = Path(__file__).resolve().parents[3] / "conf" / "base"
DPI = 30  # what is drawn is the same; fewer pixels are faster
MAX_PX = 4000  # the bound at the default 100 dpi: at DPI, a figure must fit MAX_PX * DPI / 100


def _params(**report) -> dict:
    params = yaml.safe_load((CONF / "parameters_data_visualization.yml").read_text())
    params = params["data_visualization"]
    params["style"]["dpi"] = DPI
    params["report"].update(report)
    return params


def _model(params: dict) -> DataVisualizationParams:
    return DataVisualizationParams.model_validate(params)


def _run(root: Path, inputs: dict, params: dict) -> Path:
    config = yaml.safe_load((CONF / "catalog_data_visualization.yml").read_text())
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        catalog = DataCatalog.from_config(config)
        for name, data in inputs.items():
            catalog[name] = MemoryDataset(data)
        catalog["params:data_visualization"] = MemoryDataset(_model(params))
        SequentialRunner().run(create_pipeline(), catalog)
    return root / "data" / "08_reporting"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int, Path]:
    """The pipeline on 40 and on 200 runs of 4 LS (flagged LS in every fourth run), with small
    table caps so that both runs exceed them."""
    params = _params(max_flagged_rows=20, max_run_rows=10)
    params["detail_runs"]["runs"] = [300000]  # a training run without flags, named by the user
    out = {}
    for n_runs in (40, 200):
        root = tmp_path_factory.mktemp(f"runs{n_runs}")
        out[n_runs] = _run(root, viz_inputs.make_many_runs(n_runs, 4), copy.deepcopy(params))
    return out


def test_per_run_figures_only_for_the_most_flagged_and_named_runs(runs):
    n_most = DataVisualizationParams().detail_runs.n_most_flagged
    for n_runs, out in runs.items():
        figures = sorted(p.name for p in (out / "plots" / "score_timeseries").glob("*.png"))
        assert len(figures) == n_most + 1, n_runs  # not one per run
        assert "run_300000.png" in figures
        summary = pd.read_csv(out / "run_summary.csv")
        assert len(summary) == n_runs and summary["detail"].sum() == n_most + 1
        html = (out / "report.html").read_text()
        assert html.count('<h3 id="run-') == n_most + 1


def test_no_image_wider_than_the_bound(runs):
    for out in runs.values():
        pngs = list((out / "plots").rglob("*.png"))
        assert len(pngs) > 10
        for png in pngs:
            width, height = png_size(png.read_bytes())
            assert width <= MAX_PX * DPI / 100, (png, width)
            assert height <= MAX_PX * DPI / 100, (png, height)


def test_report_size_does_not_grow_with_the_number_of_runs(runs):
    small, large = ((runs[n] / "report.html").stat().st_size for n in (40, 200))
    assert large < 1.25 * small, (small, large)
    html = (runs[200] / "report.html").read_text()
    assert "more rows not shown" in html  # the caps are what bounds it ...
    flagged = pd.read_csv(runs[200] / "flagged_lumisections.csv")
    assert len(flagged) > 20  # ... and the full table is in the linked file
    assert 'href="flagged_lumisections.csv"' in html


def test_detail_runs_ranked_by_flags_then_score():
    inputs = viz_inputs.make_many_runs(12, 4)
    preds, ls = inputs["lumisection_predictions"], inputs["lumisections"]
    preds = preds.copy()
    # run 300007 gets two more flagged LS than any other run: it ranks first
    extra = (preds["run"] == 300007) & preds["lumi"].isin([1, 4])
    preds.loc[extra, ["score", "is_anomalous"]] = [100.0, True]
    summary = summarise_runs(preds, ls, "ref", _model({"detail_runs": {"n_most_flagged": 1}}))
    assert summary.loc[summary["detail"], "run"].tolist() == [300007]
    assert summary.loc[summary["detail"], "detail_reason"].tolist() == ["most flagged"]
    assert summary["n_ls"].sum() == len(ls)
    none = summarise_runs(
        preds, ls, "ref", _model({"detail_runs": {"n_most_flagged": 0, "runs": []}})
    )
    assert not none["detail"].any()
