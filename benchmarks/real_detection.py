"""Detection on real labelled CMS data, with run-wise cross-validation.

Data: ``../shared/data/real/ml4dqm-2017-maindiagonal/`` (4,900 LS of 253 runs of 2017, ME
``MainDiagonal Position``; golden, DCS-on and bad-runs lists). The runs are shuffled into
``--folds`` folds (``--repeats`` times with other seeds); each fold is the apply split of one run of
the real node functions of ``data_processing`` and ``data_science`` (labels with the bad-runs list,
the split, quality cuts, preprocessing, every strategy of ``conf/base`` with its out-of-fold
calibration on the training runs, scoring, run verdicts), trained on the other folds: no LS of a
training run is ever in the test fold. Baselines in the same run: NMF with 3 components, LOF on the
full normalised histogram, chi2 against the mean training histogram; and ``two_level`` with a
drift-following run reference (``window: 20``).

Metrics on the pooled test folds, per strategy (mean over repeats; the interval is the bootstrap
over LS of the first repeat): LS-level AUC, TPR at 1 % and 0.1 % FPR (DCS-on LS passing the quality
cut, bad = not golden, good = golden), the false-alarm rate of the working point on good LS, and
the run-level AUC (run score = median LS score; runs of the bad-runs list vs runs whose LS are all
golden).

    python benchmarks/real_detection.py                 # every strategy, 5 folds x 2 repeats, ~6 min
    python benchmarks/real_detection.py --strategies two_level lof --repeats 1
    python benchmarks/real_detection.py --markdown      # the table of docs/detection.md
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dqm_playground_ds.detection.evaluation import auc, bootstrap_auc, tpr_at_fpr
from dqm_playground_ds.detection.verdicts import run_scores, run_verdicts
from dqm_playground_ds.pipelines.data_processing.nodes import (
    assign_split,
    build_features,
    fit_preprocessor,
    label_lumisections_node,
)
from dqm_playground_ds.pipelines.data_processing.params import DataProcessingParams
from dqm_playground_ds.pipelines.data_science.nodes import (
    evaluate,
    score_injections,
    score_lumisections,
    train_strategies,
)
from dqm_playground_ds.pipelines.data_science.params import DataScienceParams
from dqm_playground_ds.processing.labels import LumiMask, label_lumisections
from dqm_playground_ds.readers.legacy_csv import read_legacy_csv

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real" / "ml4dqm-2017-maindiagonal"
MIN_ENTRIES = 500  # the evaluation population: LS with >= 500 entries (100 bins x 5)

BASELINES: dict[str, dict[str, Any]] = {
    # two_level with a drift-following run reference: the 20 good training runs nearest in run
    # number (DINAMO-like); measured here rather than made a default (docs/detection.md)
    "variant_two_level_window20": {
        "preprocessing": "default",
        "detectors": [
            {"name": "ls_knn", "kind": "knn", "params": {"n_neighbors": 20}},
            {"name": "run_knn", "kind": "run_knn", "params": {"n_neighbors": 3, "window": 20}},
        ],
        "combination": {"method": "mean_z"},
    },
    "baseline_nmf3": {
        "preprocessing": "default",
        "detectors": [{"name": "nmf", "kind": "nmf", "params": {"n_components": 3, "top_n": 100}}],
        "combination": {"method": "max_z"},
    },
    "baseline_lof_full": {
        "preprocessing": "default",
        "detectors": [{"name": "lof", "kind": "lof", "params": {"n_neighbors": 20}}],
        "combination": {"method": "max_z"},
    },
    "baseline_chi2_mean": {
        "preprocessing": "fine",
        "detectors": [
            {
                "name": "chi2",
                "kind": "reference_test",
                "params": {"method": "poisson", "statistic": "chi2"},
            }
        ],
        "combination": {"method": "max_z"},
    },
}


def load_params() -> tuple[dict[str, Any], dict[str, Any]]:
    conf = ROOT / "conf" / "base"
    proc = yaml.safe_load((conf / "parameters_data_processing.yml").read_text())["data_processing"]
    sci = yaml.safe_load((conf / "parameters_data_science.yml").read_text())["data_science"]
    return proc, sci


def load_real(real: Path) -> dict[str, Any]:
    files = {
        "csv": real / "ZeroBias_2017_MainDiagonal_DataFrame_1D_dev.csv",
        "golden": real / "golden_2017_dev.json",
        "dcs": real / "dcs_2017_dev.json",
        "bad_runs": real / "bad_runs_2017_dev.json",
    }
    missing = [str(f) for f in files.values() if not f.exists()]
    if missing:
        raise FileNotFoundError(f"real data not found: {missing}")
    return {
        "histograms": read_legacy_csv(files["csv"]),
        "golden": json.loads(files["golden"].read_text()),
        "dcs": json.loads(files["dcs"].read_text()),
        "bad_runs": json.loads(files["bad_runs"].read_text()),
    }


def run_fold(
    data: dict[str, Any], train_runs, apply_runs, proc: dict, sci: dict
) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """The real nodes on one fold: predictions and run verdicts of the apply runs, and the best
    strategy the pipeline chooses from the training runs' labels (out of fold)."""
    p = copy.deepcopy(proc)
    p["split"] = {"name": "cv", "train": {"runs": sorted(train_runs)},
                  "apply": {"runs": sorted(apply_runs)}}  # fmt: skip
    p["labels"]["bad_runs"] = data["bad_runs"]
    p["labels"]["certified_runs"] = "dcs"  # the 2017 golden JSON omits runs with no good LS
    p["quality"] = {**p.get("quality", {}), "min_entries": MIN_ENTRIES}
    hist = data["histograms"]
    p = DataProcessingParams.model_validate(p)
    labelled = label_lumisections_node(hist, data["golden"], data["dcs"], p)
    split = assign_split(labelled, None, p)
    pre = fit_preprocessor(hist, split, p)
    features, lumisections = build_features(hist, split, pre, p)
    sci = DataScienceParams.model_validate(sci)
    models = train_strategies(features, lumisections, sci)
    preds, _ = score_lumisections(models, features, lumisections, sci)
    verdicts = run_verdicts(preds)
    no_injections = score_injections(models, {}, pd.DataFrame(
        columns=["sample", "run", "lumi", "anomaly_type", "me", "magnitude"]))  # fmt: skip
    best = evaluate(preds, no_injections, sci)[0].get("best_strategy")
    return preds[preds["split"] == "apply"], verdicts[verdicts["split"] == "apply"], best


