"""``params:data_visualization``: what the plots and the report show, as one typed model.

The defaults here are the only defaults in code; ``conf/base/parameters_data_visualization.yml``
states the same values (a test checks it). Kedro validates the group before any node runs, so
``--params data_visualization.detial_runs=...`` stops the run naming the key.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveInt

from dqm_playground_ds.pipelines.params import Params
from dqm_playground_ds.reporting.plotting import Style

AxisTitles = dict[Literal["x", "y"], str]

#: axis titles of the MEs of the bundled sample (regular expression on the full ME path)
AXIS_TITLES: dict[str, AxisTitles] = {
    "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_.*": {"x": "Cluster charge [e]"},
    ".*/Summary_ClusterStoNCorr__OnTrack__.*": {"x": "Cluster S/N (corrected)"},
    ".*/num_clusters_ontrack_PXBarrel": {"x": "On-track clusters per event"},
    ".*/clusterposition_zphi_ontrack_PXLayer_.*": {"x": "Global z [cm]", "y": "Global φ [rad]"},
}


class StyleParams(Params):
    experiment: str = "CMS"
    text: str = "Private Work"  # the status next to the experiment name on every plot
    dpi: PositiveInt = 100

    def style(self) -> Style:
        return Style(self.experiment, self.text, self.dpi)


class DetailRunsParams(Params):
    """The runs that get their own figure and report section (bounded whatever the runs read)."""

    n_most_flagged: NonNegativeInt = 5
    runs: list[int] = Field(default_factory=list)


class TimeseriesParams(Params):
    strategies: list[str] | None = None  # None = every strategy, one panel each
    logy: bool = True


class RunOverviewParams(Params):
    max_rows: PositiveInt = 120
    max_columns: PositiveInt = 400


class TopLumisectionsParams(Params):
    n: NonNegativeInt = 5
    n_mes: NonNegativeInt = 2
    splits: list[str] | None = Field(default_factory=lambda: ["apply"])
    exclude_quality_failures: bool = True
    distinct_blocks: bool = True


class StrategiesParams(Params):
    strategies: list[str] | None = None


class CorrelationParams(Params):
    strategies: list[str] | None = None  # None = the report strategy
    method: Literal["spearman", "pearson", "kendall"] = "spearman"


class ExamplesParams(Params):
    n_1d: NonNegativeInt = 5
    n_2d: NonNegativeInt = 3


class ReportParams(Params):
    title: str = "DQM anomaly detection report"
    max_flagged_rows: PositiveInt = 300
    max_run_rows: PositiveInt = 50
    stamp: str | None = None  # e.g. a timestamp or workflow id given by the caller


class DataVisualizationParams(Params):
    style: StyleParams = StyleParams()
    report_strategy: str | None = None  # None = the metrics' best strategy
    detail_runs: DetailRunsParams = DetailRunsParams()
    timeseries: TimeseriesParams = TimeseriesParams()
    run_overview: RunOverviewParams = RunOverviewParams()
    top_lumisections: TopLumisectionsParams = TopLumisectionsParams()
    roc: StrategiesParams = StrategiesParams()
    correlation: CorrelationParams = CorrelationParams()
    examples: ExamplesParams = ExamplesParams()
    axis_titles: dict[str, AxisTitles] = Field(default_factory=lambda: dict(AXIS_TITLES))
    report: ReportParams = ReportParams()
