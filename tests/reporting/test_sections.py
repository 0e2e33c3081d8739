"""The report's sections from small generated tables: what a shifter reads, and the same bytes
for the same inputs (no clock)."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from dqm_playground_ds.reporting.flagged import flagged_table
from dqm_playground_ds.reporting.run_summary import summarise_runs
from dqm_playground_ds.reporting.sections import (
    SECTIONS,
    ReportFigures,
    ReportLayout,
    ReportTables,
    build_report,
    code_version,
    summary_facts,
)
from dqm_playground_ds.reporting.top_lumisections import select_top_lumisections, top_prefix
from tests import viz_inputs
from tests.reporting.plotting.conftest import PNG


def _png(tag: str) -> bytes:
    return PNG + tag.encode()  # any bytes: the report embeds them as they are


@pytest.fixture(scope="module")
def tables() -> ReportTables:
    inputs = viz_inputs.make_inputs()
    preds, ls = inputs["lumisection_predictions"], inputs["lumisections"]
    return ReportTables(
        "ref",
        inputs["metrics"],
        inputs["strategy_metrics"],
        summarise_runs(preds, ls, "ref", 5, [], inputs["run_predictions"]),
        flagged_table(preds, "ref"),
        preds,
        ls,
        select_top_lumisections(preds, "ref", 5),
    )


def _figures(top: pd.DataFrame) -> ReportFigures:
    prefix = top_prefix(1, top.loc[0, "run"], top.loc[0, "lumi"])
    return ReportFigures(
        overview={"ls_per_run.png": _png("ls")},
        run_overview=_png("map"),
        timeseries={"run_1002.png": _png("ts")},
        top={f"{prefix}_drivers.png": _png("drv"), f"{prefix}_1_charge.png": _png("me1")},
        roc={"ref.png": _png("roc")},
        auc=_png("auc"),
        score_correlation=_png("sc"),
        me_correlation=_png("mc"),
    )


def test_summary_states_what_was_flagged(tables):
    facts = summary_facts(tables)
    preds = tables.predictions
    mine = preds[preds["strategy"] == "ref"]
    held = mine[mine["split"] == "apply"]
    assert facts["Flagged LS (report strategy)"] == (
        f"{int(mine['is_anomalous'].sum())} of {len(mine)}; held-out (apply) runs: "
        f"{int(held['is_anomalous'].sum())} of {len(held)}"
    )
    assert facts["Runs"] == "2 (1001-1002); 2 with flagged LS"
    assert facts["Report follows"] == "ref (threshold 2)"
    assert facts["Best strategy (evaluation)"].startswith("ref — highest AUC")
    assert facts["Target: auc ge 0.95 every type"] == "met"
    assert facts["Lumisections"] == "24 (bad: 3, good: 19, unknown: 2)"


def test_report_sections_links_and_figures(tables):
    html = build_report(tables, _figures(tables.top), ReportLayout(max_flagged_rows=300))
    for anchor, title in SECTIONS.items():
        assert f'<h2 id="{anchor}">{title}' in html
    run, lumi = int(tables.top.loc[0, "run"]), int(tables.top.loc[0, "lumi"])
    assert f'id="ls-{run}-{lumi}"' in html and f'href="#ls-{run}-{lumi}"' in html
    assert html.count('id="run-') == int(tables.run_summary["detail"].sum())
    # the top LS's figures sit in its own subsection, captioned without the prefix
    top = html[html.index(f'id="ls-{run}-{lumi}"') : html.index('<h2 id="performance"')]
    assert top.count("data:image/png;base64,") == 2 and "<figcaption>drivers</figcaption>" in top
    # every flagged LS of the report strategy is a row of the flagged table
    flagged = html[html.index('<h2 id="flagged"') : html.index('<h2 id="top"')]
    assert len(re.findall(r"<tr[ >]", flagged)) == len(tables.flagged) + 1
    assert "<caption>AUC per injected anomaly type</caption>" in html


def test_same_inputs_same_bytes_and_the_header_states_the_code(tables):
    figures = _figures(tables.top)
    one = build_report(tables, figures)
    assert one == build_report(tables, figures)
    assert code_version() in one and "generated" not in one
    stamped = build_report(tables, figures, ReportLayout(stamp="workflow dqm-7f3a"))
    assert "; workflow dqm-7f3a</p>" in stamped


def test_caps_bound_the_tables(tables):
    html = build_report(tables, _figures(tables.top), ReportLayout(max_flagged_rows=2))
    assert "more rows not shown" in html


def test_no_top_ls_says_so(tables):
    empty = ReportTables(**{**tables.__dict__, "top": tables.top.iloc[:0]})
    html = build_report(empty, _figures(tables.top))
    assert "No flagged LS passes the selection for detail plots." in html
