"""Good LS of different runs per ME: shapes that must agree with each other and the reference."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from dqm_playground_ds.detection.reference import Reference
from dqm_playground_ds.histogram_tables import HistogramTable, as_table
from dqm_playground_ds.reporting.axes import AxisTitles, histogram_axes
from dqm_playground_ds.reporting.plotting import (
    Style,
    plot_examples_1d,
    plot_examples_2d,
    safe_filename,
    short_name,
)


def ls_text(run: int, lumi: int) -> str:
    return f"Run {run}, LS {lumi}"


def good_examples(lumisections: pd.DataFrame, n: int) -> list[tuple[int, int]]:
    """Up to ``n`` good, quality-ok LS, one per run (the middle one), training runs first."""
    good = lumisections[lumisections["label"] == "good"]
    if "quality" in good:
        good = good[good["quality"] == "ok"]
    if "split" in good:
        good = good.assign(_order=(good["split"] != "train").astype(int))
    else:
        good = good.assign(_order=0)
    picks = []
    for (_, run), rows in good.groupby(["_order", "run"], sort=True):
        lumis = np.sort(rows["lumi"].to_numpy())
        picks.append((int(run), int(lumis[len(lumis) // 2])))
    if len(picks) < n:  # few runs: more LS from the runs there are
        extra = good.sort_values(["_order", "run", "lumi"])
        for run, lumi in zip(extra["run"], extra["lumi"], strict=True):
            if len(picks) >= n:
                break
            if (int(run), int(lumi)) not in picks:
                picks.append((int(run), int(lumi)))
    return picks[:n]


def rows_at(
    histograms: HistogramTable | pd.DataFrame,
    lumisections: list[tuple[int, int]],
    mes: list[str] | None = None,
) -> pd.DataFrame:
    """The histograms of a few LS (of ``mes``, default all) indexed by (run, lumi, me): read one
    ME at a time, the runs of those LS only, so a report's few figures never load the table."""
    table = as_table(histograms)
    wanted = set(lumisections)
    runs = sorted({r for r, _ in wanted})
    parts = []
    for me in table.mes() if mes is None else mes:
        if not runs:
            break
        rows = table.read(me=me, runs=runs)
        keep = [
            (int(r), int(ls)) in wanted for r, ls in zip(rows["run"], rows["lumi"], strict=True)
        ]
        parts.append(rows[np.asarray(keep, dtype=bool)])
    hist = pd.concat(parts, ignore_index=True) if parts else table.read(me=[])
    return hist.set_index(["run", "lumi", "me"]).sort_index()


def example_figures(
    histograms: HistogramTable | pd.DataFrame,
    lumisections: pd.DataFrame,
    references: Mapping[str, Reference],
    n_1d: int,
    n_2d: int,
    titles: AxisTitles,
    style: Style,
) -> dict[str, Figure]:
    """Per ME, good LS from different runs (1D overlaid with the reference, 2D side by side)."""
    picks = good_examples(lumisections, max(n_1d, n_2d))
    hist = rows_at(histograms, picks)
    out: dict[str, Figure] = {}
    for me in sorted(as_table(histograms).mes()):
        rows = [(r, ls) for r, ls in picks if (r, ls, me) in hist.index]
        if not rows:
            continue
        first = hist.loc[(rows[0][0], rows[0][1], me)]
        x, y = histogram_axes({**first.to_dict(), "me": me}, titles)
        name = safe_filename(me, [k.removesuffix(".png") for k in out]) + ".png"
        rows = rows[:n_1d] if y is None else rows[:n_2d]
        data = [np.asarray(hist.loc[(r, ls, me), "data"]) for r, ls in rows]
        labels = [ls_text(r, ls) for r, ls in rows]
        if y is None:
            ref = references[me].shape if me in references else None
            out[name] = plot_examples_1d(
                data, labels, x, reference=ref, title=short_name(me), style=style
            )
        else:
            out[name] = plot_examples_2d(data, labels, x, y, title=me, style=style)
    return out
