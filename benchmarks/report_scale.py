"""What visualization adds to detection on data shaped like a year: many runs, few LS each.

Synthetic histograms: ``--ls`` LS over ``--runs`` runs (default 10,000 LS / 500 runs, 20 LS per
run) of one 1D ME (100 bins, Poisson around a template), a 1-in-20 "bad" LS (certified bad, shape
shifted) in held-out runs. Two fresh processes per size:

1. **detection**: the real ``data_processing`` + ``data_science`` pipelines (labels, split,
   preprocessing, every default strategy, scoring, injection, evaluation) with Kedro's runner and
   ``conf/base`` parameters; its outputs are pickled for (2);
2. **visualization**: the real ``data_visualization`` pipeline with the project's catalog entries
   (``conf/base/catalog_data_visualization.yml``) in a scratch folder, default parameters.

Printed per size: wall time and peak RSS of each, the RSS visualization adds on top of its loaded
inputs, ``report.html`` size, number of PNGs and per-run figures, the widest image. Targets (10k LS
/ 500 runs): visualization ≤ 60 s and ≤ 1 GB, report ≤ 5 MB, no image wider than 4,000 px. The
smaller size in the same invocation gives the growth ratios (report size must not follow runs).

    python benchmarks/report_scale.py                         # 2,000/100 and 10,000/500; ~5 min
    python benchmarks/report_scale.py --sizes 10000:500       # one size
    python benchmarks/report_scale.py --smoke                 # 1,000 LS / 50 runs
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
ME = "Bench/1D/charge"
VIZ_INPUTS = (
    "histograms",
    "lumisections",
    "me_references",
    "me_scores",
    "lumisection_predictions",
    "roc_curves",
    "strategy_metrics",
    "flagged_per_run",
    "metrics",
)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_inputs(n_ls: int, n_runs: int, seed: int = 0) -> dict:
    """Histograms, golden and DCS JSON, split: the free inputs of processing + detection."""
    rng = np.random.default_rng(seed)
    per_run = n_ls // n_runs
    runs = 300000 + np.repeat(np.arange(n_runs), per_run)
    lumi = np.tile(np.arange(1, per_run + 1), n_runs)
    run_ids = np.unique(runs)
    apply = set(run_ids[rng.permutation(n_runs)[: max(1, round(0.3 * n_runs))]].tolist())
    held_out = np.isin(runs, list(apply))
    bad = held_out & (rng.random(len(runs)) < 0.05) & (lumi > 1)
    x = np.arange(100) + 0.5
    good_shape = np.exp(-0.5 * ((x - 35) / 6) ** 2) + 0.15 * np.exp(-(x - 35) / 15) * (x > 35)
    bad_shape = np.exp(-0.5 * ((x - 48) / 6) ** 2)
    shapes = np.where(bad[:, None], bad_shape / bad_shape.sum(), good_shape / good_shape.sum())
    scale = 20000 * rng.uniform(0.7, 1.3, n_runs)[np.searchsorted(run_ids, runs)]
    counts = rng.poisson(scale[:, None] * shapes).astype(np.float64)
    data = np.empty(len(runs), dtype=object)
    data[:] = list(counts)
    hist = pd.DataFrame(
        {
            "run": runs,
            "lumi": lumi,
            "me": ME,
            "dim": np.int8(1),
            "entries": counts.sum(axis=1),
            "x_min": 0.0,
            "x_max": 100.0,
            "x_bins": np.int32(100),
            "y_min": np.nan,
            "y_max": np.nan,
            "y_bins": np.int32(0),
            "data": data,
            "source": "synthetic",
        }
    ).astype({"me": "string", "source": "string"})
    golden: dict[str, list[list[int]]] = {}
    for run in run_ids:
        good = lumi[(runs == run) & ~bad]
        ranges, start = [], None
        for k in range(1, per_run + 2):  # LS ranges of good LS
            inside = k in set(good.tolist())
            if inside and start is None:
                start = k
            if not inside and start is not None:
                ranges.append([start, k - 1])
                start = None
        golden[str(run)] = ranges
    dcs = {str(r): [[1, per_run]] for r in run_ids}
    split = {
        "name": "bench",
        "train": {"runs": sorted(int(r) for r in set(run_ids.tolist()) - apply)},
        "apply": {"runs": sorted(int(r) for r in apply)},
    }
    return {"histograms": hist, "golden_json": golden, "dcs_json": dcs, "split": split}


def _params(name: str) -> dict:
    text = (ROOT / "conf" / "base" / f"parameters_{name}.yml").read_text()
    return yaml.safe_load(text)[name]


def detect(n_ls: int, n_runs: int, out: Path) -> dict:
    """Processing + detection with Kedro's runner, every dataset in memory; outputs pickled."""
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.runner import SequentialRunner

    from dqm_playground_ds.pipelines import data_processing, data_science
    from dqm_playground_ds.pipelines.data_processing.params import DataProcessingParams
    from dqm_playground_ds.pipelines.data_science.params import DataScienceParams

    t0 = time.perf_counter()
    inputs = make_inputs(n_ls, n_runs)
    generate = time.perf_counter() - t0
    dp = _params("data_processing")
    dp["split"] = inputs["split"]
    pipeline = data_processing.create_pipeline() + data_science.create_pipeline()

    class Kept(MemoryDataset):  # not released after its last consumer: pickled at the end
        def _release(self) -> None:
            pass

    catalog = DataCatalog({name: Kept(copy_mode="assign") for name in pipeline.datasets()})
    catalog["histograms"] = MemoryDataset(inputs["histograms"], copy_mode="assign")
    catalog["golden_json"] = MemoryDataset(inputs["golden_json"])
    catalog["dcs_json"] = MemoryDataset(inputs["dcs_json"])
    catalog["split_definition"] = MemoryDataset({})
    catalog["params:data_processing"] = MemoryDataset(DataProcessingParams.model_validate(dp))
    catalog["params:data_science"] = MemoryDataset(
        DataScienceParams.model_validate(_params("data_science"))
    )
    start, cpu = time.perf_counter(), time.process_time()
    SequentialRunner().run(pipeline, catalog)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    with open(out, "wb") as f:
        pickle.dump({name: catalog.load(name) for name in VIZ_INPUTS}, f, protocol=5)
    return {"wall": wall, "cpu": cpu, "generate_not_counted": generate, "peak_rss_mb": rss_mb()}


