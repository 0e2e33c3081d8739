"""The self-contained HTML report builder: sections, tables, embedded figures, safe output."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dqm_playground_ds.reporting.report import MISSING, Report, anchor_id, format_value

PNG = b"\x89PNG\r\n\x1a\n"


def _figure() -> Figure:
    fig = Figure(figsize=(2, 1.5), dpi=30)
    FigureCanvasAgg(fig)
    fig.subplots().plot([0, 1], [1, 0])
    return fig


def _report() -> str:
    report = Report("DQM report", "2 runs", palette=False)
    summary = report.section("Summary", anchor="summary")
    summary.facts({"Runs": "1, 2", "Flagged": 3})
    runs = report.section("Runs", anchor="runs")
    report.add_quick_links("Runs", [("1", "#run-1"), ("2", "#run-2")])
    for run in (1, 2):
        sub = runs.subsection(f"Run {run}", anchor=anchor_id("run", run))
        sub.figure(_figure(), caption=f"Run {run}: scores")
    flagged = pd.DataFrame(
        {"run": [2, 2, 2], "LS": [5, 6, 7], "score": [40.0, np.nan, 1e6], "label": ["bad"] * 3}
    )
    report.section("Flagged lumisections", anchor="flagged").table(
        flagged,
        caption="Flagged LS",
        links={"LS": lambda row: f"#ls-{row['run']}-{row['LS']}"},
        row_class=lambda row: row["label"],
        max_rows=2,
    )
    report.section("Gallery", anchor="gallery").figures(
        [(_figure(), "a"), (_figure(), "b <i>")], columns=2
    )
    return report.to_html()


def test_sections_navigation_and_run_links():
    html = _report()
    assert html.startswith("<!DOCTYPE html>")
    for anchor, title in [
        ("summary", "Summary"),
        ("runs", "Runs"),
        ("flagged", "Flagged lumisections"),
        ("gallery", "Gallery"),
    ]:
        assert f'<h2 id="{anchor}">{title}' in html
        assert f'<a href="#{anchor}">{title}</a>' in html
    for run in (1, 2):
        assert f'<a href="#run-{run}">{run}</a>' in html and f'id="run-{run}"' in html


def test_flagged_table_rows_links_and_truncation():
    html = _report()
    rows = re.findall(r'<tr class="bad">(.*?)</tr>', html)
    assert len(rows) == 2  # max_rows
    assert '<a href="#ls-2-5">5</a>' in rows[0] and MISSING in rows[1]  # NaN shown as a dash
    assert "1 more rows not shown" in html


def test_images_are_embedded_and_nothing_is_fetched():
    html = _report()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 4
    assert all(base64.b64decode(i)[:8] == PNG for i in images)
    assert not re.search(r"""(src|href)=["'](?!data:image/png|#)""", html)
    assert "<script" not in html and "<link" not in html and "@import" not in html


def test_text_from_data_is_escaped_and_links_are_checked():
    html = _report()
    assert "b &lt;i&gt;" in html and "b <i>" not in html
    report = Report("x")
    with pytest.raises(ValueError, match="refusing link"):
        report.section("s").links([("bad", "javascript:alert(1)")])
    with pytest.raises(ValueError, match="duplicate"):
        report.section("s")
    with pytest.raises(ValueError, match="row class"):
        report.section("t").table(pd.DataFrame({"a": [1]}), row_class=lambda r: "pink")


def test_format_value():
    assert format_value(float("nan")) == MISSING
    assert format_value(1234567.0) == "1.235e+06"
    assert format_value([1, "a"]) == "1, a"
    assert format_value(np.bool_(True)) == "yes"
    assert format_value(None) == MISSING
    assert anchor_id("ls", 315322, 45) == "ls-315322-45"
