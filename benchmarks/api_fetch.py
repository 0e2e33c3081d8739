"""Bulk download: the playground API (concurrent pages vs ``next`` links) and DIALS (sharded vs one cursor).

Starts the local platform server with the documented command (its own process, so client and server
do not share a GIL) on 127.0.0.1, loaded with N 1D histograms of 100 bins, with a fixed latency
injected into every API request (the real platform's round trip plus its per-page query time).
Then downloads the same selection twice in the same run:

(a) concurrent: page 1 gives the total, pages 2..N are fetched by ``--workers`` threads;
(b) sequential: page after page, following the server's relative ``next`` links.

Checks that both tables are identical, and prints the times and the ratio (target >= 5x).

``--platform dials`` does the same against the local DIALS server (its own process too), loaded with
``--runs`` x ``--mes`` x LS 1D histograms of 100 bins: (a) sharded, queries of about one page each
sized from the run listing's LS counts (``platform/dials/shards.py``), each following its own
cursor, ``--workers`` at once; (b) one query following a single cursor page after page (cursor
pages cannot be fetched concurrently). Both with pages of 500, DIALS's maximum, through the same
client code (asking only the table's fields, ``?fields=``; pages decoded and converted alike),
``--repeats`` times in alternating order; the first pair is cold (connections, and the server
encodes the asked fields' selection once).

    pip install -e ".[server]"
    python benchmarks/api_fetch.py [--histograms 10000] [--latency 0.05] [--workers 16]
    python benchmarks/api_fetch.py --platform dials [--runs 10 --mes 10 --histograms 10000]
        [--repeats 3] [--server-workers 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dqm_playground_ds.platform import PlaygroundClient

TOKEN = "benchmark-token"


def make_table(n: int, n_ls: int = 200, bins: int = 100, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    runs = 315000 + np.arange(n) // n_ls
    lumis = 1 + np.arange(n) % n_ls
    data = np.empty(n, dtype=object)
    data[:] = list(rng.poisson(50.0, size=(n, bins)).astype(np.float64))
    return pd.DataFrame(
        {
            "run": runs,
            "lumi": lumis,
            "me": "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1",
            "dim": 1,
            "entries": [float(d.sum()) for d in data],
            "x_min": 0.0,
            "x_max": 80000.0,
            "x_bins": bins,
            "y_min": np.nan,
            "y_max": np.nan,
            "y_bins": 0,
            "data": data,
            "source": "/eos/ZeroBias_2018A_DataFrame_1D_bench.csv",
        }
    )


def start_server(table_path: Path, latency: float) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "DQM_PLAYGROUND_TOKEN": TOKEN}
    cmd = [
        sys.executable,
        "-m",
        "dqm_playground_ds.platform.server",
        "--load",
        str(table_path),
        "--port",
        "0",
        "--latency",
        str(latency),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline().strip() if proc.stdout else ""
    if not line.startswith("serving http://127.0.0.1:"):
        proc.kill()
        raise RuntimeError(f"the local platform did not start: {line!r}")
    return proc, line.split()[1]


def make_dials_table(
    n: int, n_runs: int, n_mes: int, bins: int = 100, seed: int = 0
) -> pd.DataFrame:
    """``n`` histograms spread over ``n_runs`` runs x ``n_mes`` MEs x LS."""
    n_ls = -(-n // (n_runs * n_mes))
    rng = np.random.default_rng(seed)
    run, me, ls = np.meshgrid(
        315000 + np.arange(n_runs), np.arange(n_mes), 1 + np.arange(n_ls), indexing="ij"
    )
    run, me, ls = run.reshape(-1)[:n], me.reshape(-1)[:n], ls.reshape(-1)[:n]
    data = np.empty(len(run), dtype=object)
    data[:] = list(rng.poisson(50.0, size=(len(run), bins)).astype(np.float64))
    return pd.DataFrame(
        {
            "run": run,
            "lumi": ls,
            "me": [f"PixelPhase1/Tracks/PXBarrel/charge_PXLayer_{m}" for m in me],
            "dim": 1,
            "entries": [float(d.sum()) for d in data],
            "x_min": 0.0,
            "x_max": 80000.0,
            "x_bins": bins,
            "y_min": np.nan,
            "y_max": np.nan,
            "y_bins": 0,
            "data": data,
            "source": "/store/data/Run2018A/ZeroBias/DQMIO/bench.root",
        }
    )


def start_dials(
    table_path: Path, latency: float, workers: int = 1
) -> tuple[subprocess.Popen[str], str]:
    cmd = [
        sys.executable, "-m", "dqm_playground_ds.platform.dials.server", "--load", str(table_path),
        "--port", "0", "--latency", str(latency), "--token", TOKEN, "--log-level", "warning",
        "--workers", str(workers),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip() if proc.stdout else ""
    if not line.startswith("serving http://127.0.0.1:"):
        proc.kill()
        raise RuntimeError(f"the local DIALS server did not start: {line!r}")
    return proc, line.split()[1]


def dials_main(args: argparse.Namespace) -> int:
    """Sharded vs one cursor, ``--repeats`` times in alternating order; the first pair is cold
    (new connections for every worker thread), the others warm."""
    from dqm_playground_ds.platform.dials import DialsClient
    from dqm_playground_ds.platform.dials.server import DEFAULT_DATASET

    with tempfile.TemporaryDirectory(prefix="api-fetch-dials-") as tmp:
        path = Path(tmp) / "histograms.parquet"
        make_dials_table(args.histograms, args.runs, args.mes).to_parquet(path)
        proc, url = start_dials(path, args.latency, args.server_workers)
        ratios = []
        try:
            with DialsClient(url, TOKEN, max_workers=args.workers, progress=False) as client:
                client.mes()  # the server is up and answering
                print(
                    f"DIALS: {args.histograms:,} histograms ({args.runs} runs x {args.mes} MEs), "
                    f"pages of 500, {args.latency * 1000:.0f} ms injected per request, "
                    f"{args.workers} client workers, {args.server_workers} server process(es)"
                )
                for repeat in range(args.repeats):
                    order = (True, False) if repeat % 2 == 0 else (False, True)
                    times, tables = {}, {}
                    for shard in order:
                        before = client.stats["requests"]
                        started = time.perf_counter()
                        tables[shard] = client.download_histograms(
                            1, dataset=DEFAULT_DATASET, shard=shard
                        )
                        elapsed = time.perf_counter() - started
                        times[shard] = (elapsed, client.stats["requests"] - before)
                    pd.testing.assert_frame_equal(tables[True], tables[False])
                    (t_a, r_a), (t_b, r_b) = times[True], times[False]
                    ratios.append(t_b / t_a)
                    print(
                        f"  repeat {repeat + 1}{' (cold)' if repeat == 0 else ''}: "
                        f"(a) sharded {t_a:5.2f} s ({r_a} requests), (b) one cursor {t_b:5.2f} s "
                        f"({r_b} requests), same {len(tables[True]):,} rows: {t_b / t_a:.1f}x"
                    )
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    median = float(np.median(ratios))
    print(
        f"(a) is {median:.1f}x faster than (b) (median of {len(ratios)}; "
        f"{min(ratios):.1f}-{max(ratios):.1f}x; target >= 5x)"
    )
    return 0 if median >= 5 else 1


def timed(client: PlaygroundClient, concurrent: bool) -> tuple[float, pd.DataFrame]:
    started = time.perf_counter()
    table = client.download_histograms(1, concurrent=concurrent)
    return time.perf_counter() - started, table


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--histograms", type=int, default=10_000)
    p.add_argument("--latency", type=float, default=0.05, help="seconds injected per request")
    p.add_argument("--workers", type=int, default=16, help="concurrent page fetches / shards")
    p.add_argument("--platform", choices=["playground", "dials"], default="playground")
    p.add_argument("--runs", type=int, default=10, help="DIALS: runs in the table")
    p.add_argument("--mes", type=int, default=10, help="DIALS: MEs in the table")
    p.add_argument("--repeats", type=int, default=3, help="DIALS: timed pairs (first is cold)")
    p.add_argument("--server-workers", type=int, default=1, help="DIALS: local server processes")
    args = p.parse_args()
    if args.platform == "dials":
        return dials_main(args)

    with tempfile.TemporaryDirectory(prefix="api-fetch-") as tmp:
        path = Path(tmp) / "histograms.parquet"
        make_table(args.histograms).to_parquet(path)
        proc, url = start_server(path, args.latency)
        try:
            with PlaygroundClient(url, TOKEN, max_workers=args.workers, progress=False) as client:
                client.runs()  # warm-up: connections, server caches
                t_conc, conc = timed(client, concurrent=True)
                t_seq, seq = timed(client, concurrent=False)
                requests = client.stats["requests"]
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    pd.testing.assert_frame_equal(conc, seq)
    n_pages = -(-args.histograms // 50)
    print(
        f"{len(conc):,} histograms, {n_pages} pages of 50, {args.latency * 1000:.0f} ms injected "
        f"per request, {args.workers} workers; {requests} requests in all"
    )
    print(f"(a) concurrent pages:       {t_conc:7.2f} s  ({len(conc) / t_conc:8,.0f} histograms/s)")
    print(f"(b) sequential next links:  {t_seq:7.2f} s  ({len(seq) / t_seq:8,.0f} histograms/s)")
    print(f"identical rows: yes; (a) is {t_seq / t_conc:.1f}x faster than (b) (target >= 5x)")
    return 0 if t_seq / t_conc >= 5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
