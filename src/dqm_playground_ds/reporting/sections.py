"""The report's sections: what a shifter reads, from the tables and PNGs of the visualization.

:func:`build_report` writes the summary, the run x LS map and the detail runs with their flagged
LS, every flagged LS (capped), the most anomalous LS with their histograms, performance,
correlations and a data overview. Its size follows the number of detail runs and the caps, not
the number of runs: the full tables are the CSV files it links to. The same inputs give the same
bytes: the header states the code version and, if given, a stamp from the caller (no clock).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pandas as pd

from dqm_playground_ds.reporting.flagged import short_mes
from dqm_playground_ds.reporting.performance import injected_auc, real_metrics
from dqm_playground_ds.reporting.report import Report, Section, anchor_id
from dqm_playground_ds.reporting.run_summary import detail_runs, run_ranges
from dqm_playground_ds.reporting.strategies import present_strategies
from dqm_playground_ds.reporting.top_lumisections import top_prefix

SECTIONS = {
    "summary": "Summary",
    "runs": "Runs",
    "flagged": "Flagged lumisections",
    "top": "Most anomalous lumisections",
    "performance": "Detection performance",
    "correlations": "Correlations",
    "overview": "Data overview",
}

#: files next to report.html that the report links to (relative links: they resolve when the
#: report is opened from data/08_reporting, where the catalog writes them)
FLAGGED_CSV = "flagged_lumisections.csv"
RUN_SUMMARY_CSV = "run_summary.csv"
FLAGGED_PER_RUN_CSV = "flagged_per_run.csv"
RUN_PLOTS = "plots/score_timeseries"

Pngs = Mapping[str, bytes]


@dataclass(frozen=True)
class ReportTables:
    """The tables the report reads: whose flags it follows and what they say."""

    strategy: str
    metrics: Mapping[str, Any]
    strategy_metrics: pd.DataFrame
    run_summary: pd.DataFrame
    flagged: pd.DataFrame
    predictions: pd.DataFrame
    lumisections: pd.DataFrame
    top: pd.DataFrame


@dataclass(frozen=True)
class ReportFigures:
    """The PNGs the report embeds (dicts: file name -> bytes, as the figure datasets load them)."""

    overview: Pngs = field(default_factory=dict)
    run_overview: bytes = b""
    examples: Pngs = field(default_factory=dict)
    timeseries: Pngs = field(default_factory=dict)
    top: Pngs = field(default_factory=dict)
    roc: Pngs = field(default_factory=dict)
    auc: bytes = b""
    score_correlation: bytes = b""
    me_correlation: bytes = b""


@dataclass(frozen=True)
class ReportLayout:
    title: str = "DQM anomaly detection report"
    max_flagged_rows: int = 300
    max_run_rows: int = 50
    stamp: str | None = None  # a timestamp or workflow id from the caller


def code_version() -> str:
    """``dqm_playground_ds <version>`` of the installed package (what made the report)."""
    try:
        return f"dqm_playground_ds {metadata.version('dqm_playground_ds')}"
    except metadata.PackageNotFoundError:
        return "dqm_playground_ds (not installed)"


class _Links:
    """In-page links of a row: to its run's section (detail runs) and its LS's (top LS)."""

    def __init__(self, detail: list[int], top: pd.DataFrame) -> None:
        self.detail = set(detail)
        self.top = {(int(r), int(ls)) for r, ls in zip(top["run"], top["lumi"], strict=True)}

    def ls(self, row: Mapping[str, Any]) -> str | None:
        key = (int(row["run"]), int(row.get("LS", row.get("lumi"))))
        return f"#{anchor_id('ls', *key)}" if key in self.top else None

    def run(self, row: Mapping[str, Any]) -> str | None:
        run = int(row["run"])
        return f"#{anchor_id('run', run)}" if run in self.detail else None

    def ls_of_run(self, run: int):
        return lambda row: self.ls({**row, "run": run})


def row_label_class(row: Mapping[str, Any]) -> str | None:
    """The table row colour: the LS's certification label."""
    label = row.get("label")
    return str(label) if label in ("good", "bad", "unknown") else None


def png_items(figures: Pngs | None, *, strip: str = "") -> list[tuple[bytes, str]]:
    """(PNG, caption from its file name) in file-name order."""
    figures = figures or {}
    return [
        (figures[key], key.removesuffix(".png").removeprefix(strip).replace("_", " "))
        for key in sorted(figures)
    ]


