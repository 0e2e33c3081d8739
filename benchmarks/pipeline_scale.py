"""Processing + training + scoring of the default strategies at 10k, 100k, 300k lumisections (LS).

Synthetic table: N LS x (10 1D MEs of 100 bins + 2 2D maps of ``--map-size`` bins), in runs of
1000 LS; 70 % of the runs train, the rest are applied. The table is generated one ME at a time
into a ``histograms.parquet`` (as the extraction saves it; in its own process, cached in
``--cache``, not counted). Each size then runs in a fresh process (so the peak RSS is its own) as
``kedro run`` would: the table loaded lazily, the real node functions of ``data_processing`` and
``data_science`` (labels, split, quality cuts, preprocessing, the ``me_features`` store written
one ME at a time and mapped back, every default strategy with its out-of-fold calibration,
scoring of every LS, the predictions and per-ME scores written by their datasets one strategy at a
time) with the parameters of ``conf/base``. Injection and evaluation are not timed
(they scale with ``n_per_type``, not with N).

    python benchmarks/pipeline_scale.py --sizes 10000 100000 300000   # ~1 h on 2 cores
    python benchmarks/pipeline_scale.py --sizes 100000 --jobs 1 2     # workers: 1 vs 2
    python benchmarks/pipeline_scale.py --smoke                       # 2000 LS, ~1 min

Prints wall time and peak RSS per stage, the peak memory of the run with its workers (summed
proportional set size and anonymous memory of the process tree, sampled every 0.5 s, per stage
and overall), and time per LS relative to the first size (1.0 =
linear growth).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
RUN_LEN = 1000


def _template_1d(k: int, bins: int = 100) -> np.ndarray:
    x = np.arange(bins) + 0.5
    mpv = 20 + 3 * k
    p = np.exp(-0.5 * ((x - mpv) / (4 + k % 3)) ** 2) + 0.15 * np.exp(-(x - mpv) / 15) * (x > mpv)
    return p / p.sum()


def _template_2d(k: int, ny: int, nx: int) -> np.ndarray:
    y, x = np.mgrid[0:ny, 0:nx] + 0.5
    p = np.exp(-0.5 * ((x - nx / 2) / (nx / 3)) ** 2) * (1 + 0.2 * np.cos(2 * np.pi * y / ny + k))
    p[:, 3 + k] = 0.0  # a dead column, normal in every LS
    return (p / p.sum()).reshape(-1)


class SyntheticHistograms:
    """The benchmark's histogram table, generated one ME at a time (a :class:`HistogramTable`):
    Poisson counts around per-ME templates, entries per LS decaying along each run. Each ME has
    its own seed, so any ME comes out the same whichever is asked first."""

    def __init__(self, n_ls: int, map_size: tuple[int, int], seed: int = 0) -> None:
        self.n_ls, self.map_size, self.seed = n_ls, map_size, seed
        ny, nx = map_size
        self.specs = [(f"Bench/1D/me_{k:02d}", 1, _template_1d(k), 20000) for k in range(10)]
        self.specs += [(f"Bench/2D/map_{k}", 2, _template_2d(k, ny, nx), 50000) for k in range(2)]

    def mes(self) -> list[str]:
        return [spec[0] for spec in self.specs]

    def read(self, me=None, runs=None, columns=None) -> pd.DataFrame:
        if me is None or runs is not None or columns is not None:
            raise NotImplementedError("the benchmark generates one whole ME at a time")
        k = self.mes().index(me)
        _, dim, template, mean_entries = self.specs[k]
        ny, nx = self.map_size
        runs_ = 300000 + np.arange(self.n_ls) // RUN_LEN
        lumis = 1 + np.arange(self.n_ls) % RUN_LEN
        per_run = np.random.default_rng([self.seed]).uniform(0.7, 1.3, size=runs_.max() - 299999)
        lumi_scale = np.exp(-lumis / 3000) * per_run[runs_ - 300000]
        rng = np.random.default_rng([self.seed, k])
        lam = (mean_entries * lumi_scale).astype(np.float32)[:, None] * template[None, :].astype(
            np.float32
        )
        counts = rng.poisson(lam).astype(np.float64)
        del lam
        data = np.empty(self.n_ls, dtype=object)
        data[:] = list(counts)
        out = pd.DataFrame(
            {
                "run": runs_,
                "lumi": lumis,
                "me": me,
                "dim": np.int8(dim),
                "entries": counts.sum(axis=1),
                "x_min": 0.0,
                "x_max": 100.0 if dim == 1 else float(nx),
                "x_bins": np.int32(template.size if dim == 1 else nx),
                "y_min": np.nan if dim == 1 else 0.0,
                "y_max": np.nan if dim == 1 else float(ny),
                "y_bins": np.int32(0 if dim == 1 else ny),
                "data": data,
                "source": "synthetic",
            }
        )
        return out.astype({"me": "string", "source": "string"})


def make_histograms(n_ls: int, map_size: tuple[int, int], seed: int = 0) -> pd.DataFrame:
    """The whole synthetic table in memory (small sizes only)."""
    table = SyntheticHistograms(n_ls, map_size, seed)
    return pd.concat([table.read(me=me) for me in table.mes()], ignore_index=True)


def write_histograms(n_ls: int, map_size: tuple[int, int], path: Path) -> None:
    """``histograms.parquet`` as the extraction node saves it, one ME at a time (not counted)."""
    from dqm_playground_ds.datasets import ParquetTableDataset

    path.parent.mkdir(parents=True, exist_ok=True)
    ParquetTableDataset(filepath=str(path), schema="histograms").save(  # atomic: temp + rename
        SyntheticHistograms(n_ls, map_size)
    )


def _params() -> tuple[dict, dict]:
    conf = ROOT / "conf" / "base"
    dp = yaml.safe_load((conf / "parameters_data_processing.yml").read_text())["data_processing"]
    ds = yaml.safe_load((conf / "parameters_data_science.yml").read_text())["data_science"]
    return dp, ds


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _tree_memory_mb(root: int) -> tuple[float, float]:
    """(PSS, anonymous) memory in MB of ``root`` and all its descendants (the loky workers).

    PSS counts shared pages once overall, including the pages of memory-mapped files (the
    feature store) the processes have touched; anonymous memory is what they allocated, what an
    out-of-memory kill is about (mapped file pages can be dropped and read again)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    pss = anon = 0.0
    todo = [root]
    while todo:
        pid = todo.pop()
        todo += parents.get(pid, [])
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                pss += int(line.split()[1]) / 1024.0
            elif line.startswith("Anonymous:"):
                anon += int(line.split()[1]) / 1024.0
    return pss, anon


