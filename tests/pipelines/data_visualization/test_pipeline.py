"""data_visualization with Kedro's runner and the project's own catalog entries, on small
generated upstream outputs, in a scratch folder: which files it writes and what the report holds."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from dqm_playground_ds.pipelines.data_visualization import create_pipeline
from dqm_playground_ds.pipelines.data_visualization.nodes import (
    choose_report_strategy,
    select_top_lumisections,
)
from dqm_playground_ds.pipelines.data_visualization.params import DataVisualizationParams
from dqm_playground_ds.reporting.sections import SECTIONS
from tests import viz_inputs

CONF = Path(__file__).resolve().parents[3] / "conf" / "base"
PNG = b"\x89PNG\r\n\x1a\n"


def _params(**given) -> DataVisualizationParams:
    params = yaml.safe_load((CONF / "parameters_data_visualization.yml").read_text())
    params = params["data_visualization"]
    params["style"]["dpi"] = 30  # what is drawn is the same; fewer pixels are faster
    return DataVisualizationParams.model_validate({**params, **given})


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict]:
    """One pipeline run, shared by the tests of this module: the outputs in a scratch folder."""
    root = tmp_path_factory.mktemp("project")
    config = yaml.safe_load((CONF / "catalog_data_visualization.yml").read_text())
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # the catalog's relative file paths land in the scratch folder
        catalog = DataCatalog.from_config(config)
        inputs = viz_inputs.make_inputs()
        for name, data in inputs.items():
            catalog[name] = MemoryDataset(data)
        catalog["params:data_visualization"] = MemoryDataset(_params())
        SequentialRunner().run(create_pipeline(), catalog)
    return root / "data" / "08_reporting", inputs


def _pngs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def test_every_node_is_named_and_tagged():
    pipe = create_pipeline()
    assert {n.name for n in pipe.nodes} == {
        "choose_report_strategy",
        "summarise_runs",
        "list_flagged_lumisections",
        "plot_run_overview",
        "plot_data_overview",
        "plot_good_examples",
        "plot_score_timeseries",
        "select_top_lumisections",
        "plot_top_lumisections",
        "plot_roc_curves",
        "plot_auc_summary",
        "plot_score_correlations",
        "plot_me_correlations",
        "build_report",
    }
    assert all("visualization" in n.tags for n in pipe.nodes)
    assert pipe.outputs() >= {"report_html"}


def test_plots_written_one_per_run_strategy_me_and_top_ls(run):
    out, _ = run
    plots = out / "plots"
    summary = pd.read_csv(out / "run_summary.csv")
    detail = sorted(summary.loc[summary["detail"], "run"])
    assert 1002 in detail  # the run with the flagged block
    # the run verdict of the report strategy (run_predictions) is in the run table
    assert set(summary["verdict"].dropna()) <= {"good", "partially_bad", "bad"}
    assert summary["verdict"].notna().all() and "run_score_ratio" in summary
    assert [p.name for p in _pngs(plots / "score_timeseries")] == [f"run_{r}.png" for r in detail]
    assert (plots / "run_overview.png").is_file()
    assert sorted(p.stem for p in _pngs(plots / "roc")) == sorted(viz_inputs.STRATEGIES)
    assert [p.name for p in _pngs(plots / "overview")] == ["entries_per_ls.png", "ls_per_run.png"]
    assert len(_pngs(plots / "example")) == len(viz_inputs.MES)
    for name in ("auc", "score_correlation", "me_correlation"):
        assert (plots / f"{name}.png").is_file()
    # one block of flagged held-out LS (the quality failure is excluded): its drivers and 2 MEs
    top = pd.read_csv(out / "top_lumisections.csv")
    assert len(top) == 1 and top.loc[0, "run"] == 1002 and 5 <= top.loc[0, "lumi"] <= 7
    assert (top.loc[0, "block_first"], top.loc[0, "block_last"]) == (5, 7)
    top_plots = [p.name for p in _pngs(plots / "top_lumisection")]
    assert len(top_plots) == 1 + 2
    assert sum(p.endswith("_drivers.png") for p in top_plots) == 1
    for png in plots.rglob("*.png"):
        assert png.read_bytes()[:8] == PNG and png.stat().st_size > 1000, png


def test_report_has_every_section_runs_and_flagged_ls(run):
    out, inputs = run
    html = (out / "report.html").read_text()
    assert list(SECTIONS) == [
        "summary",
        "runs",
        "flagged",
        "top",
        "performance",
        "correlations",
        "overview",
    ]
    for anchor, title in SECTIONS.items():
        assert f'<h2 id="{anchor}">{title}' in html
    assert "<caption>Real labels (held-out runs)" in html  # the metrics table
    assert "<caption>AUC per injected anomaly type</caption>" in html
    preds = inputs["lumisection_predictions"]
    summary = pd.read_csv(out / "run_summary.csv")
    assert sorted(summary["run"]) == list(viz_inputs.RUNS)
    for run_number, detail in zip(summary["run"], summary["detail"], strict=True):
        has_section = f'href="#run-{run_number}"' in html and f'id="run-{run_number}"' in html
        assert has_section == bool(detail), run_number
    assert 'href="flagged_lumisections.csv"' in html and 'href="run_summary.csv"' in html
    assert len(pd.read_csv(out / "flagged_lumisections.csv")) == len(
        preds[(preds["strategy"] == viz_inputs.BEST) & preds["is_anomalous"]]
    )
    preds = inputs["lumisection_predictions"]
    flagged = preds[(preds["strategy"] == viz_inputs.BEST) & preds["is_anomalous"]]
    assert len(flagged) >= 4  # the bad block and the low-statistics LS
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", html)
    for run_number, lumi in zip(flagged["run"], flagged["lumi"], strict=True):
        assert any(f">{run_number}<" in r and f">{lumi}<" in r for r in rows), (run_number, lumi)
    assert 'id="ls-1002-' in html  # the top LS has its own anchor
    n_images = html.count('src="data:image/png;base64,')
    n_files = len(list((out / "plots").rglob("*.png")))
    assert n_images == n_files
    assert not re.search(r"""src=["'](?!data:)""", html)


def test_report_strategy_follows_metrics_or_parameter():
    inputs = viz_inputs.make_inputs()
    preds, metrics = inputs["lumisection_predictions"], inputs["metrics"]
    default = DataVisualizationParams()
    assert choose_report_strategy(preds, metrics, default) == "ref"
    assert choose_report_strategy(preds, metrics, _params(report_strategy="iso")) == "iso"
    assert choose_report_strategy(preds, {}, default) == "ref"  # first one present
    with pytest.raises(ValueError, match="not among"):
        choose_report_strategy(preds, metrics, _params(report_strategy="nope"))


def test_top_lumisections_one_per_block_unless_asked():
    preds = viz_inputs.make_inputs()["lumisection_predictions"]
    one = select_top_lumisections(preds, "ref", DataVisualizationParams())
    every = select_top_lumisections(
        preds, "ref", _params(top_lumisections={"distinct_blocks": False, "n": 10})
    )
    assert len(one) == 1 and len(every) == 3
    assert list(every["rank"]) == [1, 2, 3]
    assert every["score"].is_monotonic_decreasing


def test_unknown_parameter_is_an_error():
    with pytest.raises(ValueError, match="logx"):
        DataVisualizationParams.model_validate({"timeseries": {"logx": True}})
    assert _params().top_lumisections.n == 5
