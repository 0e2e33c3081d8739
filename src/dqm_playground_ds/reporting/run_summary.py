"""One row per run: what the run table, the run x LS map and the detail runs are built from."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import pandas as pd

log = logging.getLogger(__name__)

LABELS = ["good", "bad", "unknown"]
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


def label_counts(lumisections: pd.DataFrame) -> pd.DataFrame:
    """LS per run and certification label (index: run; columns good, bad, unknown)."""
    counts = lumisections.groupby(["run", "label"], observed=True).size().unstack(fill_value=0)
    return counts.reindex(columns=LABELS, fill_value=0)


def run_splits(lumisections: pd.DataFrame) -> pd.Series:
    """The split(s) of each run, ``a/b`` when its LS are on both sides."""
    return lumisections.groupby("run")["split"].agg(lambda v: "/".join(sorted(set(v.astype(str)))))


def summarise_runs(
    predictions: pd.DataFrame,
    lumisections: pd.DataFrame,
    strategy: str,
    n_most_flagged: int,
    named_runs: Iterable[int] = (),
    run_predictions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """LS per label, LS flagged by ``strategy``, the largest score / threshold, its run verdict
    (``run_predictions``) and whether the run is a *detail run*: one of the ``n_most_flagged``
    runs with most flagged LS (ties: larger score / threshold, then run number) or named."""
    chosen = predictions[predictions["strategy"] == strategy]
    ratio = chosen["score"].astype(float) / chosen["threshold"].astype(float)
    per_run = (
        chosen.assign(_ratio=ratio, _flag=chosen["is_anomalous"].astype(bool))
        .groupby("run")
        .agg(n_flagged=("_flag", "sum"), max_score_ratio=("_ratio", "max"))
    )
    out = label_counts(lumisections).join(per_run, how="outer").fillna({"n_flagged": 0})
    out[LABELS] = out[LABELS].fillna(0)
    out["n_ls"] = out[LABELS].sum(axis=1)
    out["split"] = run_splits(lumisections).reindex(out.index) if "split" in lumisections else pd.NA
    out = out.reset_index().rename(columns={"index": "run"})
    out = out.astype({c: "int64" for c in ("run", "n_ls", *LABELS, "n_flagged")})
    ranked = out[out["n_flagged"] > 0].sort_values(
        ["n_flagged", "max_score_ratio", "run"], ascending=[False, False, True], kind="stable"
    )
    most = set(ranked["run"].head(int(n_most_flagged)).tolist())
    named = {int(r) for r in named_runs}
    unknown = sorted(named - set(out["run"].tolist()))
    if unknown:
        log.warning("detail_runs.runs %s are not in the predictions: no figure for them", unknown)
    if run_predictions is not None and len(run_predictions):
        v = run_predictions[run_predictions["strategy"] == strategy].set_index("run")
        out["verdict"] = out["run"].map(v["verdict"]).astype("string")
        out["run_score_ratio"] = out["run"].map(v["run_score"] / v["run_threshold"])
    out["detail"] = out["run"].isin(most | named)
    out["detail_reason"] = [
        "/".join(x for x, yes in (("most flagged", r in most), ("named", r in named)) if yes)
        for r in out["run"]
    ]
    columns = RUN_SUMMARY_COLUMNS + [c for c in ("verdict", "run_score_ratio") if c in out]
    return out[columns].sort_values("run").reset_index(drop=True)


def detail_runs(run_summary: pd.DataFrame) -> list[int]:
    """The detail runs of a run summary, in run order."""
    return sorted(int(r) for r in run_summary.loc[run_summary["detail"].astype(bool), "run"])


def run_ranges(runs: list[int]) -> str:
    """``5 (1-9)``: how many runs and the first and last one."""
    if not runs:
        return "none"
    return f"{len(runs)} ({runs[0]}-{runs[-1]})" if len(runs) > 1 else str(runs[0])


def ls_ratio_table(
    predictions: pd.DataFrame, lumisections: pd.DataFrame, strategy: str
) -> pd.DataFrame:
    """(run, lumi, ratio = score / threshold of ``strategy``, label): the run x LS map's input."""
    d = predictions.loc[predictions["strategy"] == strategy, ["run", "lumi", "score", "threshold"]]
    d = d.assign(ratio=d["score"].astype(float) / d["threshold"].astype(float))
    d = d.merge(lumisections[["run", "lumi", "label"]], on=["run", "lumi"], how="left")
    return d[["run", "lumi", "ratio", "label"]]
