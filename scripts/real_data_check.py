"""What the detectors see on the real CMS samples in ``../shared/data/real`` (see its README).

The samples are tiny and mostly single-run, so this is a sanity check, not a benchmark:

* every sample is read with the project's readers (dqmiotools Parquet, legacy CSV; the run 316187
  ``.npz`` maps are converted here: flow bins dropped, y outer) and labelled with the 2018 golden /
  DCS JSONs;
* for each usable set of maps, the LS are split into blocks of consecutive LS (train / apply: there
  is one run, so the split cannot be by run), the ``reference`` and ``pca_gmm`` strategies of
  ``conf/base`` are trained with their out-of-fold calibration and applied; the script prints the
  beta-binomial overdispersion of real LS, the held-out chi2/ndf with Poisson and beta-binomial
  pulls, the flag rate of held-out LS, and the AUC on anomalies injected into the held-out LS.

    python scripts/real_data_check.py [--real ../shared/data/real]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dqm_playground_ds.detection.detectors import ReferenceTest
from dqm_playground_ds.detection.evaluation import auc
from dqm_playground_ds.detection.injection import inject_table
from dqm_playground_ds.detection.strategy import StrategySpec, assign_folds, fit_strategy
from dqm_playground_ds.processing.labels import LumiMask, label_lumisections
from dqm_playground_ds.processing.preprocessing import HistogramPreprocessor
from dqm_playground_ds.readers.dqmiotools import read_dqmiotools_parquet
from dqm_playground_ds.readers.legacy_csv import read_legacy_csv

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REAL = ROOT.parent / "shared" / "data" / "real"
STRATEGIES = ("reference", "pca_gmm")
ZPHI_AXES = {"x": (-60.0, 60.0), "y": (-3.2, 3.2)}  # as in the 2023C export of the same ME


def npz_maps(path: Path, me: str) -> pd.DataFrame:
    """Run 316187 maps (LS, y+2, x+2) with flow bins -> histogram table (flow dropped, y outer)."""
    d = np.load(path)
    hists = d["hists"][:, 1:-1, 1:-1].astype(np.float64)
    ny, nx = hists.shape[1:]
    data = np.empty(len(hists), dtype=object)
    data[:] = list(hists.reshape(len(hists), -1))
    return pd.DataFrame(
        {
            "run": d["run"].astype(np.int64),
            "lumi": d["lumi"].astype(np.int64),
            "me": me,
            "dim": np.int8(2),
            "entries": hists.sum(axis=(1, 2)),
            "x_min": ZPHI_AXES["x"][0],
            "x_max": ZPHI_AXES["x"][1],
            "x_bins": np.int32(nx),
            "y_min": ZPHI_AXES["y"][0],
            "y_max": ZPHI_AXES["y"][1],
            "y_bins": np.int32(ny),
            "data": data,
            "source": str(path),
        }
    ).astype({"me": "string", "source": "string"})


def load_real(real: Path) -> dict[str, pd.DataFrame]:
    """Every sample as a histogram table, keyed by a short name."""
    out = {}
    for f in sorted((real / "dqmiotools-2023C").glob("*.parquet")):
        out["2023C " + f.stem.split("DQMIO-")[-1]] = read_dqmiotools_parquet(f)
    for f in sorted((real / "legacy-csv").glob("*.csv")):
        out["legacy " + f.stem] = read_legacy_csv(f)
    maps = real / "run316187-clusterposition"
    for layer in (1, 2):
        f = maps / f"pxlayer{layer}_run316187.npz"
        if f.exists():
            me = f"PixelPhase1/Tracks/PXBarrel/clusterposition_zphi_ontrack_PXLayer_{layer}"
            out[f"316187 zphi layer {layer}"] = npz_maps(f, me)
    return out


def labels(hist: pd.DataFrame, real: Path) -> dict[str, int]:
    golden = LumiMask.from_json(json.loads((real / "labels" / "json_GOLDEN_2018.txt").read_text()))
    dcs = LumiMask.from_json(json.loads((real / "labels" / "json_DCSONLY_2018.txt").read_text()))
    keys = hist[["run", "lumi"]].drop_duplicates()
    lab = label_lumisections(keys["run"].to_numpy(), keys["lumi"].to_numpy(), golden, dcs)
    return lab["label_reason"].value_counts().to_dict()


def _strategies() -> dict[str, StrategySpec]:
    conf = ROOT / "conf" / "base"
    ds = yaml.safe_load((conf / "parameters_data_science.yml").read_text())["data_science"]
    return {n: StrategySpec.from_dict(n, ds["strategies"][n]) for n in STRATEGIES}


def _preprocessing() -> dict[str, Any]:
    conf = ROOT / "conf" / "base"
    return yaml.safe_load((conf / "parameters_data_processing.yml").read_text())["data_processing"]


def check_maps(
    hist: pd.DataFrame, train_lumis: list[int], seed: int = 0, n_per_type: int = 20
) -> dict[str, Any]:
    """Train on ``train_lumis`` (one run), apply to the other LS; what the detectors see."""
    dp = _preprocessing()
    keys = hist[["run", "lumi"]].drop_duplicates().sort_values(["run", "lumi"], ignore_index=True)
    is_train = keys["lumi"].isin(train_lumis).to_numpy()
    pre = HistogramPreprocessor(dp["preprocessing"], {}).fit(hist, keys[is_train])
    features = pre.transform(hist, keys)
    me = pre.mes_[0]
    counts = features["fine"].mes[me].counts.astype(np.float64)
    train_rows, apply_rows = np.flatnonzero(is_train), np.flatnonzero(~is_train)
    out: dict[str, Any] = {
        "me": me,
        "n_train": int(is_train.sum()),
        "n_apply": int((~is_train).sum()),
    }
    out["entries_per_ls"] = [float(counts.sum(axis=1).min()), float(counts.sum(axis=1).max())]
    # overdispersion of real LS: total / binomial variance of a bin fraction at the median N
    bb = ReferenceTest(method="beta_binomial").fit(counts[train_rows])
    p, n = bb.reference_, float(np.median(counts.sum(axis=1)))
    populated = p > 0.1 * p[p > 0].mean()
    out["overdispersion_median"] = float(
        np.median(1 + n * bb.dispersion_[populated] / (p[populated] * (1 - p[populated])))
    )
    poisson = ReferenceTest(method="poisson").fit(counts[train_rows])
    out["chi2ndf_apply_poisson"] = np.round(poisson.anomaly_score(counts[apply_rows]), 2).tolist()
    out["chi2ndf_apply_beta_binomial"] = np.round(bb.anomaly_score(counts[apply_rows]), 2).tolist()
    if train_rows.size < 6 or apply_rows.size < 2:
        return out  # too few LS to calibrate a strategy out of fold
    # the default strategies, calibrated out of fold on blocks of training LS
    folds = assign_folds(keys.iloc[train_rows], 2)
    cache: dict = {}
    held = keys.iloc[apply_rows]
    inj_hist, info = inject_table(
        hist, held, ["dead_region", "hot_spot", "shift"], n_per_type, pre.reference_,
        np.random.default_rng(seed),
    )  # fmt: skip
    injected = pre.transform(inj_hist, keys=info[["sample"]], key_columns=["sample"])
    for name, spec in _strategies().items():
        fs = features[spec.preprocessing]
        model = fit_strategy(spec, fs, train_rows, folds, cache, seed)
        score = model.anomaly_scores(fs, use_oof=False).score
        inj_score = model.anomaly_scores(injected[spec.preprocessing], use_oof=False).score
        res = {"held_out_flagged": int((score[apply_rows] > model.threshold).sum())}
        for kind in ("dead_region", "hot_spot", "shift"):
            pos = inj_score[(info["anomaly_type"] == kind).to_numpy()]
            y = np.r_[np.ones(pos.size, bool), np.zeros(apply_rows.size, bool)]
            res[f"auc_{kind}"] = round(auc(y, np.r_[pos, score[apply_rows]]), 3)
        out[name] = res
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL)
    args = parser.parse_args()
    samples = load_real(args.real)
    for name, hist in samples.items():
        sums = np.array([np.sum(d) for d in hist["data"]])
        print(f"\n== {name}: {hist['run'].nunique()} run(s) {sorted(hist['run'].unique())}, "
              f"{hist[['run', 'lumi']].drop_duplicates().shape[0]} LS, {hist['me'].nunique()} ME, "
              f"bin sums {sums.min():.0f}..{sums.max():.0f}")  # fmt: skip
        print(f"   labels (2018 golden/DCS JSON): {labels(hist, args.real)}")
        if (sums == 0).all():
            print("   every histogram is empty: quality 'empty' for every LS, nothing to score")
    for name, train in (
        ("316187 zphi layer 1", [107, 108, 109, 110, 473, 474, 475, 476]),
        ("316187 zphi layer 2", [107, 108, 109, 110, 473, 474, 475, 476]),
        ("2023C PixelPhase1-Tracks-PXBarrel-clusterposition_zphi_ontrack_PXLayer_1", [1, 2, 3]),
    ):
        if name in samples:
            print(f"\n-- {name}: train LS {train}, apply the others")
            for key, value in check_maps(samples[name], train).items():
                print(f"   {key}: {value}")


if __name__ == "__main__":
    main()
