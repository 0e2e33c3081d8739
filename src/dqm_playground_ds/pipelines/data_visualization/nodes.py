"""Visualization nodes: the plots a shifter reads and the HTML report, from upstream tables.

Every node is a pure function: frames and :class:`DataVisualizationParams` in, figures, small
tables or the report's HTML text out. What to show lives in :mod:`dqm_playground_ds.reporting`
(run summary, flagged and top LS, deviations, report sections), drawing in
:mod:`dqm_playground_ds.reporting.plotting`; the reference and its pulls are the detector's
(:mod:`dqm_playground_ds.detection.reference`, saved per ME as ``me_references``).

Figures are returned as ``{file name: Figure}`` dictionaries wherever their number depends on the
data (per detail run, per strategy, per anomalous LS): the catalog
(:class:`~dqm_playground_ds.datasets.FigureDataset`) saves each into its own PNG of bounded size
and closes it; the report reads the PNGs back. Per-run figures are drawn only for the *detail
runs*, overviews aggregate, and the report's tables are capped, with links to the full CSV files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib
import pandas as pd
from matplotlib.figure import Figure

from dqm_playground_ds.detection.reference import references_from_table
from dqm_playground_ds.frame_parts import FrameParts, Table, as_frame, distinct, rows_where
from dqm_playground_ds.histogram_tables import HistogramTable
from dqm_playground_ds.pipelines.data_visualization.params import DataVisualizationParams
from dqm_playground_ds.reporting import strategies as strategies_
from dqm_playground_ds.reporting import top_lumisections as top_
from dqm_playground_ds.reporting.deviations import me_deviation_table, quality_ok_keys, wide
from dqm_playground_ds.reporting.examples import example_figures
from dqm_playground_ds.reporting.flagged import flagged_table
from dqm_playground_ds.reporting.lumisection_plots import top_lumisection_figures
from dqm_playground_ds.reporting.overview import entries_per_ls, ls_per_run
from dqm_playground_ds.reporting.performance import auc_table, roc_curves_of
from dqm_playground_ds.reporting.plotting import (
    correlation_matrix,
    plot_auc_bars,
    plot_correlation_matrices,
    plot_entries_per_ls,
    plot_ls_per_run,
    plot_roc,
    plot_run_overview,
    plot_score_timeseries,
    safe_filename,
    use_hep_style,
)
from dqm_playground_ds.reporting.run_summary import detail_runs, ls_ratio_table
from dqm_playground_ds.reporting.run_summary import summarise_runs as run_summary_table
from dqm_playground_ds.reporting.sections import (
    ReportFigures,
    ReportLayout,
    ReportTables,
)
from dqm_playground_ds.reporting.sections import build_report as report_html

# Kedro runs are batch jobs: no display, and the catalog saves figures after the node returned,
# so the style must be the global one at that point.
matplotlib.use("Agg")
use_hep_style()

Params = DataVisualizationParams
SCORE_COLUMNS = ("run", "lumi", "strategy", "me", "score")  # of me_scores, what the plots use
Pngs = Mapping[str, bytes]


def choose_report_strategy(
    lumisection_predictions: pd.DataFrame | FrameParts, metrics: Mapping[str, Any], params: Params
) -> str:
    """Whose flags the report lists: ``report_strategy``, else the metrics' best strategy."""
    lumisection_predictions = as_frame(lumisection_predictions)
    return strategies_.choose_report_strategy(
        lumisection_predictions, metrics, params.report_strategy
    )


def plot_data_overview(
    histograms: HistogramTable | pd.DataFrame, lumisections: pd.DataFrame, params: Params
) -> dict[str, Figure]:
    """LS per run by label, and entries per LS of every ME: the check that extraction is sane."""
    style = params.style.style()
    return {
        "ls_per_run.png": plot_ls_per_run(ls_per_run(lumisections), style=style),
        "entries_per_ls.png": plot_entries_per_ls(entries_per_ls(histograms), style=style),
    }


def plot_good_examples(
    histograms: HistogramTable | pd.DataFrame,
    lumisections: pd.DataFrame,
    me_references: pd.DataFrame,
    params: Params,
) -> dict[str, Figure]:
    """Per ME, good LS from different runs (1D overlaid with the reference, 2D side by side)."""
    return example_figures(
        histograms,
        lumisections,
        references_from_table(me_references),
        params.examples.n_1d,
        params.examples.n_2d,
        params.axis_titles,
        params.style.style(),
    )


