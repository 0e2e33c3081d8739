from kedro.pipeline import Node, Pipeline

from dqm_playground_ds.pipelines.data_visualization.nodes import (
    build_report,
    choose_report_strategy,
    list_flagged_lumisections,
    plot_auc_summary,
    plot_data_overview,
    plot_good_examples,
    plot_me_correlations,
    plot_roc_curves,
    plot_run_overview_map,
    plot_score_correlations,
    plot_score_timeseries_per_run,
    plot_top_lumisections,
    select_top_lumisections,
    summarise_runs,
)

PARAMS = "params:data_visualization"


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            Node(
                choose_report_strategy,
                inputs=["lumisection_predictions", "metrics", PARAMS],
                outputs="report_strategy",
                name="choose_report_strategy",
            ),
            Node(
                summarise_runs,
                inputs=[
                    "lumisection_predictions",
                    "lumisections",
                    "report_strategy",
                    PARAMS,
                    "run_predictions",
                ],
                outputs="run_summary",
                name="summarise_runs",
            ),
            Node(
                list_flagged_lumisections,
                inputs=["lumisection_predictions", "report_strategy"],
                outputs="flagged_lumisections",
                name="list_flagged_lumisections",
            ),
            Node(
                plot_run_overview_map,
                inputs=["lumisection_predictions", "lumisections", "report_strategy", PARAMS],
                outputs="run_overview_plot",
                name="plot_run_overview",
            ),
            Node(
                plot_data_overview,
                inputs=["histograms", "lumisections", PARAMS],
                outputs="overview_plots",
                name="plot_data_overview",
            ),
            Node(
                plot_good_examples,
                inputs=["histograms", "lumisections", "me_references", PARAMS],
                outputs="example_plots",
                name="plot_good_examples",
            ),
            Node(
                plot_score_timeseries_per_run,
                inputs=["lumisection_predictions", "run_summary", PARAMS],
                outputs="score_timeseries_plots",
                name="plot_score_timeseries",
            ),
            Node(
                select_top_lumisections,
                inputs=["lumisection_predictions", "report_strategy", PARAMS],
                outputs="top_lumisections",
                name="select_top_lumisections",
            ),
            Node(
                plot_top_lumisections,
                inputs=[
                    "top_lumisections",
                    "histograms",
                    "me_references",
                    "me_scores",
                    PARAMS,
                ],
                outputs="top_lumisection_plots",
                name="plot_top_lumisections",
            ),
            Node(
                plot_roc_curves,
                inputs=["roc_curves", "strategy_metrics", PARAMS],
                outputs="roc_plots",
                name="plot_roc_curves",
            ),
            Node(
                plot_auc_summary,
                inputs=["strategy_metrics", PARAMS],
                outputs="auc_plot",
                name="plot_auc_summary",
            ),
            Node(
                plot_score_correlations,
                inputs=["me_scores", "lumisections", "report_strategy", PARAMS],
                outputs="score_correlation_plot",
                name="plot_score_correlations",
            ),
            Node(
                plot_me_correlations,
                inputs=["histograms", "me_references", "lumisections", PARAMS],
                outputs="me_correlation_plot",
                name="plot_me_correlations",
            ),
            Node(
                build_report,
                inputs=[
                    "report_strategy",
                    "metrics",
                    "strategy_metrics",
                    "run_summary",
                    "flagged_lumisections",
                    "lumisection_predictions",
                    "lumisections",
                    "top_lumisections",
                    "overview_plots",
                    "run_overview_plot",
                    "example_plots",
                    "score_timeseries_plots",
                    "top_lumisection_plots",
                    "roc_plots",
                    "auc_plot",
                    "score_correlation_plot",
                    "me_correlation_plot",
                    PARAMS,
                ],
                outputs="report_html",
                name="build_report",
            ),
        ],
        tags=["visualization"],
    )