class TreeMemory(threading.Thread):
    """Samples :func:`_tree_memory_mb` of a process every ``interval`` s; keeps the maxima,
    overall and since the last :meth:`lap`."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak = self.lap_peak = (0.0, 0.0)
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            now = _tree_memory_mb(self.pid)
            self.peak = (max(self.peak[0], now[0]), max(self.peak[1], now[1]))
            self.lap_peak = (max(self.lap_peak[0], now[0]), max(self.lap_peak[1], now[1]))

    def lap(self) -> tuple[float, float]:
        """The maxima since the previous lap, and start a new one."""
        out, self.lap_peak = self.lap_peak, (0.0, 0.0)
        return out

    def stop(self) -> tuple[float, float]:
        self._stop_event.set()
        self.join()
        return self.peak


def run_one(data: Path, strategies: list[str] | None, n_jobs: int | None = None) -> dict:
    """One size, in this process, from its ``histograms.parquet`` loaded lazily as the catalog
    does: returns stage times (s) and peak RSS (MB)."""
    from dqm_playground_ds.datasets import FeatureStoreDataset, ParquetTableDataset
    from dqm_playground_ds.detection.strategy import assign_folds, fit_strategy
    from dqm_playground_ds.histogram_tables import lumisections
    from dqm_playground_ds.pipelines.data_processing import nodes as dp_nodes
    from dqm_playground_ds.pipelines.data_processing.params import DataProcessingParams
    from dqm_playground_ds.pipelines.data_science import nodes as ds_nodes
    from dqm_playground_ds.pipelines.data_science.params import DataScienceParams

    dp, ds = _params()
    ds["n_jobs"] = n_jobs
    if strategies:
        ds["active_strategies"] = strategies
    times: dict[str, float] = {}
    tree: dict[str, tuple[float, float]] = {}
    sampler = TreeMemory(os.getpid())
    sampler.start()
    rss_generated = rss_mb()
    hist = ParquetTableDataset(filepath=str(data), schema="histograms", lazy=True).load()
    keys = lumisections(hist)
    n_ls = len(keys)
    runs = np.unique(keys["run"].to_numpy())
    n_train = max(1, round(0.7 * len(runs)))
    dp["split"] = {
        "name": "bench",
        "train": {"runs": runs[:n_train].tolist()},
        "apply": {"runs": runs[n_train:].tolist()},
    }
    golden = {str(r): [[1, RUN_LEN]] for r in runs}
    dp = DataProcessingParams.model_validate(dp)

    def stage(name, fn, *args):
        start = time.perf_counter()
        sampler.lap()
        out = fn(*args)
        times[name] = time.perf_counter() - start
        tree[name] = sampler.lap()
        print(f"  [{n_ls}] {name}: {times[name]:.1f} s, peak RSS {rss_mb():.0f} MB, with the "
              f"workers PSS {tree[name][0]:.0f} MB, anonymous {tree[name][1]:.0f} MB",
              file=sys.stderr, flush=True)  # fmt: skip
        return out

    labelled = stage("labels", dp_nodes.label_lumisections_node, hist, golden, {}, dp)
    split = stage("split", dp_nodes.assign_split, labelled, None, dp)
    pre = stage("fit_preprocessor", dp_nodes.fit_preprocessor, hist, split, dp)
    features, ls = stage("build_features", dp_nodes.build_features, hist, split, pre, dp)
    # what the catalog does between the nodes: me_features written one ME at a time, then mapped
    store = FeatureStoreDataset(path=str(data.with_name(data.stem + "_features")))
    stage("save me_features", store.save, features)
    features = store.load()
    del hist
    # what the train_strategies node does, strategy by strategy to time each (shared cache:
    # strategies with the same detectors reuse the fitted models, as in the node)
    train_rows = np.flatnonzero(ls["train"].to_numpy(dtype=bool))
    dsp = DataScienceParams.model_validate(ds)
    folds = assign_folds(ls.iloc[train_rows], dsp.calibration_folds)
    cache: dict = {}
    models = {}
    for spec in dsp.strategy_specs():
        fs = features[spec.preprocessing]
        models[spec.name] = stage(
            f"train {spec.name}",
            fit_strategy,
            spec,
            fs,
            train_rows,
            folds,
            cache,
            dsp.seed,
            None,
            None,
            dsp.jobs(),
        )
    preds, me_scores = stage("score", ds_nodes.score_lumisection_parts, models, features, ls, dsp)
    # what the catalog does with the node's outputs: written one strategy at a time
    out = data.with_name(data.stem + "_outputs")
    out.mkdir(exist_ok=True)
    pred_set = ParquetTableDataset(filepath=str(out / "lumisection_predictions.parquet"))
    stage("save lumisection_predictions", pred_set.save, preds)
    stage("save me_scores", ParquetTableDataset(filepath=str(out / "me_scores.parquet")).save,
          me_scores)  # fmt: skip
    del preds, me_scores
    flags = pd.read_parquet(pred_set._path, columns=["strategy", "is_anomalous"])
    flagged = flags.groupby("strategy", observed=True)["is_anomalous"].mean().round(4).to_dict()
    counted = sum(v for k, v in times.items() if "not counted" not in k)
    tree_peak = sampler.stop()
    return {
        "n_ls": n_ls,
        "times": times,
        "tree_stage_mb": tree,
        "tree_peak_mb": tree_peak[0],
        "tree_anon_peak_mb": tree_peak[1],
        "wall": counted,
        "peak_rss_mb": rss_mb(),
        "rss_after_imports_mb": rss_generated,
        "flag_rate": flagged,
        "n_train_ls": int(ls["train"].sum()),
        "n_jobs": dsp.jobs(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 30000, 100000])
    parser.add_argument("--map-size", type=int, nargs=2, default=[32, 32], metavar=("NY", "NX"))
    parser.add_argument("--strategies", nargs="*", default=None, help="default: all in conf/base")
    parser.add_argument("--smoke", action="store_true", help="one small size (2000 LS)")
    parser.add_argument(
        "--jobs",
        type=int,
        nargs="+",
        default=[0],
        help="n_jobs to compare (0 = the default, every usable CPU), e.g. 1 2",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "dqm_pipeline_scale",
        help="where the generated histograms.parquet of each size are kept between runs",
    )
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # child process mode
    parser.add_argument("--generate", type=int, help=argparse.SUPPRESS)  # child process mode
    args = parser.parse_args()
    if args.generate:
        write_histograms(args.generate, tuple(args.map_size), args.one)
        return
    if args.one:
        result = run_one(args.one, args.strategies, args.jobs[0] or None)
        print("RESULT " + json.dumps(result))
        return
    sizes = [2000] if args.smoke else args.sizes
    print(f"load average: {os.getloadavg()}, cpus: {os.cpu_count()}")
    results = []
    for n, jobs in ((n, j) for n in sizes for j in args.jobs):
        data = args.cache / f"histograms_{n}_{args.map_size[0]}x{args.map_size[1]}.parquet"
        if not data.exists():  # generated in its own process: not counted, not in the peak
            start = time.perf_counter()
            gen = [sys.executable, __file__, "--generate", str(n), "--one", str(data),
                   "--map-size", *map(str, args.map_size)]  # fmt: skip
            subprocess.run(gen, check=True)
            print(f"generated {data} ({data.stat().st_size / 1e6:.0f} MB) in "
                  f"{time.perf_counter() - start:.0f} s")  # fmt: skip
        cmd = [sys.executable, __file__, "--one", str(data), "--jobs", str(jobs)]
        if args.strategies:
            cmd += ["--strategies", *args.strategies]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        stdout, _ = proc.communicate()
        if proc.returncode:
            sys.exit(f"size {n} failed (exit {proc.returncode})")
        line = next(x for x in stdout.splitlines() if x.startswith("RESULT "))
        res = json.loads(line[len("RESULT ") :])
        res["process_wall"] = time.perf_counter() - start
        results.append(res)
        print(f"\n== {n} LS ({res['n_train_ls']} training LS), n_jobs {res['n_jobs']}, "
              f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
        for k, v in res["times"].items():
            pss, anon = res["tree_stage_mb"][k]
            print(f"  {k:<34} {v:8.1f} s   PSS {pss / 1024:5.2f} GB, anon {anon / 1024:5.2f} GB")
        print(f"  {'total (processing+training+scoring)':<34} {res['wall']:8.1f} s")
        print(f"  peak RSS {res['peak_rss_mb']:.0f} MB (after the imports: "
              f"{res['rss_after_imports_mb']:.0f} MB); with the workers: peak PSS "
              f"{res['tree_peak_mb']:.0f} MB, anonymous {res['tree_anon_peak_mb']:.0f} MB")  # fmt: skip
        print(f"  flag rate per strategy: {res['flag_rate']}")
    base = results[0]
    print(
        "\n| LS | n_jobs | wall | peak RSS (main process) | peak PSS / anonymous (with workers) "
        "| time/LS vs first | speed-up vs n_jobs of the first row |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        t_ratio = (r["wall"] / r["n_ls"]) / (base["wall"] / base["n_ls"])
        same = next(x for x in results if x["n_ls"] == r["n_ls"])
        print(f"| {r['n_ls']:,} | {r['n_jobs']} | {r['wall']:.0f} s | {r['peak_rss_mb'] / 1024:.2f} GB "
              f"| {r['tree_peak_mb'] / 1024:.2f} / {r['tree_anon_peak_mb'] / 1024:.2f} GB "
              f"| {t_ratio:.2f} | {same['wall'] / r['wall']:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
