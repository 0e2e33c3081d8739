"""The plots' read of the per-ME scores: one strategy's rows and columns (lazy) vs the whole table.

``me_scores`` holds LS x ME x strategy rows with the raw score of every detector kind as a column
(13M rows at 100k LS x 12 MEs x 11 strategies). It is written one strategy at a time (one part,
row groups of one strategy) by ``ParquetTableDataset``. The score-correlation plot wants the report
strategy's (run, lumi, strategy, me, score), each method in a fresh process:

(a) ``lazy``: the catalog's ``lazy: true`` -> ``ParquetFrame``; ``rows_where(..., strategy=[s])``
    reads those columns of that strategy's row groups;
(b) ``whole``: the previous catalog entry, the whole table loaded as a frame, then filtered.

    python benchmarks/scores_read.py              # 100k LS, ~2 min once the table is cached
    python benchmarks/scores_read.py --ls 20000   # smaller
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from store_read import _status_mb, reset_peak  # noqa: E402

STRATEGIES = ("reference", "baseline_chi2_mean", "baseline_lof_full", "baseline_nmf3", "pca_gmm",
              "nmf_gmm", "autoencoder_gmm", "isolation_forest", "lof", "two_level",
              "two_level_within")  # fmt: skip
RAW = ("ls_knn", "run_knn", "within_chi2", "within_scan", "integral", "run_knn_causal", "chi2",
       "scan", "pca", "nmf", "autoencoder", "iforest", "lof")  # fmt: skip
MES = [f"Bench/1D/me_{k:02d}" for k in range(10)] + ["Bench/2D/map_0", "Bench/2D/map_1"]
WANTED = "two_level"


def _part(n_ls: int, k: int):
    def build() -> pd.DataFrame:
        rng = np.random.default_rng(k)
        n = n_ls * len(MES)
        frame = pd.DataFrame(
            {
                "run": np.repeat(300000 + np.arange(n_ls) // 1000, len(MES)),
                "lumi": np.repeat(np.arange(n_ls) % 1000 + 1, len(MES)),
                "strategy": pd.array([STRATEGIES[k]] * n, "string"),
                "me": pd.array(MES * n_ls, "string"),
                "score": rng.normal(size=n),
            }
        )
        for j, raw in enumerate(RAW):  # each strategy fills the raw scores of its detectors
            frame[f"raw_{raw}"] = rng.normal(size=n) if (j + k) % 5 == 0 else np.nan
        return frame

    return build


def build(n_ls: int) -> Path:
    from dqm_playground_ds.datasets import ParquetTableDataset
    from dqm_playground_ds.frame_parts import FrameParts

    path = HERE / ".cache" / f"me_scores_{n_ls}.parquet"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        parts = FrameParts([_part(n_ls, k) for k in range(len(STRATEGIES))])
        ParquetTableDataset(filepath=str(path)).save(parts)
    return path


def measure(method: str, path: Path) -> dict:
    from dqm_playground_ds.datasets import ParquetTableDataset
    from dqm_playground_ds.frame_parts import as_frame, rows_where
    from dqm_playground_ds.pipelines.data_visualization.nodes import SCORE_COLUMNS

    base = reset_peak()
    start = time.perf_counter()
    if method == "lazy":
        table = ParquetTableDataset(filepath=str(path), lazy=True).load()
        df = rows_where(table, SCORE_COLUMNS, strategy=[WANTED])
    else:
        df = as_frame(ParquetTableDataset(filepath=str(path)).load())
        df = rows_where(df, SCORE_COLUMNS, strategy=[WANTED])
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "growth_mb": _status_mb("VmHWM") - base, "rows": len(df),
            "checksum": float(df["score"].sum()) + float(df["lumi"].sum())}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ls", type=int, default=100_000, help="lumisections (multiple of 1000)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], Path(args.child[1]))))
        return
    path = build(args.ls)
    rows = args.ls * len(MES) * len(STRATEGIES)
    print(f"load average {os.getloadavg()}; {path.name}: {rows:,} rows, "
          f"{path.stat().st_size / 2**20:.0f} MB on disk")  # fmt: skip
    results: dict[str, list[dict]] = {"lazy": [], "whole": []}
    for _ in range(args.repeat):
        for method, runs in results.items():
            cmd = [sys.executable, __file__, "--child", method, str(path)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
    best = {m: min(rs, key=lambda r: r["seconds"]) for m, rs in results.items()}
    assert best["lazy"]["checksum"] == best["whole"]["checksum"], "the methods read different rows"
    for method, r in best.items():
        print(f"{method:6s} {r['rows']:>10,} rows  best {r['seconds']:7.3f} s  "
              f"peak RSS growth {r['growth_mb']:8.0f} MB")  # fmt: skip
    lazy, whole = best["lazy"], best["whole"]
    print(f"lazy vs whole: {whole['seconds'] / lazy['seconds']:.1f}x faster, "
          f"{whole['growth_mb'] / max(lazy['growth_mb'], 1):.1f}x less memory")  # fmt: skip


if __name__ == "__main__":
    main()
