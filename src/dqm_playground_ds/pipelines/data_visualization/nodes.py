"""Visualization nodes: the plots a shifter reads and the HTML report, from upstream tables.

Every node is a pure function: frames and ``params:data_visualization`` in, figures, small tables
or the report's HTML text out. Plotting lives in :mod:`dqm_playground_ds.reporting.plotting`, HTML in :mod:`dqm_playground_ds.reporting.report`; what is here is the
choice of what to show.

Figures are returned as ``{file name: Figure}`` dictionaries wherever their number depends on the
data (per detail run, per strategy, per anomalous LS): the catalog
(:class:`~dqm_playground_ds.datasets.FigureDataset`) saves each into its own PNG of bounded size
and closes it; the report reads the PNGs back.

Bounded by design: whatever the number of runs, per-run figures are drawn only for the *detail
runs* (the most flagged ones plus those named in ``detail_runs.runs``), overviews aggregate (a run x
LS map, binned bars), and the report's tables are capped, with links to the full CSV files.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from dqm_playground_ds.reporting.plotting import (
    Axis,
    RocCurve,
    Style,
    correlation_matrix,
    expected_counts,
    plot_1d_comparison,
    plot_2d_comparison,
    plot_auc_bars,
    plot_correlation_matrices,
    plot_entries_per_ls,
    plot_examples_1d,
    plot_examples_2d,
    plot_ls_per_run,
    plot_me_contributions,
    plot_roc,
    plot_run_overview,
    plot_score_timeseries,
    pulls,
    safe_filename,
    short_name,
    use_hep_style,
)
from dqm_playground_ds.reporting.report import Report, anchor_id
from dqm_playground_ds.schema import data_matrix

# Kedro runs are batch jobs: no display, and the catalog saves figures after the node returned,
# so the style must be the global one at that point.
matplotlib.use("Agg")
use_hep_style()

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "style": {"experiment": "CMS", "text": "Private Work", "dpi": 100},
    "report_strategy": None,
    "detail_runs": {"n_most_flagged": 5, "runs": []},
    "timeseries": {"strategies": None, "logy": True},
    "run_overview": {"max_rows": 120, "max_columns": 400},
    "top_lumisections": {
        "n": 5,
        "n_mes": 2,
        "splits": ["apply"],
        "exclude_quality_failures": True,
        "distinct_blocks": True,
    },
    "roc": {"strategies": None},
    "correlation": {"strategies": None, "method": "spearman"},
    "examples": {"n_1d": 5, "n_2d": 3},
    "axis_titles": {},
    "report": {
        "title": "DQM anomaly detection report",
        "max_flagged_rows": 300,
        "max_run_rows": 50,
    },
}


# ------------------------------------------------------------------------------------------------
# parameters
# ------------------------------------------------------------------------------------------------
def _merge(defaults: Mapping[str, Any], given: Mapping[str, Any], where: str) -> dict[str, Any]:
    unknown = set(given) - set(defaults)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; known {sorted(defaults)}")
    out = copy.deepcopy(dict(defaults))
    for key, value in given.items():
        if isinstance(defaults[key], dict) and defaults[key] and isinstance(value, Mapping):
            out[key] = _merge(defaults[key], value, f"{where}.{key}")
        else:
            out[key] = value
    return out


def resolve_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``params:data_visualization`` on top of :data:`DEFAULTS`; unknown keys are an error."""
    return _merge(DEFAULTS, dict(params or {}), "data_visualization")


def _style(p: Mapping[str, Any]) -> Style:
    return Style.from_dict(p["style"])


def _axis_titles(me: str, p: Mapping[str, Any]) -> tuple[str, str]:
    x = y = ""
    for pattern, titles in (p.get("axis_titles") or {}).items():
        if re.fullmatch(pattern, me):
            x, y = titles.get("x", x), titles.get("y", y)
    return x, y