def summarise_runs(
    lumisection_predictions: pd.DataFrame | FrameParts,
    lumisections: pd.DataFrame,
    report_strategy: str,
    params: Params,
    run_predictions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per run: LS per label, flags and run verdict of the report strategy, and whether
    it is a detail run (the most flagged ones plus ``detail_runs.runs``)."""
    lumisection_predictions = as_frame(lumisection_predictions)
    return run_summary_table(
        lumisection_predictions,
        lumisections,
        report_strategy,
        params.detail_runs.n_most_flagged,
        params.detail_runs.runs,
        run_predictions,
    )


def plot_run_overview_map(
    lumisection_predictions: pd.DataFrame | FrameParts,
    lumisections: pd.DataFrame,
    report_strategy: str,
    params: Params,
) -> Figure:
    """Every run at once: a run x LS map of labels and score / threshold (binned axes)."""
    lumisection_predictions = as_frame(lumisection_predictions)
    d = ls_ratio_table(lumisection_predictions, lumisections, report_strategy)
    return plot_run_overview(
        d,
        max_rows=params.run_overview.max_rows,
        max_columns=params.run_overview.max_columns,
        title=f"{report_strategy}: {len(d)} LS in {d['run'].nunique()} runs",
        style=params.style.style(),
    )


def plot_score_timeseries_per_run(
    lumisection_predictions: pd.DataFrame | FrameParts, run_summary: pd.DataFrame, params: Params
) -> dict[str, Figure]:
    """One figure per detail run: a panel per strategy with score, threshold, flags, labels."""
    lumisection_predictions = as_frame(lumisection_predictions)
    q = params.timeseries
    chosen = strategies_.select_strategies(lumisection_predictions, q.strategies)
    preds = lumisection_predictions[lumisection_predictions["run"].isin(detail_runs(run_summary))]
    out = {}
    for run, d in preds.groupby("run", sort=True):
        split = "/".join(sorted(set(d["split"].astype(str)))) if "split" in d else ""
        out[f"run_{run}.png"] = plot_score_timeseries(
            d,
            strategies=chosen,
            logy=q.logy,
            rlabel=f"Run {run}" + (f" ({split})" if split else ""),
            style=params.style.style(),
        )
    return out


def list_flagged_lumisections(
    lumisection_predictions: pd.DataFrame | FrameParts, report_strategy: str
) -> pd.DataFrame:
    """Every LS flagged by the report strategy, all runs (the full table behind the report's
    capped one), with how many strategies agree."""
    lumisection_predictions = as_frame(lumisection_predictions)
    return flagged_table(lumisection_predictions, report_strategy)


def select_top_lumisections(
    lumisection_predictions: pd.DataFrame | FrameParts, report_strategy: str, params: Params
) -> pd.DataFrame:
    """The flagged LS worth opening first: the peak of each block, quality failures skipped."""
    lumisection_predictions = as_frame(lumisection_predictions)
    q = params.top_lumisections
    return top_.select_top_lumisections(
        lumisection_predictions,
        report_strategy,
        q.n,
        q.splits,
        q.exclude_quality_failures,
        q.distinct_blocks,
    )


def plot_top_lumisections(
    top_lumisections: pd.DataFrame,
    histograms: HistogramTable | pd.DataFrame,
    me_references: pd.DataFrame,
    me_scores: Table,
    params: Params,
) -> dict[str, Figure]:
    """For each top LS: the per-ME scores and its leading MEs against the reference, with the
    reference test's pulls (1D ratio and pull panels, 2D data/reference/pull maps)."""
    me_scores = rows_where(  # only the top LS' strategies and runs are read
        me_scores,
        SCORE_COLUMNS,
        strategy=set(top_lumisections["strategy"].astype(str)),
        run=set(top_lumisections["run"].astype(int)),
    )
    return top_lumisection_figures(
        top_lumisections,
        histograms,
        references_from_table(me_references),
        me_scores,
        params.top_lumisections.n_mes,
        params.axis_titles,
        params.style.style(),
    )


def plot_roc_curves(
    roc_curves: pd.DataFrame, strategy_metrics: pd.DataFrame, params: Params
) -> dict[str, Figure]:
    """One figure per strategy: ROC on the real labels (black) and per injected anomaly type."""
    if roc_curves.empty:
        return {}
    return {
        f"{safe_filename(name)}.png": plot_roc(
            roc_curves_of(roc_curves, strategy_metrics, name),
            title=name,
            style=params.style.style(),
        )
        for name in strategies_.select_strategies(roc_curves, params.roc.strategies)
    }


def plot_auc_summary(strategy_metrics: pd.DataFrame, params: Params) -> Figure:
    """AUC per anomaly type (real labels first) and strategy, with bootstrap intervals."""
    table, order = auc_table(strategy_metrics)
    return plot_auc_bars(table, order=order, style=params.style.style())


def plot_score_correlations(
    me_scores: Table,
    lumisections: pd.DataFrame,
    report_strategy: str,
    params: Params,
) -> Figure:
    """Rank correlation between per-ME scores over the LS that pass the quality cuts: strongly
    correlated MEs carry the same information (a max-type combination counts it twice)."""
    q = params.correlation
    wanted = q.strategies if q.strategies is not None else [report_strategy]
    present = pd.DataFrame({"strategy": distinct(me_scores, "strategy")})
    chosen = strategies_.select_strategies(present, list(wanted)) or [report_strategy]
    me_scores = rows_where(me_scores, SCORE_COLUMNS, strategy=chosen)  # only those are read
    scores = me_scores.merge(quality_ok_keys(lumisections), on=["run", "lumi"])
    matrices = {}
    for name in chosen:
        w = wide(scores[scores["strategy"] == name], "score")
        matrices[f"per-ME scores: {name} ({len(w)} LS)"] = correlation_matrix(w, q.method)
    return plot_correlation_matrices(
        matrices, colorbar_label=f"{q.method.capitalize()} correlation", style=params.style.style()
    )


def plot_me_correlations(
    histograms: HistogramTable | pd.DataFrame,
    me_references: pd.DataFrame,
    lumisections: pd.DataFrame,
    params: Params,
) -> Figure:
    """How MEs move together across LS: entries (luminosity, shared readout) and the reference
    test's chi2/ndf (problems that hit several MEs at once), over LS passing the quality cuts."""
    method = params.correlation.method
    table = me_deviation_table(histograms, references_from_table(me_references))
    table = table.merge(quality_ok_keys(lumisections), on=["run", "lumi"])
    matrices = {}
    for column, title in (("entries", "entries per LS"), ("chi2_ndf", "χ²/ndf vs reference")):
        w = wide(table, column)
        matrices[f"{title} ({len(w)} LS)"] = correlation_matrix(w, method)
    return plot_correlation_matrices(
        matrices, colorbar_label=f"{method.capitalize()} correlation", style=params.style.style()
    )


def build_report(
    report_strategy: str,
    metrics: Mapping[str, Any],
    strategy_metrics: pd.DataFrame,
    run_summary: pd.DataFrame,
    flagged_lumisections: pd.DataFrame,
    lumisection_predictions: pd.DataFrame | FrameParts,
    lumisections: pd.DataFrame,
    top_lumisections: pd.DataFrame,
    overview_plots: Pngs,
    run_overview_plot: bytes,
    example_plots: Pngs,
    score_timeseries_plots: Pngs,
    top_lumisection_plots: Pngs,
    roc_plots: Pngs,
    auc_plot: bytes,
    score_correlation_plot: bytes,
    me_correlation_plot: bytes,
    params: Params,
) -> str:
    """The HTML report (:mod:`dqm_playground_ds.reporting.sections`) of the tables and PNGs."""
    lumisection_predictions = as_frame(lumisection_predictions)
    tables = ReportTables(
        report_strategy,
        metrics,
        strategy_metrics,
        run_summary,
        flagged_lumisections,
        lumisection_predictions,
        lumisections,
        top_lumisections,
    )
    figures = ReportFigures(
        overview_plots,
        run_overview_plot,
        example_plots,
        score_timeseries_plots,
        top_lumisection_plots,
        roc_plots,
        auc_plot,
        score_correlation_plot,
        me_correlation_plot,
    )
    r = params.report
    return report_html(
        tables, figures, ReportLayout(r.title, r.max_flagged_rows, r.max_run_rows, r.stamp)
    )
