"""HEP-style plots of DQM histograms, LS scores and detector performance (no Kedro).

Every helper takes arrays or small frames and returns a :class:`matplotlib.figure.Figure` built
without pyplot on an Agg canvas; save it with ``fig.savefig`` or :func:`figure_to_png`. In a
notebook, call :func:`use_hep_style` once so that figures are shown in the style they were built in.
"""

from dqm_playground_ds.reporting.plotting.correlation import (
    correlation_matrix,
    plot_correlation_matrices,
    plot_correlation_matrix,
)
from dqm_playground_ds.reporting.plotting.histograms import (
    Axis,
    as_reference,
    expected_counts,
    plot_1d_comparison,
    plot_2d_comparison,
    plot_examples_1d,
    plot_examples_2d,
)
from dqm_playground_ds.reporting.plotting.overview import (
    plot_entries_per_ls,
    plot_ls_per_run,
    plot_run_overview,
)
from dqm_playground_ds.reporting.plotting.performance import RocCurve, plot_auc_bars, plot_roc
from dqm_playground_ds.reporting.plotting.scores import (
    label_blocks,
    plot_me_contributions,
    plot_score_timeseries,
)
from dqm_playground_ds.reporting.plotting.style import (
    Style,
    figure_to_png,
    hep_style,
    safe_filename,
    short_name,
    use_hep_style,
)

__all__ = [
    "Axis",
    "RocCurve",
    "Style",
    "as_reference",
    "correlation_matrix",
    "expected_counts",
    "figure_to_png",
    "hep_style",
    "label_blocks",
    "plot_1d_comparison",
    "plot_2d_comparison",
    "plot_auc_bars",
    "plot_correlation_matrices",
    "plot_correlation_matrix",
    "plot_entries_per_ls",
    "plot_examples_1d",
    "plot_examples_2d",
    "plot_ls_per_run",
    "plot_me_contributions",
    "plot_roc",
    "plot_run_overview",
    "plot_score_timeseries",
    "safe_filename",
    "short_name",
    "use_hep_style",
]