def visualize(inputs_file: Path, workdir: Path) -> dict:
    """The data_visualization pipeline with the project's catalog entries, default parameters."""
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.runner import SequentialRunner

    from dqm_playground_ds.datasets.figures import png_size
    from dqm_playground_ds.pipelines.data_visualization import create_pipeline
    from dqm_playground_ds.pipelines.data_visualization.params import DataVisualizationParams

    with open(inputs_file, "rb") as f:
        inputs = pickle.load(f)
    baseline = current_rss_mb()
    config = yaml.safe_load((ROOT / "conf/base/catalog_data_visualization.yml").read_text())
    os.chdir(workdir)
    catalog = DataCatalog.from_config(config)
    for name, data in inputs.items():
        catalog[name] = MemoryDataset(data, copy_mode="assign")
    params = DataVisualizationParams.model_validate(_params("data_visualization"))
    catalog["params:data_visualization"] = MemoryDataset(params, copy_mode="assign")
    start, cpu = time.perf_counter(), time.process_time()
    SequentialRunner().run(create_pipeline(), catalog)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = rss_mb()
    out = workdir / "data" / "08_reporting"
    pngs = list((out / "plots").rglob("*.png"))
    widest = max(pngs, key=lambda p: png_size(p.read_bytes())[0])
    html = (out / "report.html").read_text()
    return {
        "wall": wall,
        "cpu": cpu,
        "peak_rss_mb": peak,
        "added_rss_mb": peak - baseline,
        "report_mb": (out / "report.html").stat().st_size / 2**20,
        "n_png": len(pngs),
        "n_run_figures": len(list((out / "plots" / "score_timeseries").glob("*.png"))),
        "n_embedded": html.count("data:image/png;base64,"),
        "widest_px": png_size(widest.read_bytes())[0],
        "widest": str(widest.relative_to(out)),
        "n_runs": int(inputs["lumisection_predictions"]["run"].nunique()),
        "n_flagged": int(pd.read_csv(out / "flagged_lumisections.csv").shape[0]),
    }


