"""Reading one ME out of the partition store (predicate push-down) vs loading the whole table.

Store: N LS (default 100,000) in runs of 1000 LS, one partition per run (as one DQMIO file per run
gives), 10 1D MEs of 100 bins + 2 2D maps of 32x32 (the histograms of ``pipeline_scale.py``),
written by :class:`~dqm_playground_ds.extraction.PartitionStore` (one row group per ME), plus the
same rows as the one ``histograms.parquet`` table the extraction node saves today. Both are
written chunk by chunk, so building them never holds the whole table.

Each method runs in a fresh process (its peak RSS is its own), best of ``--repeat``:

(a) ``PartitionStore.read(me=...)``: only that ME's row groups are read;
(b) today's path: ``ParquetTableDataset(histograms.parquet).load()``, then ``df[df.me == ...]``;
(c) every partition concatenated (``read_partitions``), then the same pandas filter.

Peak RSS is the kernel's high-water mark (VmHWM), reset after the imports; "growth" is that peak
minus the RSS after the imports, i.e. what the read itself costs.

    python benchmarks/store_read.py             # ~3 min once the store is cached in benchmarks/.cache
    python benchmarks/store_read.py --ls 20000  # smaller
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
RUN_LEN = 1000
ME_1D, ME_2D = "Bench/1D/me_03", "Bench/2D/map_1"


def _cache(n_ls: int) -> Path:
    return HERE / ".cache" / f"store_{n_ls}"


def build(n_ls: int) -> Path:
    """The store and the single table, one run at a time (bounded memory); kept between runs."""
    from pipeline_scale import make_histograms

    from dqm_playground_ds.extraction import PartitionStore
    from dqm_playground_ds.schema import HISTOGRAM_SCHEMA, KEY

    root = _cache(n_ls)
    if (root / "complete").exists():
        return root
    store = PartitionStore(root / "store")
    store.ensure()
    table_path = root / "histograms.parquet"
    with pq.ParquetWriter(table_path, HISTOGRAM_SCHEMA) as table:
        for k in range(n_ls // RUN_LEN):
            run = make_histograms(RUN_LEN, (32, 32), seed=k)
            run["run"] = 300000 + k
            run = run.sort_values(KEY, ignore_index=True)
            pid = f"run{300000 + k}"
            store.write_partition(pid, run)
            store.write_marker(pid, {"row": {"path": pid, "status": "ok", "n_rows": len(run)}})
            table.write_table(
                pa.Table.from_pandas(run, schema=HISTOGRAM_SCHEMA, preserve_index=False)
            )
            print(f"  wrote run {k + 1}/{n_ls // RUN_LEN}", file=sys.stderr, end="\r")
    (root / "complete").touch()
    return root


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak() -> float:
    """Reset the kernel's peak RSS (VmHWM) so that the imports' peak does not hide the read's;
    return the current RSS."""
    with contextlib.suppress(OSError):  # no reset: the peak may then include the imports'
        Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def measure(method: str, root: Path, me: str) -> dict:
    """One method in this (fresh) process: seconds, peak RSS, rows and a checksum of the result."""
    import pandas as pd  # noqa: F401  (imports are not timed: every method pays them)

    from dqm_playground_ds.datasets import ParquetTableDataset
    from dqm_playground_ds.extraction import PartitionStore, read_partitions

    base = reset_peak()
    start = time.perf_counter()
    if method == "store_read":
        df = PartitionStore(root / "store").read(me=me)
    elif method == "table_then_filter":
        whole = ParquetTableDataset(filepath=str(root / "histograms.parquet"), schema="histograms")
        df = whole.load()
        df = df[df["me"] == me].reset_index(drop=True)
    else:
        df = read_partitions(PartitionStore(root / "store"))
        df = df[df["me"] == me].reset_index(drop=True)
    seconds = time.perf_counter() - start
    checksum = float(np.sum([d.sum() for d in df["data"]])) + float(df["lumi"].sum())
    return {"seconds": seconds, "peak_mb": _status_mb("VmHWM"), "base_mb": base, "rows": len(df),
            "checksum": checksum}  # fmt: skip


def run_child(method: str, root: Path, me: str) -> dict:
    cmd = [sys.executable, __file__, "--child", method, str(root), me]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


METHODS = ("store_read", "table_then_filter", "partitions_then_filter")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ls", type=int, default=100_000, help="lumisections (multiple of 1000)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, root, me = args.child
        print(json.dumps(measure(method, Path(root), me)))
        return
    start = time.perf_counter()
    root = build(args.ls)
    print(f"store ready in {time.perf_counter() - start:.0f} s: {root}", file=sys.stderr)
    size = sum(p.stat().st_size for p in (root / "store").glob("*.parquet")) / 2**20
    print(f"load average {os.getloadavg()}, cpus {os.cpu_count()}; {args.ls:,} LS x 12 MEs, "
          f"store {size:.0f} MB on disk in {args.ls // RUN_LEN} partitions")  # fmt: skip
    print(
        "\n| ME | method | s (best) | peak RSS | growth over imports | rows | time vs (a) | growth vs (a) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for me in (ME_1D, ME_2D):
        results = {}
        for method in METHODS:
            runs = [run_child(method, root, me) for _ in range(args.repeat)]
            best = min(runs, key=lambda r: r["seconds"])
            best["growth_mb"] = min(r["peak_mb"] - r["base_mb"] for r in runs)
            best["peak_mb"] = min(r["peak_mb"] for r in runs)
            results[method] = best
        a = results["store_read"]
        checks = {round(r["checksum"], 3) for r in results.values()}
        assert len(checks) == 1 and len({r["rows"] for r in results.values()}) == 1, results
        for label, method in zip("abc", METHODS, strict=True):
            r = results[method]
            print(f"| {me} | ({label}) {method} | {r['seconds']:.2f} | {r['peak_mb']:,.0f} MB "
                  f"| {r['growth_mb']:,.0f} MB | {r['rows']:,} | {r['seconds'] / a['seconds']:.1f}x "
                  f"| {r['growth_mb'] / max(a['growth_mb'], 1.0):.1f}x |")  # fmt: skip
        print(f"  (a) imports alone: {a['base_mb']:.0f} MB RSS", file=sys.stderr)


if __name__ == "__main__":
    main()