def _axes(row: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[Axis, Axis | None]:
    xt, yt = _axis_titles(str(row["me"]), p)
    x = Axis(float(row["x_min"]), float(row["x_max"]), int(row["x_bins"]), xt)
    if int(row["dim"]) != 2:
        return x, None
    return x, Axis(float(row["y_min"]), float(row["y_max"]), int(row["y_bins"]), yt)


def _strategies(predictions: pd.DataFrame, wanted: list[str] | None) -> list[str]:
    present = list(dict.fromkeys(predictions["strategy"].astype(str)))
    if wanted is None:
        return present
    missing = [s for s in wanted if s not in present]
    if missing:
        log.warning("strategies %s not in the predictions (have %s): skipped", missing, present)
    return [s for s in wanted if s in present]


def _ls_text(run: int, lumi: int) -> str:
    return f"Run {run}, LS {lumi}"


# ------------------------------------------------------------------------------------------------
# which strategy the report follows
# ------------------------------------------------------------------------------------------------
def choose_report_strategy(
    lumisection_predictions: pd.DataFrame, metrics: Mapping[str, Any], params: dict[str, Any]
) -> str:
    """The strategy whose flags the report lists: ``report_strategy`` if set, else the one the
    evaluation found best, else the first one."""
    p = resolve_params(params)
    present = list(dict.fromkeys(lumisection_predictions["strategy"].astype(str)))
    if not present:
        raise ValueError("lumisection_predictions is empty: nothing to report")
    wanted = p["report_strategy"]
    if wanted is not None:
        if wanted not in present:
            raise ValueError(f"report_strategy {wanted!r} not among the predictions {present}")
        return str(wanted)
    best = (metrics or {}).get("best_strategy")
    if best in present:
        return str(best)
    log.warning("no best strategy in the metrics: the report follows %r", present[0])
    return present[0]


# ------------------------------------------------------------------------------------------------
# data overview
# ------------------------------------------------------------------------------------------------
def plot_data_overview(
    histograms: pd.DataFrame, lumisections: pd.DataFrame, params: dict[str, Any]
) -> dict[str, Figure]:
    """LS per run by label, and entries per LS of every ME: the check that extraction is sane."""
    p = resolve_params(params)
    style = _style(p)
    counts = (
        lumisections.groupby(["run", "label"], observed=True).size().unstack(fill_value=0)
    ).reindex(columns=["good", "bad", "unknown"], fill_value=0)
    counts = counts.reset_index()
    if "split" in lumisections:
        split = lumisections.groupby("run")["split"].agg(lambda s: "/".join(sorted(set(s))))
        counts["split"] = counts["run"].map(split)
    per_ls = histograms.loc[histograms["lumi"] > 0, ["run", "lumi", "me", "entries"]]
    return {
        "ls_per_run.png": plot_ls_per_run(counts, style=style),
        "entries_per_ls.png": plot_entries_per_ls(per_ls, style=style),
    }


def _good_examples(lumisections: pd.DataFrame, n: int) -> list[tuple[int, int]]:
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


def plot_good_examples(
    histograms: pd.DataFrame,
    lumisections: pd.DataFrame,
    me_references: pd.DataFrame,
    params: dict[str, Any],
) -> dict[str, Figure]:
    """Per ME, good LS from different runs (1D overlaid with the reference, 2D side by side)."""
    p = resolve_params(params)
    style = _style(p)
    n_1d, n_2d = int(p["examples"]["n_1d"]), int(p["examples"]["n_2d"])
    picks = _good_examples(lumisections, max(n_1d, n_2d))
    hist = histograms[histograms["lumi"] > 0].set_index(["run", "lumi", "me"]).sort_index()
    refs = me_references.set_index("me") if len(me_references) else None
    out: dict[str, Figure] = {}
    for me in sorted(histograms["me"].astype(str).unique()):
        rows = [(r, ls) for r, ls in picks if (r, ls, me) in hist.index]
        if not rows:
            continue
        first = hist.loc[(rows[0][0], rows[0][1], me)]
        x, y = _axes({**first.to_dict(), "me": me}, p)
        name = safe_filename(me, [k.removesuffix(".png") for k in out]) + ".png"
        if y is None:
            rows = rows[:n_1d]
            data = [np.asarray(hist.loc[(r, ls, me), "data"]) for r, ls in rows]
            ref = refs.loc[me, "data"] if refs is not None and me in refs.index else None
            out[name] = plot_examples_1d(
                data,
                [_ls_text(r, ls) for r, ls in rows],
                x,
                reference=ref,
                title=short_name(me),
                style=style,
            )
        else:
            rows = rows[:n_2d]
            data = [np.asarray(hist.loc[(r, ls, me), "data"]) for r, ls in rows]
            out[name] = plot_examples_2d(
                data, [_ls_text(r, ls) for r, ls in rows], x, y, title=me, style=style
            )
    return out


# ------------------------------------------------------------------------------------------------
# scores along each run
# ------------------------------------------------------------------------------------------------
RUN_SUMMARY_COLUMNS = [
    "run",
    "split",
    "n_ls",
    "good",
    "bad",
    "unknown",
    "n_flagged",
    "max_score_ratio",
    "detail",
    "detail_reason",
]


def summarise_runs(
    lumisection_predictions: pd.DataFrame,
    lumisections: pd.DataFrame,
    report_strategy: str,
    params: dict[str, Any],
    run_predictions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per run: LS per label, LS flagged by the report strategy, the largest score /
    threshold, the run verdict of the report strategy (``run_predictions``), and whether the run
    is a *detail run* (own figure and report section).

    Detail runs are the ``detail_runs.n_most_flagged`` runs with most flagged LS (ties: larger
    score / threshold, then run number) plus every run named in ``detail_runs.runs``: the number
    of per-run figures is bounded whatever the number of runs.
    """
    p = resolve_params(params)
    q = p["detail_runs"]
    preds = lumisection_predictions
    chosen = preds[preds["strategy"] == report_strategy]
    ratio = chosen["score"].astype(float) / chosen["threshold"].astype(float)
    per_run = (
        chosen.assign(_ratio=ratio, _flag=chosen["is_anomalous"].astype(bool))
        .groupby("run")
        .agg(n_flagged=("_flag", "sum"), max_score_ratio=("_ratio", "max"))
    )
    labels = (
        lumisections.groupby(["run", "label"], observed=True).size().unstack(fill_value=0)
    ).reindex(columns=["good", "bad", "unknown"], fill_value=0)
    out = labels.join(per_run, how="outer").fillna({"n_flagged": 0})
    out[["good", "bad", "unknown"]] = out[["good", "bad", "unknown"]].fillna(0)
    out["n_ls"] = out[["good", "bad", "unknown"]].sum(axis=1)
    if "split" in lumisections:
        split = lumisections.groupby("run")["split"].agg(
            lambda v: "/".join(sorted(set(v.astype(str))))
        )
        out["split"] = split.reindex(out.index)
    else:
        out["split"] = pd.NA
    out = out.reset_index().rename(columns={"index": "run"})
    out = out.astype({c: "int64" for c in ("run", "n_ls", "good", "bad", "unknown", "n_flagged")})
    ranked = out[out["n_flagged"] > 0].sort_values(
        ["n_flagged", "max_score_ratio", "run"], ascending=[False, False, True], kind="stable"
    )
    most = set(ranked["run"].head(int(q["n_most_flagged"])).tolist())
    named = {int(r) for r in (q["runs"] or [])}
    unknown = sorted(named - set(out["run"].tolist()))
    if unknown:
        log.warning("detail_runs.runs %s are not in the predictions: no figure for them", unknown)
    if run_predictions is not None and len(run_predictions):
        v = run_predictions[run_predictions["strategy"] == report_strategy].set_index("run")
        out["verdict"] = out["run"].map(v["verdict"]).astype("string")
        out["run_score_ratio"] = out["run"].map(v["run_score"] / v["run_threshold"])
    out["detail"] = out["run"].isin(most | named)
    out["detail_reason"] = [
        "/".join(x for x, yes in (("most flagged", r in most), ("named", r in named)) if yes)
        for r in out["run"]
    ]
    columns = RUN_SUMMARY_COLUMNS + [c for c in ("verdict", "run_score_ratio") if c in out]
    return out[columns].sort_values("run").reset_index(drop=True)


def _detail_runs(run_summary: pd.DataFrame) -> list[int]:
    return sorted(int(r) for r in run_summary.loc[run_summary["detail"].astype(bool), "run"])


def plot_run_overview_map(
    lumisection_predictions: pd.DataFrame,
    lumisections: pd.DataFrame,
    report_strategy: str,
    params: dict[str, Any],
) -> Figure:
    """Every run at once: a run x LS map of labels and score / threshold (binned axes), instead
    of one figure or bar per run."""
    p = resolve_params(params)
    q = p["run_overview"]
    preds = lumisection_predictions
    d = preds.loc[preds["strategy"] == report_strategy, ["run", "lumi", "score", "threshold"]]
    d = d.assign(ratio=d["score"].astype(float) / d["threshold"].astype(float))
    d = d.merge(lumisections[["run", "lumi", "label"]], on=["run", "lumi"], how="left")
    return plot_run_overview(
        d[["run", "lumi", "ratio", "label"]],
        max_rows=int(q["max_rows"]),
        max_columns=int(q["max_columns"]),
        title=f"{report_strategy}: {len(d)} LS in {d['run'].nunique()} runs",
        style=_style(p),
    )


def plot_score_timeseries_per_run(
    lumisection_predictions: pd.DataFrame, run_summary: pd.DataFrame, params: dict[str, Any]
) -> dict[str, Figure]:
    """One figure per detail run: a panel per strategy with score, threshold, flags, labels."""
    p = resolve_params(params)
    q = p["timeseries"]
    style = _style(p)
    preds = lumisection_predictions
    strategies = _strategies(preds, q["strategies"])
    runs = _detail_runs(run_summary)
    preds = preds[preds["run"].isin(runs)]
    out = {}
    for run, d in preds.groupby("run", sort=True):
        split = "/".join(sorted(set(d["split"].astype(str)))) if "split" in d else ""
        out[f"run_{run}.png"] = plot_score_timeseries(
            d,
            strategies=strategies,
            logy=bool(q["logy"]),
            rlabel=f"Run {run}" + (f" ({split})" if split else ""),
            style=style,
        )
    return out


# ------------------------------------------------------------------------------------------------
# the most anomalous LS
# ------------------------------------------------------------------------------------------------
def _leading_me(value: Any) -> str:
    items = list(value) if value is not None and not isinstance(value, str) else [value]
    return str(items[0]) if items and items[0] is not None else ""


def _blocks(lumi: np.ndarray, leading: np.ndarray) -> np.ndarray:
    """Block number of each flagged LS (sorted by LS): a block is a run of consecutive LS whose
    leading ME is the same, i.e. one problem, even when a strategy flags a whole run."""
    if not len(lumi):
        return np.empty(0, dtype=int)
    new = np.r_[True, (np.diff(lumi) != 1) | (leading[1:] != leading[:-1])]
    return np.cumsum(new)


def select_top_lumisections(
    lumisection_predictions: pd.DataFrame, report_strategy: str, params: dict[str, Any]
) -> pd.DataFrame:
    """The flagged LS worth opening first: highest score of the report strategy.

    With ``distinct_blocks`` only the peak LS of each block (consecutive flagged LS with the same
    leading ME) is kept, so that five plots show five problems rather than five LS of one. LS flagged only for
    failing the quality cuts (ramp-up, low statistics) are skipped by default: their histograms
    are noise, and the quality detail already says why.
    """
    p = resolve_params(params)
    q = p["top_lumisections"]
    preds = lumisection_predictions
    agree = preds.groupby(["run", "lumi"])["is_anomalous"].sum().rename("n_strategies_flagging")
    d = preds[(preds["strategy"] == report_strategy) & preds["is_anomalous"].astype(bool)]
    d = d.sort_values(["run", "lumi"]).reset_index(drop=True)
    blocks = []
    for run, rows in d.groupby("run", sort=True):
        leading = np.array([_leading_me(v) for v in rows["top_mes"]], dtype=object)
        b = _blocks(rows["lumi"].to_numpy(), leading)
        first = rows.groupby(b)["lumi"].transform("min").to_numpy()
        last = rows.groupby(b)["lumi"].transform("max").to_numpy()
        blocks.append(
            pd.DataFrame(
                {
                    "run": run,
                    "lumi": rows["lumi"].to_numpy(),
                    "block_first": first,
                    "block_last": last,
                }
            )
        )
    columns = [
        "rank",
        "run",
        "lumi",
        "strategy",
        "score",
        "threshold",
        "label",
        "split",
        "quality",
        "block_first",
        "block_last",
        "n_strategies_flagging",
        "top_mes",
    ]
    if not blocks:
        return pd.DataFrame(columns=columns)
    d = d.merge(pd.concat(blocks), on=["run", "lumi"], how="left")
    if q["splits"] is not None and "split" in d:
        d = d[d["split"].isin(list(q["splits"]))]
    if q["exclude_quality_failures"] and "quality" in d:
        d = d[d["quality"].fillna("ok") == "ok"]
    d = d.sort_values("score", ascending=False, kind="stable")
    if q["distinct_blocks"]:
        d = d.drop_duplicates(["run", "block_first"])
    d = d.head(int(q["n"])).reset_index(drop=True)
    d = d.merge(agree.reset_index(), on=["run", "lumi"], how="left")
    d["rank"] = np.arange(1, len(d) + 1)
    d["top_mes"] = ["; ".join(str(m) for m in (v if v is not None else [])) for v in d["top_mes"]]
    for col in ("label", "split", "quality"):
        if col not in d:
            d[col] = pd.NA
    return d[columns].astype({"rank": "int64", "run": "int64", "lumi": "int64"})


def top_prefix(rank: int, run: int, lumi: int) -> str:
    """File-name prefix shared by the plots of one top LS (the report groups them by it)."""
    return f"{int(rank):02d}_run{int(run)}_ls{int(lumi):04d}"


def _reference_shapes(
    me_references: pd.DataFrame,
    histograms: pd.DataFrame,
    lumisections: pd.DataFrame,
    mes: list[str],
) -> dict[str, np.ndarray]:
    """Reference shape per ME: the processing's, else the mean normalised good training LS."""
    refs = {}
    if len(me_references):
        refs = {
            str(m): np.asarray(v, dtype=np.float64)
            for m, v in zip(me_references["me"], me_references["data"], strict=True)
        }
    missing = [m for m in mes if m not in refs]
    if missing:
        train = lumisections
        if "train" in train:
            train = train[train["train"].astype(bool)]
        else:
            train = train[(train["label"] == "good") & (train.get("split", "train") == "train")]
        keys = train[["run", "lumi"]]
        for me in missing:
            rows = histograms[histograms["me"] == me].merge(keys, on=["run", "lumi"])
            if rows.empty:
                continue
            m = data_matrix(rows)
            sums = m.sum(axis=1, keepdims=True)
            m = m[sums[:, 0] > 0] / sums[sums[:, 0] > 0]
            if len(m):
                refs[me] = m.mean(axis=0)
                log.info("%s: no reference from processing, using %d training LS", me, len(m))
    return refs


def plot_top_lumisections(
    top_lumisections: pd.DataFrame,
    histograms: pd.DataFrame,
    me_references: pd.DataFrame,
    me_scores: pd.DataFrame,
    lumisections: pd.DataFrame,
    params: dict[str, Any],
) -> dict[str, Figure]:
    """For each top LS: the per-ME scores (which MEs drove it) and its leading MEs against the
    training reference (1D with ratio and pull panels, 2D as data/reference/pull maps)."""
    p = resolve_params(params)
    style = _style(p)
    n_mes = int(p["top_lumisections"]["n_mes"])
    out: dict[str, Figure] = {}
    if top_lumisections.empty:
        return out
    hist = histograms[histograms["lumi"] > 0].set_index(["run", "lumi", "me"]).sort_index()
    wanted = sorted({m for v in top_lumisections["top_mes"] for m in str(v).split("; ") if m})
    refs = _reference_shapes(me_references, histograms, lumisections, wanted)
    scores = me_scores.set_index(["strategy", "run", "lumi"]).sort_index()
    for row in top_lumisections.to_dict(orient="records"):
        run, lumi, strategy = int(row["run"]), int(row["lumi"]), str(row["strategy"])
        prefix = top_prefix(row["rank"], run, lumi)
        leading = [m for m in str(row["top_mes"]).split("; ") if m]
        per_me: dict[str, float] = {}
        if (strategy, run, lumi) in scores.index:
            s = scores.loc[[(strategy, run, lumi)]]
            per_me = dict(zip(s["me"].astype(str), s["score"].astype(float), strict=True))
            if not leading:
                leading = [m for m, _ in sorted(per_me.items(), key=lambda kv: -kv[1])]
        block = (
            f"flagged LS {row['block_first']}-{row['block_last']}"
            if row["block_first"] != row["block_last"]
            else "single flagged LS"
        )
        out[f"{prefix}_drivers.png"] = plot_me_contributions(
            per_me,
            highlight=leading[:n_mes],
            score_label=f"Per-ME score ({strategy})",
            rlabel=_ls_text(run, lumi),
            note=f"LS score {row['score']:.3g} (threshold {row['threshold']:.3g}); {block}",
            style=style,
        )
        for k, me in enumerate(leading[:n_mes], start=1):
            if (run, lumi, me) not in hist.index or me not in refs:
                log.warning("%s: no histogram or reference for %s; not plotted", prefix, me)
                continue
            h = hist.loc[(run, lumi, me)]
            x, y = _axes({**h.to_dict(), "me": me}, p)
            data = np.asarray(h["data"], dtype=np.float64)
            name = f"{prefix}_{k}_{safe_filename(me)}.png"
            if y is None:
                out[name] = plot_1d_comparison(
                    data,
                    refs[me],
                    x,
                    title=short_name(me),
                    rlabel=_ls_text(run, lumi),
                    data_label=f"LS {lumi}",
                    style=style,
                )
            else:
                out[name] = plot_2d_comparison(
                    data, refs[me], x, y, title=me, rlabel=_ls_text(run, lumi), style=style
                )
    return out


# ------------------------------------------------------------------------------------------------
# performance
# ------------------------------------------------------------------------------------------------
def _curve_label(evaluation: str, anomaly_type: str) -> str:
    return "real labels" if evaluation == "real" else anomaly_type.replace("_", " ")


def plot_roc_curves(
    roc_curves: pd.DataFrame, strategy_metrics: pd.DataFrame, params: dict[str, Any]
) -> dict[str, Figure]:
    """One figure per strategy: ROC on the real labels (black) and per injected anomaly type."""
    p = resolve_params(params)
    style = _style(p)
    if roc_curves.empty:
        return {}
    strategies = _strategies(roc_curves, p["roc"]["strategies"])
    m = strategy_metrics.set_index(["strategy", "evaluation", "anomaly_type"])
    out = {}
    for name in strategies:
        curves = []
        d = roc_curves[roc_curves["strategy"] == name]
        for (evaluation, atype), c in d.groupby(["evaluation", "anomaly_type"], sort=False):
            key = (name, evaluation, atype)
            stats = m.loc[key] if key in m.index else {}
            curves.append(
                RocCurve(
                    _curve_label(str(evaluation), str(atype)),
                    c["fpr"].to_numpy(),
                    c["tpr"].to_numpy(),
                    float(stats.get("auc", np.nan)),
                    float(stats.get("auc_lo", np.nan)),
                    float(stats.get("auc_hi", np.nan)),
                    emphasis=evaluation == "real",
                )
            )
        curves.sort(key=lambda c: not c.emphasis)
        out[f"{safe_filename(name)}.png"] = plot_roc(curves, title=name, style=style)
    return out


def plot_auc_summary(strategy_metrics: pd.DataFrame, params: dict[str, Any]) -> Figure:
    """AUC per anomaly type (real labels first) and strategy, with bootstrap intervals."""
    p = resolve_params(params)
    t = strategy_metrics.assign(
        anomaly_type=[
            _curve_label(str(e), str(a))
            for e, a in zip(
                strategy_metrics["evaluation"], strategy_metrics["anomaly_type"], strict=True
            )
        ]
    )
    order = list(dict.fromkeys(["real labels", *t["anomaly_type"]]))
    order = [o for o in order if (t["anomaly_type"] == o).any()]
    return plot_auc_bars(t, order=order, style=_style(p))


# ------------------------------------------------------------------------------------------------
# correlations
# ------------------------------------------------------------------------------------------------
def _quality_ok_keys(lumisections: pd.DataFrame) -> pd.DataFrame:
    ok = lumisections
    if "quality" in ok:
        ok = ok[ok["quality"] == "ok"]
    return ok[["run", "lumi"]]


def plot_score_correlations(
    me_scores: pd.DataFrame,
    lumisections: pd.DataFrame,
    report_strategy: str,
    params: dict[str, Any],
) -> Figure:
    """Rank correlation between per-ME scores over the LS that pass the quality cuts.

    Strongly correlated MEs carry the same information, and a max-type combination then counts
    one problem several times.
    """
    p = resolve_params(params)
    q = p["correlation"]
    wanted = q["strategies"] if q["strategies"] is not None else [report_strategy]
    strategies = _strategies(me_scores, list(wanted))
    scores = me_scores.merge(_quality_ok_keys(lumisections), on=["run", "lumi"])
    matrices = {}
    for name in strategies or [report_strategy]:
        wide = scores[scores["strategy"] == name].pivot_table(
            index=["run", "lumi"], columns="me", values="score", aggfunc="first"
        )
        matrices[f"per-ME scores: {name} ({len(wide)} LS)"] = correlation_matrix(wide, q["method"])
    return plot_correlation_matrices(
        matrices, colorbar_label=f"{q['method'].capitalize()} correlation", style=_style(p)
    )


def me_deviation_table(
    histograms: pd.DataFrame, references: Mapping[str, np.ndarray]
) -> pd.DataFrame:
    """Per (run, lumi, me): entries and chi2/ndf of the histogram against its reference shape.

    A model-free measure of how far each ME is from normal in each LS.
    """
    frames = []
    hist = histograms[histograms["lumi"] > 0]
    for me, rows in hist.groupby("me", sort=True, observed=True):
        ref = references.get(str(me))
        if ref is None or rows.empty:
            continue
        try:
            m = data_matrix(rows)
        except ValueError:
            continue
        if m.shape[1] != len(ref):
            continue
        exp = np.vstack([expected_counts(o, ref) for o in m])
        used = (m > 0) | (exp > 0)
        chi2 = (pulls(m, exp) ** 2 * used).sum(axis=1) / np.maximum(used.sum(axis=1), 1)
        frames.append(
            pd.DataFrame(
                {
                    "run": rows["run"].to_numpy(),
                    "lumi": rows["lumi"].to_numpy(),
                    "me": str(me),
                    "entries": rows["entries"].to_numpy(dtype=np.float64),
                    "chi2_ndf": chi2,
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=["run", "lumi", "me", "entries", "chi2_ndf"])
    return pd.concat(frames, ignore_index=True)


def plot_me_correlations(
    histograms: pd.DataFrame,
    me_references: pd.DataFrame,
    lumisections: pd.DataFrame,
    params: dict[str, Any],
) -> Figure:
    """How MEs move together across LS: entries (luminosity, shared readout) and chi2/ndf against
    the reference (problems that hit several MEs at once), over LS passing the quality cuts."""
    p = resolve_params(params)
    method = p["correlation"]["method"]
    mes = sorted(histograms["me"].astype(str).unique())
    refs = _reference_shapes(me_references, histograms, lumisections, mes)
    table = me_deviation_table(histograms, refs).merge(
        _quality_ok_keys(lumisections), on=["run", "lumi"]
    )
    matrices = {}
    for column, title in (("entries", "entries per LS"), ("chi2_ndf", "χ²/ndf vs reference")):
        wide = table.pivot_table(
            index=["run", "lumi"], columns="me", values=column, aggfunc="first"
        )
        matrices[f"{title} ({len(wide)} LS)"] = correlation_matrix(wide, method)
    return plot_correlation_matrices(
        matrices, colorbar_label=f"{method.capitalize()} correlation", style=_style(p)
    )


# ------------------------------------------------------------------------------------------------
# the report
# ------------------------------------------------------------------------------------------------
SECTIONS = {
    "summary": "Summary",
    "runs": "Runs",
    "flagged": "Flagged lumisections",
    "top": "Most anomalous lumisections",
    "performance": "Detection performance",
    "correlations": "Correlations",
    "overview": "Data overview",
}


def _row_label_class(row: Mapping[str, Any]) -> str | None:
    label = row.get("label")
    return str(label) if label in ("good", "bad", "unknown") else None


def _short_mes(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    items = str(value).split("; ") if isinstance(value, str) else list(value)
    return ", ".join(short_name(str(m)) for m in items if m)


def list_flagged_lumisections(
    lumisection_predictions: pd.DataFrame, report_strategy: str
) -> pd.DataFrame:
    """Every LS flagged by the report strategy, all runs (the full table behind the report's
    capped one), with how many strategies agree."""
    return _flagged_table(lumisection_predictions, report_strategy)


def _flagged_table(preds: pd.DataFrame, strategy: str) -> pd.DataFrame:
    n_strategies = preds["strategy"].nunique()
    agree = preds.groupby(["run", "lumi"])["is_anomalous"].sum().rename("flagged_by")
    d = preds[(preds["strategy"] == strategy) & preds["is_anomalous"].astype(bool)]
    d = d.merge(agree.reset_index(), on=["run", "lumi"], how="left")
    out = pd.DataFrame(
        {
            "run": d["run"].astype("int64"),
            "LS": d["lumi"].astype("int64"),
            "score": d["score"].astype(float),
            "score / threshold": d["score"].astype(float) / d["threshold"].astype(float),
            "label": d.get("label", pd.Series(pd.NA, index=d.index)),
            "split": d.get("split", pd.Series(pd.NA, index=d.index)),
            "quality": d.get("quality", pd.Series(pd.NA, index=d.index)),
            "top MEs": [_short_mes(v) for v in d["top_mes"]],
            "flagged by": [f"{int(k)} / {n_strategies}" for k in d["flagged_by"]],
        }
    )
    return out.sort_values(["run", "LS"]).reset_index(drop=True)


def _png_items(figures: Mapping[str, bytes] | None, *, strip: str = "") -> list[tuple[bytes, str]]:
    items = []
    for key in sorted(figures or {}):
        caption = key.removesuffix(".png").removeprefix(strip).replace("_", " ")
        items.append((figures[key], caption))
    return items


#: files next to report.html that the report links to (relative links: they resolve when the
#: report is opened from data/08_reporting, where the catalog writes them)
FLAGGED_CSV = "flagged_lumisections.csv"
RUN_SUMMARY_CSV = "run_summary.csv"
FLAGGED_PER_RUN_CSV = "flagged_per_run.csv"
RUN_PLOTS = "plots/score_timeseries"


def _run_ranges(runs: list[int]) -> str:
    if not runs:
        return "none"
    return f"{len(runs)} ({runs[0]}-{runs[-1]})" if len(runs) > 1 else str(runs[0])


def build_report(
    report_strategy: str,
    metrics: Mapping[str, Any],
    strategy_metrics: pd.DataFrame,
    run_summary: pd.DataFrame,
    flagged_lumisections: pd.DataFrame,
    lumisection_predictions: pd.DataFrame,
    lumisections: pd.DataFrame,
    top_lumisections: pd.DataFrame,
    overview_plots: Mapping[str, bytes],
    run_overview_plot: bytes,
    example_plots: Mapping[str, bytes],
    score_timeseries_plots: Mapping[str, bytes],
    top_lumisection_plots: Mapping[str, bytes],
    roc_plots: Mapping[str, bytes],
    auc_plot: bytes,
    score_correlation_plot: bytes,
    me_correlation_plot: bytes,
    params: dict[str, Any],
) -> str:
    """The HTML report: summary, the run x LS map and the detail runs with their flagged LS, the
    flagged LS (capped), the most anomalous LS with their histograms, performance, correlations
    and a data overview. Its size follows the number of detail runs and the caps, not the number
    of runs: the full tables are the CSV files it links to."""
    p = resolve_params(params)
    rp = p["report"]
    max_rows, max_run_rows = int(rp["max_flagged_rows"]), int(rp["max_run_rows"])
    preds = lumisection_predictions
    strategies = list(dict.fromkeys(preds["strategy"].astype(str)))
    runs = sorted(int(r) for r in run_summary["run"])
    detail = _detail_runs(run_summary)
    chosen = preds[preds["strategy"] == report_strategy]
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    report = Report(
        str(rp["title"]),
        f"{len(runs)} runs, {chosen[['run', 'lumi']].drop_duplicates().shape[0]} LS; flags of "
        f"strategy {report_strategy}; generated {generated}",
    )
    sections = {key: report.section(title, anchor=key) for key, title in SECTIONS.items()}
    report.add_quick_links("Detail runs", [(str(r), f"#{anchor_id('run', r)}") for r in detail])
    flagged = flagged_lumisections
    top_keys = {
        (int(r), int(ls))
        for r, ls in zip(top_lumisections["run"], top_lumisections["lumi"], strict=True)
    }
    detail_set = set(detail)

    def ls_link(row: Mapping[str, Any]) -> str | None:
        key = (int(row["run"]), int(row.get("LS", row.get("lumi"))))
        return f"#{anchor_id('ls', *key)}" if key in top_keys else None

    def run_link(row: Mapping[str, Any]) -> str | None:
        run = int(row["run"])
        return f"#{anchor_id('run', run)}" if run in detail_set else None

    # summary
    s = sections["summary"]
    labels = lumisections.groupby("label", observed=True).size().to_dict()
    best = (metrics or {}).get("best_strategy")
    threshold = float(chosen["threshold"].iloc[0]) if len(chosen) else float("nan")
    apply = chosen[chosen.get("split", pd.Series("apply", index=chosen.index)) == "apply"]
    n_flagged_runs = int((run_summary["n_flagged"] > 0).sum())
    s.facts(
        {
            "Runs": f"{_run_ranges(runs)}; {n_flagged_runs} with flagged LS",
            "Detail runs (own figure and section)": ", ".join(str(r) for r in detail) or "none",
            "Lumisections": f"{len(lumisections)} ("
            + ", ".join(f"{k}: {v}" for k, v in sorted(labels.items()))
            + ")",
            "Strategies": ", ".join(strategies),
            "Best strategy (evaluation)": f"{best} — {metrics.get('best_strategy_criterion', '')}"
            if best
            else "not determined",
            "Report follows": f"{report_strategy} (threshold {threshold:.4g})",
            "Flagged LS (report strategy)": f"{int(chosen['is_anomalous'].sum())} of "
            f"{len(chosen)}; held-out (apply) runs: {int(apply['is_anomalous'].sum())} of "
            f"{len(apply)}",
            **{
                f"Target: {k.replace('_', ' ')}": "met" if v else "not met"
                for k, v in ((metrics or {}).get("targets") or {}).items()
            },
        }
    )
    ranked = run_summary.sort_values(
        ["detail", "n_flagged", "run"], ascending=[False, False, True], kind="stable"
    )
    s.table(
        ranked.drop(columns=["detail"]),
        caption=f"Runs, detail runs and most flagged first ({report_strategy})",
        links={"run": run_link},
        formats={"max_score_ratio": "{:.3g}", "run_score_ratio": "{:.3g}"},
        max_rows=max_run_rows,
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

    # runs
    r_sec = sections["runs"]
    r_sec.paragraph(
        "Every run at once: certification label and score / threshold of the report strategy "
        "per LS (consecutive runs or LS share a cell when there are many; a cell shows its worst "
        "value)."
    )
    r_sec.figure(run_overview_plot, caption=f"Runs x LS ({report_strategy})")
    r_sec.paragraph(
        "Detail runs (the most flagged, plus those named in data_visualization.detail_runs.runs): "
        "LS score per strategy along the run: dashed line = threshold, red dots = flagged LS, "
        "shading = certification label. Detail runs: " + (", ".join(map(str, detail)) or "none")
    )
    summary_by_run = run_summary.set_index("run")
    for run in detail:
        sub = r_sec.subsection(f"Run {run}", anchor=anchor_id("run", run))
        row = summary_by_run.loc[run]
        sub.facts(
            {
                "Why shown": str(row["detail_reason"]),
                **(
                    {
                        "Run verdict": f"{row['verdict']} (run score / run threshold "
                        f"{row['run_score_ratio']:.3g})"
                    }
                    if "verdict" in row.index and pd.notna(row["verdict"])
                    else {}
                ),
                "Split": "" if pd.isna(row["split"]) else str(row["split"]),
                "LS": f"{int(row['n_ls'])} (good: {int(row['good'])}, bad: {int(row['bad'])}, "
                f"unknown: {int(row['unknown'])})",
                "Flagged per strategy": ", ".join(
                    f"{name}: {int(g['is_anomalous'].sum())}"
                    for name, g in preds[preds["run"] == run].groupby("strategy", sort=False)
                ),
            }
        )
        name = f"run_{run}.png"
        png = score_timeseries_plots.get(name)
        if png is not None:
            sub.figure(png, caption=f"Run {run}: LS scores of every strategy")
            sub.links([("figure file", f"{RUN_PLOTS}/{name}")])
        sub.table(
            flagged[flagged["run"] == run].drop(columns=["run"]),
            caption=f"Flagged LS of run {run} ({report_strategy})",
            links={"LS": lambda row, run=run: ls_link({**row, "run": run})},
            row_class=_row_label_class,
            max_rows=max_rows,
            empty="no LS flagged",
        )

    # all flagged LS
    f_sec = sections["flagged"]
    f_sec.paragraph(
        f"LS flagged by {report_strategy}, highest score / threshold first (at most {max_rows}; "
        f"all of them: {FLAGGED_CSV}). 'flagged by' counts the strategies that flag the same LS; "
        "LS with detail plots link to them."
    )
    f_sec.table(
        flagged.sort_values("score / threshold", ascending=False, kind="stable"),
        links={"run": run_link, "LS": ls_link},
        row_class=_row_label_class,
        max_rows=max_rows,
        empty="no LS flagged",
    )
    f_sec.links([("every flagged LS (CSV)", FLAGGED_CSV)])

    # top LS
    t_sec = sections["top"]
    if top_lumisections.empty:
        t_sec.paragraph("No flagged LS passes the selection for detail plots.", note=True)
    else:
        t_sec.paragraph(
            "The highest-scoring flagged LS (one per block of consecutive flagged LS): per-ME "
            "scores, then the leading MEs against the training reference."
        )
        t_sec.table(
            top_lumisections.assign(top_mes=top_lumisections["top_mes"].map(_short_mes)),
            links={"run": run_link, "lumi": ls_link},
            row_class=_row_label_class,
        )
    for row in top_lumisections.to_dict(orient="records"):
        run, lumi = int(row["run"]), int(row["lumi"])
        sub = t_sec.subsection(
            f"#{row['rank']}: run {run}, LS {lumi}", anchor=anchor_id("ls", run, lumi)
        )
        sub.facts(
            {
                "Score": f"{row['score']:.4g} (threshold {row['threshold']:.4g})",
                "Label / quality": f"{row['label']} / {row['quality']}",
                "Flagged block": f"LS {row['block_first']}-{row['block_last']}",
                "Flagged by": f"{row['n_strategies_flagging']} of {len(strategies)} strategies",
                "Leading MEs": _short_mes(row["top_mes"]),
            }
        )
        if run in detail_set:
            sub.links([(f"back to run {run}", f"#{anchor_id('run', run)}")])
        prefix = top_prefix(row["rank"], run, lumi) + "_"
        mine = {k: v for k, v in top_lumisection_plots.items() if k.startswith(prefix)}
        sub.figures(_png_items(mine, strip=prefix), columns=2)

    # performance
    perf = sections["performance"]
    real = strategy_metrics[strategy_metrics["evaluation"] == "real"]
    keep = [
        c
        for c in (
            "strategy",
            "n_pos",
            "n_neg",
            "auc",
            "auc_lo",
            "auc_hi",
            "tpr_at_fpr_0.01",
            "achieved_fpr_0.01",
            "wp_tpr",
            "wp_fpr",
        )
        if c in real
    ]
    perf.table(
        real[keep],
        caption="Real labels (held-out runs): bad = DCS on but not golden",
        formats={c: "{:.3f}" for c in keep if c not in ("strategy", "n_pos", "n_neg")},
    )
    inj = strategy_metrics[strategy_metrics["evaluation"] == "injected"]
    if not inj.empty:
        pivot = inj.pivot_table(
            index="strategy", columns="anomaly_type", values="auc", sort=False
        ).reset_index()
        perf.table(
            pivot,
            caption="AUC per injected anomaly type",
            formats={c: "{:.3f}" for c in pivot.columns if c != "strategy"},
        )
    perf.figure(auc_plot, caption="AUC per anomaly type and strategy (95 % bootstrap interval)")
    perf.figures(_png_items(roc_plots), columns=2)

    # correlations
    c_sec = sections["correlations"]
    c_sec.figure(score_correlation_plot, caption="Correlation between per-ME scores across LS")
    c_sec.figure(me_correlation_plot, caption="Correlation between MEs across LS")

    # overview
    o_sec = sections["overview"]
    o_sec.paragraph(
        "What was read. The good-LS examples double as the check that extraction is right: "
        "shapes of different runs must agree with each other and with the reference."
    )
    o_sec.figures(_png_items(overview_plots), columns=2)
    o_sec.figures(_png_items(example_plots), columns=2)
    return report.to_html()