def build_report(t: ReportTables, f: ReportFigures, layout: ReportLayout | None = None) -> str:
    """The self-contained HTML report (see the module)."""
    layout = layout or ReportLayout()
    chosen = t.predictions[t.predictions["strategy"] == t.strategy]
    runs = sorted(int(r) for r in t.run_summary["run"])
    n_ls = chosen[["run", "lumi"]].drop_duplicates().shape[0]
    header = f"{len(runs)} runs, {n_ls} LS; flags of strategy {t.strategy}; {code_version()}"
    report = Report(layout.title, header + (f"; {layout.stamp}" if layout.stamp else ""))
    sections = {key: report.section(title, anchor=key) for key, title in SECTIONS.items()}
    detail = detail_runs(t.run_summary)
    report.add_quick_links("Detail runs", [(str(r), f"#{anchor_id('run', r)}") for r in detail])
    links = _Links(detail, t.top)
    summary_section(sections["summary"], t, links, layout)
    runs_section(sections["runs"], t, f, links, layout)
    flagged_section(sections["flagged"], t, links, layout)
    top_section(sections["top"], t, f, links)
    performance_section(sections["performance"], t.strategy_metrics, f)
    c_sec = sections["correlations"]
    c_sec.figure(f.score_correlation, caption="Correlation between per-ME scores across LS")
    c_sec.figure(f.me_correlation, caption="Correlation between MEs across LS")
    o_sec = sections["overview"]
    o_sec.paragraph(
        "What was read. The good-LS examples double as the check that extraction is right: "
        "shapes of different runs must agree with each other and with the reference."
    )
    o_sec.figures(png_items(f.overview), columns=2)
    o_sec.figures(png_items(f.examples), columns=2)
    return report.to_html()


def summary_facts(t: ReportTables) -> dict[str, str]:
    """The summary's facts: runs, detail runs, LS per label, strategies, flags, targets."""
    chosen = t.predictions[t.predictions["strategy"] == t.strategy]
    runs = sorted(int(r) for r in t.run_summary["run"])
    detail = detail_runs(t.run_summary)
    labels = t.lumisections.groupby("label", observed=True).size().to_dict()
    metrics = t.metrics or {}
    best = metrics.get("best_strategy")
    threshold = float(chosen["threshold"].iloc[0]) if len(chosen) else float("nan")
    apply = chosen[chosen.get("split", pd.Series("apply", index=chosen.index)) == "apply"]
    n_flagged_runs = int((t.run_summary["n_flagged"] > 0).sum())
    return {
        "Runs": f"{run_ranges(runs)}; {n_flagged_runs} with flagged LS",
        "Detail runs (own figure and section)": ", ".join(str(r) for r in detail) or "none",
        "Lumisections": f"{len(t.lumisections)} ("
        + ", ".join(f"{k}: {v}" for k, v in sorted(labels.items()))
        + ")",
        "Strategies": ", ".join(present_strategies(t.predictions)),
        "Best strategy (evaluation)": f"{best} — {metrics.get('best_strategy_criterion', '')}"
        if best
        else "not determined",
        "Report follows": f"{t.strategy} (threshold {threshold:.4g})",
        "Flagged LS (report strategy)": f"{int(chosen['is_anomalous'].sum())} of "
        f"{len(chosen)}; held-out (apply) runs: {int(apply['is_anomalous'].sum())} of "
        f"{len(apply)}",
        **{
            f"Target: {k.replace('_', ' ')}": "met" if v else "not met"
            for k, v in (metrics.get("targets") or {}).items()
        },
    }


def summary_section(s: Section, t: ReportTables, links: _Links, layout: ReportLayout) -> None:
    s.facts(summary_facts(t))
    ranked = t.run_summary.sort_values(
        ["detail", "n_flagged", "run"], ascending=[False, False, True], kind="stable"
    )
    s.table(
        ranked.drop(columns=["detail"]),
        caption=f"Runs, detail runs and most flagged first ({t.strategy})",
        links={"run": links.run},
        formats={"max_score_ratio": "{:.3g}", "run_score_ratio": "{:.3g}"},
        max_rows=layout.max_run_rows,
    )
    s.links(
        [
            ("every run (CSV)", RUN_SUMMARY_CSV),
            ("flagged LS per run and strategy (CSV)", FLAGGED_PER_RUN_CSV),
            ("every flagged LS (CSV)", FLAGGED_CSV),
        ],
        label="Full tables:",
    )
    s.paragraph(
        "Row colours in the tables: red = certified bad (DCS on, not golden), green = certified "
        "good, grey = not certified (DCS off). A flagged LS in a green row is a false alarm or a "
        "problem the certification missed.",
        note=True,
    )


def detail_run_facts(row: pd.Series, predictions: pd.DataFrame) -> dict[str, str]:
    """Why a detail run is shown, its verdict, split, LS per label and flags per strategy."""
    run = int(row.name)
    verdict = {}
    if "verdict" in row.index and pd.notna(row["verdict"]):
        verdict = {
            "Run verdict": f"{row['verdict']} (run score / run threshold "
            f"{row['run_score_ratio']:.3g})"
        }
    return {
        "Why shown": str(row["detail_reason"]),
        **verdict,
        "Split": "" if pd.isna(row["split"]) else str(row["split"]),
        "LS": f"{int(row['n_ls'])} (good: {int(row['good'])}, bad: {int(row['bad'])}, "
        f"unknown: {int(row['unknown'])})",
        "Flagged per strategy": ", ".join(
            f"{name}: {int(g['is_anomalous'].sum())}"
            for name, g in predictions[predictions["run"] == run].groupby("strategy", sort=False)
        ),
    }