def _child(args: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, check=False
    )
    if proc.returncode:
        sys.exit(f"{args} failed (exit {proc.returncode})")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["2000:100", "10000:500"], help="LS:runs")
    parser.add_argument("--smoke", action="store_true", help="1000 LS / 50 runs")
    parser.add_argument("--detect", nargs=3, help=argparse.SUPPRESS)  # child: n_ls n_runs out
    parser.add_argument("--visualize", nargs=2, help=argparse.SUPPRESS)  # child: inputs workdir
    args = parser.parse_args()
    if args.detect:
        n_ls, n_runs, out = args.detect
        print("RESULT " + json.dumps(detect(int(n_ls), int(n_runs), Path(out))))
        return
    if args.visualize:
        res = visualize(Path(args.visualize[0]), Path(args.visualize[1]))
        print("RESULT " + json.dumps(res))
        return
    sizes = ["1000:50"] if args.smoke else args.sizes
    print(f"load average: {os.getloadavg()}, cpus: {os.cpu_count()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="report_scale-") as tmp:
        for size in sizes:
            n_ls, n_runs = (int(v) for v in size.split(":"))
            pkl = Path(tmp) / f"inputs_{n_ls}.pkl"
            work = Path(tmp) / f"viz_{n_ls}"
            work.mkdir()
            det = _child(["--detect", str(n_ls), str(n_runs), str(pkl)])
            viz = _child(["--visualize", str(pkl), str(work)])
            rows.append((n_ls, n_runs, det, viz))
            print(f"\n== {n_ls} LS / {n_runs} runs, load {os.getloadavg()[0]:.2f}")
            print(f"  detection: {det['wall']:.1f} s (CPU {det['cpu']:.1f} s), "
                  f"peak RSS {det['peak_rss_mb']:.0f} MB")  # fmt: skip
            print(f"  visualization: {viz['wall']:.1f} s (CPU {viz['cpu']:.1f} s), peak RSS {viz['peak_rss_mb']:.0f} MB "
                  f"(+{viz['added_rss_mb']:.0f} MB over its loaded inputs)")  # fmt: skip
            print(f"  report.html {viz['report_mb']:.2f} MB, {viz['n_embedded']} images embedded; "
                  f"{viz['n_png']} PNGs ({viz['n_run_figures']} per-run figures); widest "
                  f"{viz['widest_px']} px ({viz['widest']}); {viz['n_flagged']} flagged LS")  # fmt: skip
    print("\n| LS / runs | detection | visualization (CPU) | viz peak RSS (added) | report.html "
          "| per-run figures | widest image |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for n_ls, n_runs, det, viz in rows:
        print(f"| {n_ls:,} / {n_runs} | {det['wall']:.0f} s | {viz['wall']:.1f} s ({viz['cpu']:.1f} s) "
              f"| {viz['peak_rss_mb']:.0f} MB (+{viz['added_rss_mb']:.0f} MB) "
              f"| {viz['report_mb']:.2f} MB | {viz['n_run_figures']} | {viz['widest_px']} px |")  # fmt: skip
    if len(rows) > 1:
        (_, a_runs, _, a), (_, b_runs, _, b) = rows[0], rows[-1]
        print(f"\n{b_runs / a_runs:.1f}x the runs: visualization time {b['wall'] / a['wall']:.2f}x, "
              f"report size {b['report_mb'] / a['report_mb']:.2f}x, "
              f"per-run figures {b['n_run_figures'] / max(a['n_run_figures'], 1):.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
