"""The figures of one top LS: which MEs drove its score, and its leading MEs against the
reference with the pulls the reference test flags on."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from dqm_playground_ds.detection.reference import Reference
from dqm_playground_ds.histogram_tables import HistogramTable
from dqm_playground_ds.reporting.axes import AxisTitles, histogram_axes
from dqm_playground_ds.reporting.examples import ls_text, rows_at
from dqm_playground_ds.reporting.flagged import me_list
from dqm_playground_ds.reporting.plotting import (
    Style,
    plot_1d_comparison,
    plot_2d_comparison,
    plot_me_contributions,
    safe_filename,
    short_name,
)
from dqm_playground_ds.reporting.top_lumisections import top_prefix

log = logging.getLogger(__name__)


def per_me_scores(me_scores: pd.DataFrame, strategy: str, run: int, lumi: int) -> dict[str, float]:
    """The per-ME scores of one LS under ``strategy`` ({} if it has none)."""
    s = me_scores[
        (me_scores["strategy"] == strategy)
        & (me_scores["run"] == run)
        & (me_scores["lumi"] == lumi)
    ]
    return dict(zip(s["me"].astype(str), s["score"].astype(float), strict=True))


def _block_note(row: Mapping[str, Any]) -> str:
    block = (
        f"flagged LS {row['block_first']}-{row['block_last']}"
        if row["block_first"] != row["block_last"]
        else "single flagged LS"
    )
    return f"LS score {row['score']:.3g} (threshold {row['threshold']:.3g}); {block}"


def comparison_figure(
    histogram: Mapping[str, Any], reference: Reference, titles: AxisTitles, style: Style
) -> Figure:
    """One LS histogram row against its reference: 1D with ratio and pulls, 2D as three maps."""
    run, lumi, me = int(histogram["run"]), int(histogram["lumi"]), str(histogram["me"])
    x, y = histogram_axes(histogram, titles)
    data = np.asarray(histogram["data"], dtype=np.float64)
    if y is None:
        return plot_1d_comparison(
            data,
            reference,
            x,
            title=short_name(me),
            rlabel=ls_text(run, lumi),
            data_label=f"LS {lumi}",
            style=style,
        )
    return plot_2d_comparison(
        data, reference, x, y, title=me, rlabel=ls_text(run, lumi), style=style
    )


def top_lumisection_figures(
    top: pd.DataFrame,
    histograms: HistogramTable | pd.DataFrame,
    references: Mapping[str, Reference],
    me_scores: pd.DataFrame,
    n_mes: int,
    titles: AxisTitles,
    style: Style,
) -> dict[str, Figure]:
    """For each top LS: ``<prefix>_drivers.png`` (per-ME scores) and ``<prefix>_<k>_<me>.png``
    for its ``n_mes`` leading MEs (the LS's ``top_mes``, else its highest per-ME scores)."""
    out: dict[str, Figure] = {}
    if top.empty:
        return out
    hist = rows_at(
        histograms, [(int(r), int(ls)) for r, ls in zip(top["run"], top["lumi"], strict=True)]
    )
    for row in top.to_dict(orient="records"):
        run, lumi, strategy = int(row["run"]), int(row["lumi"]), str(row["strategy"])
        prefix = top_prefix(row["rank"], run, lumi)
        leading = me_list(row["top_mes"])
        per_me = per_me_scores(me_scores, strategy, run, lumi)
        if per_me and not leading:
            leading = [m for m, _ in sorted(per_me.items(), key=lambda kv: -kv[1])]
        out[f"{prefix}_drivers.png"] = plot_me_contributions(
            per_me,
            highlight=leading[:n_mes],
            score_label=f"Per-ME score ({strategy})",
            rlabel=ls_text(run, lumi),
            note=_block_note(row),
            style=style,
        )
        for k, me in enumerate(leading[:n_mes], start=1):
            if (run, lumi, me) not in hist.index or me not in references:
                log.warning("%s: no histogram or reference for %s; not plotted", prefix, me)
                continue
            h = {**hist.loc[(run, lumi, me)].to_dict(), "run": run, "lumi": lumi, "me": me}
            name = f"{prefix}_{k}_{safe_filename(me)}.png"
            out[name] = comparison_figure(h, references[me], titles, style)
    return out