def runs_section(
    r_sec: Section, t: ReportTables, f: ReportFigures, links: _Links, layout: ReportLayout
) -> None:
    detail = detail_runs(t.run_summary)
    r_sec.paragraph(
        "Every run at once: certification label and score / threshold of the report strategy "
        "per LS (consecutive runs or LS share a cell when there are many; a cell shows its worst "
        "value)."
    )
    r_sec.figure(f.run_overview, caption=f"Runs x LS ({t.strategy})")
    r_sec.paragraph(
        "Detail runs (the most flagged, plus those named in data_visualization.detail_runs.runs): "
        "LS score per strategy along the run: dashed line = threshold, red dots = flagged LS, "
        "shading = certification label. Detail runs: " + (", ".join(map(str, detail)) or "none")
    )
    summary_by_run = t.run_summary.set_index("run")
    for run in detail:
        sub = r_sec.subsection(f"Run {run}", anchor=anchor_id("run", run))
        sub.facts(detail_run_facts(summary_by_run.loc[run], t.predictions))
        name = f"run_{run}.png"
        png = f.timeseries.get(name)
        if png is not None:
            sub.figure(png, caption=f"Run {run}: LS scores of every strategy")
            sub.links([("figure file", f"{RUN_PLOTS}/{name}")])
        sub.table(
            t.flagged[t.flagged["run"] == run].drop(columns=["run"]),
            caption=f"Flagged LS of run {run} ({t.strategy})",
            links={"LS": links.ls_of_run(run)},
            row_class=row_label_class,
            max_rows=layout.max_flagged_rows,
            empty="no LS flagged",
        )


def flagged_section(f_sec: Section, t: ReportTables, links: _Links, layout: ReportLayout) -> None:
    max_rows = layout.max_flagged_rows
    f_sec.paragraph(
        f"LS flagged by {t.strategy}, highest score / threshold first (at most {max_rows}; "
        f"all of them: {FLAGGED_CSV}). 'flagged by' counts the strategies that flag the same LS; "
        "LS with detail plots link to them."
    )
    f_sec.table(
        t.flagged.sort_values("score / threshold", ascending=False, kind="stable"),
        links={"run": links.run, "LS": links.ls},
        row_class=row_label_class,
        max_rows=max_rows,
        empty="no LS flagged",
    )
    f_sec.links([("every flagged LS (CSV)", FLAGGED_CSV)])


def top_facts(row: Mapping[str, Any], n_strategies: int) -> dict[str, str]:
    """Score, label / quality, flagged block, agreement and leading MEs of one top LS."""
    return {
        "Score": f"{row['score']:.4g} (threshold {row['threshold']:.4g})",
        "Label / quality": f"{row['label']} / {row['quality']}",
        "Flagged block": f"LS {row['block_first']}-{row['block_last']}",
        "Flagged by": f"{row['n_strategies_flagging']} of {n_strategies} strategies",
        "Leading MEs": short_mes(row["top_mes"]),
    }


def top_section(t_sec: Section, t: ReportTables, f: ReportFigures, links: _Links) -> None:
    top = t.top
    if top.empty:
        t_sec.paragraph("No flagged LS passes the selection for detail plots.", note=True)
    else:
        t_sec.paragraph(
            "The highest-scoring flagged LS (one per block of consecutive flagged LS): per-ME "
            "scores, then the leading MEs against the training reference, with the pulls the "
            "reference test flags on."
        )
        t_sec.table(
            top.assign(top_mes=top["top_mes"].map(short_mes)),
            links={"run": links.run, "lumi": links.ls},
            row_class=row_label_class,
        )
    n_strategies = len(present_strategies(t.predictions))
    for row in top.to_dict(orient="records"):
        run, lumi = int(row["run"]), int(row["lumi"])
        sub = t_sec.subsection(
            f"#{row['rank']}: run {run}, LS {lumi}", anchor=anchor_id("ls", run, lumi)
        )
        sub.facts(top_facts(row, n_strategies))
        if run in links.detail:
            sub.links([(f"back to run {run}", f"#{anchor_id('run', run)}")])
        prefix = top_prefix(row["rank"], run, lumi) + "_"
        mine = {k: v for k, v in f.top.items() if k.startswith(prefix)}
        sub.figures(png_items(mine, strip=prefix), columns=2)


def performance_section(perf: Section, strategy_metrics: pd.DataFrame, f: ReportFigures) -> None:
    real = real_metrics(strategy_metrics)
    perf.table(
        real,
        caption="Real labels (held-out runs): bad = DCS on but not golden",
        formats={c: "{:.3f}" for c in real.columns if c not in ("strategy", "n_pos", "n_neg")},
    )
    pivot = injected_auc(strategy_metrics)
    if not pivot.empty:
        perf.table(
            pivot,
            caption="AUC per injected anomaly type",
            formats={c: "{:.3f}" for c in pivot.columns if c != "strategy"},
        )
    perf.figure(f.auc, caption="AUC per anomaly type and strategy (95 % bootstrap interval)")
    perf.figures(png_items(f.roc), columns=2)