def truth(data: dict[str, Any], keys: pd.DataFrame) -> pd.DataFrame:
    """LS truth without the bad-runs override: good = golden, bad = DCS-on and not golden."""
    golden = LumiMask.from_json(data["golden"], name="golden")
    dcs = LumiMask.from_json(data["dcs"], name="dcs")
    lab = label_lumisections(
        keys["run"].to_numpy(), keys["lumi"].to_numpy(), golden, dcs, certified_runs="dcs"
    )
    return lab.rename(columns={"label": "truth"})[["run", "lumi", "truth"]]


def metrics(preds: pd.DataFrame, verdicts: pd.DataFrame, data: dict, n_boot: int) -> pd.DataFrame:
    rows = []
    t = truth(data, preds[["run", "lumi"]].drop_duplicates())
    bad_runs = set(int(r) for r in data["bad_runs"])
    for name, grp in preds.groupby("strategy", observed=True, sort=False):
        pr = grp.merge(t, on=["run", "lumi"])
        ev = pr[pr["truth"].isin(["good", "bad"]) & (pr["quality"] == "ok")]
        ev = ev[np.isfinite(ev["score"].to_numpy(dtype=np.float64))]
        y = (ev["truth"] == "bad").to_numpy()
        s = ev["score"].to_numpy(dtype=np.float64)
        lo, hi = bootstrap_auc(y, s, n_boot=n_boot, seed=0)
        runs = run_scores(pr.drop(columns=["label_reason"], errors="ignore"))
        golden_runs = set(
            pr.groupby("run")["truth"]
            .agg(lambda v: bool((v == "good").all()))
            .loc[lambda v: v]
            .index
        )
        runs = runs[runs["run"].isin(bad_runs | golden_runs) & runs["run_score"].notna()]
        yr = runs["run"].isin(bad_runs).to_numpy()
        v = verdicts[verdicts["strategy"] == name]
        v = v[v["run"].isin(bad_runs | golden_runs)]
        rows.append(
            {
                "strategy": str(name),
                "n_good": int((~y).sum()),
                "n_bad": int(y.sum()),
                "auc": auc(y, s),
                "auc_lo": lo,
                "auc_hi": hi,
                "tpr_at_fpr_0.01": tpr_at_fpr(y, s, 0.01)[0],
                "tpr_at_fpr_0.001": tpr_at_fpr(y, s, 0.001)[0],
                "wp_tpr": float(ev["is_anomalous"].to_numpy(bool)[y].mean()),
                "wp_fpr_good": float(ev["is_anomalous"].to_numpy(bool)[~y].mean()),
                "run_auc": auc(yr, runs["run_score"].to_numpy(dtype=np.float64)),
                "n_bad_runs": int(yr.sum()),
                "n_good_runs": int((~yr).sum()),
                "run_bad_verdict_tpr": float(
                    (v.loc[v["run"].isin(bad_runs), "verdict"] == "bad").mean()
                ),
                "run_bad_verdict_fpr": float(
                    (v.loc[~v["run"].isin(bad_runs), "verdict"] == "bad").mean()
                ),
            }
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", type=Path, default=REAL)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--strategies", nargs="*", help="default: every strategy of conf/base")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--n-bootstrap", type=int, default=200)
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--out", type=Path, help="write the per-repeat table (CSV)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not args.real.is_dir():
        print(f"skipped: {args.real} not found", file=sys.stderr)
        return 0
    data = load_real(args.real)
    proc, sci = load_params()
    sci = copy.deepcopy(sci)
    if not args.no_baselines:
        sci["strategies"].update(BASELINES)
    names = args.strategies or list(sci["strategies"])
    if not args.no_baselines:
        names += [b for b in BASELINES if b not in names]
    sci["active_strategies"] = names
    sci["injection"] = {"enabled": False}
    runs = np.unique(data["histograms"]["run"].to_numpy())
    tables = []
    chosen: dict[str, int] = {}
    t0 = time.perf_counter()
    for rep in range(args.repeats):
        rng = np.random.default_rng(1000 + rep)
        fold_of = rng.permutation(len(runs)) % args.folds
        preds, verdicts = [], []
        for f in range(args.folds):
            pr, vr, best = run_fold(data, runs[fold_of != f], runs[fold_of == f], proc, sci)
            chosen[str(best)] = chosen.get(str(best), 0) + 1
            preds.append(pr)
            verdicts.append(vr)
            print(f"repeat {rep} fold {f}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        table = metrics(pd.concat(preds), pd.concat(verdicts), data, args.n_bootstrap)
        tables.append(table.assign(repeat=rep))
    full = pd.concat(tables, ignore_index=True)
    if args.out:
        full.to_csv(args.out, index=False)
    mean = full.groupby("strategy", sort=False).mean(numeric_only=True).drop(columns="repeat")
    first = full[full["repeat"] == 0].set_index("strategy")
    mean[["auc_lo", "auc_hi"]] = first[["auc_lo", "auc_hi"]]
    mean = mean.sort_values("auc", ascending=False)
    cols = ["auc", "auc_lo", "auc_hi", "tpr_at_fpr_0.01", "tpr_at_fpr_0.001", "wp_fpr_good",
            "wp_tpr", "run_auc", "run_bad_verdict_tpr", "run_bad_verdict_fpr"]  # fmt: skip
    n = full.iloc[0]
    print(
        f"\nreal 2017 MainDiagonal: {int(n['n_good'])} good / {int(n['n_bad'])} bad LS, "
        f"{int(n['n_bad_runs'])} bad / {int(n['n_good_runs'])} all-golden runs; "
        f"{args.folds}-fold CV by run x {args.repeats}; {time.perf_counter() - t0:.0f} s"
    )
    print(f"best strategy chosen by the pipeline (training-run labels, per fold): {chosen}")
    if args.markdown:
        print(
            "| strategy | LS AUC [95 % CI] | TPR@1 % | TPR@0.1 % | WP FPR good | WP TPR | run AUC |"
        )
        print("|---|---|---|---|---|---|---|")
        for name, r in mean.iterrows():
            print(
                f"| {name} | {r['auc']:.3f} [{r['auc_lo']:.3f}, {r['auc_hi']:.3f}] | "
                f"{r['tpr_at_fpr_0.01']:.2f} | {r['tpr_at_fpr_0.001']:.2f} | "
                f"{r['wp_fpr_good']:.3f} | {r['wp_tpr']:.2f} | {r['run_auc']:.3f} |"
            )
    else:
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(mean[cols].round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
