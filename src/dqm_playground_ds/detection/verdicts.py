"""Run-level verdicts and the ML certification JSON: what a DQM shifter signs off.

Certification works run by run: on real data the bad LS sit almost only in runs that are bad as a
whole. A run's score is the median score of its LS that pass the quality cuts (robust to a few odd
LS, and equal to the run-level term of a run-aware strategy); its threshold is the ``1 - rate``
quantile of the out-of-fold run scores of the good training runs (runs whose LS are all golden),
so no run is judged by a model that saw it. Verdicts:

* ``bad``: the run score is above the run threshold, or every LS of the run is flagged (e.g. all
  fail the quality cuts, so the run has no score);
* ``partially_bad``: the run passes, but at least ``min_flagged`` of its LS, and at least
  ``min_flagged_fraction`` of them, are flagged;
* ``good``: otherwise.

The ML certification JSON lists, in Run Registry format (``{"run": [[first, last], ...]}``), the LS a
strategy calls good: not flagged and not in a ``bad`` run; optionally only LS also in a given
golden or DCS mask.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from dqm_playground_ds.detection.thresholds import threshold_for_rate
from dqm_playground_ds.processing.labels import LumiMask
from dqm_playground_ds.processing.split import TRAIN

log = logging.getLogger(__name__)

VERDICTS = ("good", "partially_bad", "bad")


def run_truth(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per run: ``bad`` (declared bad: a ``bad_run`` LS), ``good`` (every LS golden), else mixed."""
    p = predictions.drop_duplicates(["run", "lumi"])
    reason = p["label_reason"] if "label_reason" in p else pd.Series("", index=p.index)
    frame = pd.DataFrame(
        {"run": p["run"], "bad_run": reason.eq("bad_run"), "golden": p["label"].eq("good")}
    )
    agg = frame.groupby("run").agg(bad_run=("bad_run", "any"), golden=("golden", "all"))
    truth = np.where(agg["bad_run"], "bad", np.where(agg["golden"], "good", "mixed"))
    return pd.DataFrame({"run": agg.index.to_numpy(), "run_label": truth})


def run_scores(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per (strategy, run): run score, LS counts, flagged LS, split and run label."""
    p = predictions
    ok = p["quality"].eq("ok") & np.isfinite(p["score"].to_numpy(dtype=np.float64))
    scored = p[ok].groupby(["strategy", "run"], observed=True)["score"].median()
    out = p.groupby(["strategy", "run"], observed=True, sort=True).agg(
        split=("split", "first"),
        n_ls=("lumi", "size"),
        n_flagged=("is_anomalous", "sum"),
    )
    out["run_score"] = scored.reindex(out.index)
    out = out.reset_index().merge(run_truth(p), on="run", how="left")
    return out.astype({"strategy": "string", "split": "string", "run_label": "string"})


def run_verdicts(
    predictions: pd.DataFrame,
    false_alarm_rate: float = 0.05,
    min_flagged: int = 2,
    min_flagged_fraction: float = 0.05,
) -> pd.DataFrame:
    """Run scores with a run threshold per strategy and the verdict (see the module doc).

    Without a good training run to calibrate on (no labels for the training runs), the threshold
    comes from all training runs, which is logged.
    """
    if min_flagged < 1:
        raise ValueError(f"run_verdicts.min_flagged_lumisections must be >= 1, got {min_flagged}")
    if not 0 <= min_flagged_fraction <= 1:
        raise ValueError(
            f"run_verdicts.min_flagged_fraction must be in [0, 1], got {min_flagged_fraction}"
        )
    runs = run_scores(predictions)
    frames = []
    for name, grp in runs.groupby("strategy", observed=True, sort=False):
        calib = grp[(grp["split"] == TRAIN) & (grp["run_label"] == "good")]
        if calib["run_score"].notna().sum() == 0:
            calib = grp[grp["split"] == TRAIN]
            log.warning(
                "strategy %s: no training run with every LS golden; the run threshold comes "
                "from all %d training runs",
                name,
                len(calib),
            )
        finite = calib["run_score"].to_numpy(dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        thr = threshold_for_rate(finite, false_alarm_rate) if finite.size else np.inf
        score = grp["run_score"].to_numpy(dtype=np.float64)
        bad = np.nan_to_num(score, nan=-np.inf) > thr
        flagged = grp["n_flagged"].to_numpy()
        bad |= (
            flagged == grp["n_ls"].to_numpy()
        )  # every LS flagged (e.g. all fail the quality cuts)
        # a 1 % LS working point flags ~1 LS in 100 of a good run: ask for more than that
        needed = np.maximum(min_flagged, np.ceil(min_flagged_fraction * grp["n_ls"].to_numpy()))
        partial = ~bad & (flagged >= needed)
        verdict = np.where(bad, "bad", np.where(partial, "partially_bad", "good"))
        frames.append(grp.assign(run_threshold=thr, verdict=verdict))
    out = pd.concat(frames, ignore_index=True) if frames else runs.assign(
        run_threshold=pd.Series(dtype="float64"), verdict=pd.Series(dtype="string"))  # fmt: skip
    return out.astype({"verdict": "string", "n_flagged": "int64", "n_ls": "int64"})


def _ranges(lumis: np.ndarray) -> list[list[int]]:
    lumis = np.unique(lumis)
    if lumis.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(lumis) != 1)
    starts = np.r_[lumis[0], lumis[breaks + 1]]
    stops = np.r_[lumis[breaks], lumis[-1]]
    return [[int(a), int(b)] for a, b in zip(starts, stops, strict=True)]


def ml_certification(
    predictions: pd.DataFrame,
    verdicts: pd.DataFrame,
    strategy: str,
    within: LumiMask | None = None,
) -> dict[str, list[list[int]]]:
    """The LS ``strategy`` calls good, as a Run Registry mask (see the module doc)."""
    p = predictions[predictions["strategy"] == strategy]
    v = verdicts[verdicts["strategy"] == strategy]
    bad_runs = set(v.loc[v["verdict"] == "bad", "run"].tolist())
    good = p[~p["is_anomalous"].astype(bool) & ~p["run"].isin(bad_runs)]
    runs, lumis = good["run"].to_numpy(), good["lumi"].to_numpy()
    if within is not None:
        keep = within.contains(runs, lumis)
        runs, lumis = runs[keep], lumis[keep]
    out: dict[str, list[list[int]]] = {}
    for run in np.unique(runs):
        out[str(int(run))] = _ranges(lumis[runs == run])
    return out
