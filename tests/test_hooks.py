"""ReportPathHook: the report's path is printed at the end of a run that wrote it, only then."""

from __future__ import annotations

from kedro.io import CachedDataset, DataCatalog, MemoryDataset
from kedro.pipeline import Node, Pipeline
from kedro_datasets.text import TextDataset

from dqm_playground_ds import settings
from dqm_playground_ds.hooks import ReportPathHook


def _pipeline(output: str) -> Pipeline:
    return Pipeline([Node(lambda: "x", inputs=None, outputs=output, name="make")])


def test_registered_in_settings():
    assert any(isinstance(h, ReportPathHook) for h in settings.HOOKS)


def test_prints_the_report_path(tmp_path, capsys):
    path = tmp_path / "report.html"
    path.write_text("<html></html>")
    catalog = DataCatalog({"report_html": TextDataset(filepath=str(path))})
    ReportPathHook().after_pipeline_run({}, _pipeline("report_html"), catalog)
    out = capsys.readouterr().out
    assert f"DQM report: {path.resolve()}" in out and f"file://{path.resolve()}" in out


def test_sees_through_a_wrapping_dataset(tmp_path, capsys):
    path = tmp_path / "r.html"
    path.write_text("x")
    wrapped = CachedDataset(TextDataset(filepath=str(path)))
    ReportPathHook().after_pipeline_run(
        {}, _pipeline("report_html"), DataCatalog({"report_html": wrapped})
    )
    assert str(path.resolve()) in capsys.readouterr().out


def test_silent_when_the_run_did_not_write_it(tmp_path, capsys):
    path = tmp_path / "report.html"
    catalog = DataCatalog({"report_html": TextDataset(filepath=str(path))})
    hook = ReportPathHook()
    path.write_text("old")
    hook.after_pipeline_run({}, _pipeline("something_else"), catalog)  # not in this run
    path.unlink()
    hook.after_pipeline_run({}, _pipeline("report_html"), catalog)  # not written
    hook.after_pipeline_run(
        {}, _pipeline("report_html"), DataCatalog({"report_html": MemoryDataset("x")})
    )  # no file behind it
    hook.after_pipeline_run({}, _pipeline("report_html"), DataCatalog({}))  # no entry
    assert capsys.readouterr().out == ""
