"""Benchmark: reading per-LS histograms out of a large DQMIO file, four ways, in one run.

    pip install -e ".[root]"            # ROOT writes the file and is reference (c)
    python benchmarks/dqmio_read.py     # ~3 min on 2 cores; the file is cached in benchmarks/.cache

It writes (once) a DQMIO file with ROOT: 2000 LS x (50 TH1F of 100 bins + 5 TH2F of 50x50), i.e.
100k TH1F and 10k TH2F, then measures, each in a fresh process:

  (a) the project's reader, ``read_dqmio`` (everything; and 5 MEs, for peak memory)
  (b) uproot per-object decoding with the DQM GUI header fix (TH1) and ``library="np"`` (TH2)
  (c) a PyROOT ``GetEntry`` loop with ``GetBinContent`` per bin, like the DIALS ETL reader
  (d) the decompression-only bound: every ``Value`` basket decompressed, nothing decoded

and the selective read: 5 of 100 MEs per LS (a second file, 2000 LS x (95 TH1F + 5 TH2F)) with the
default threads and with ``threads=1``, against the single-thread decompression-only time of the
same baskets (uproot's ``TBranch.basket``, and the reader's own lean path).

(b) and (c) are slow, so they run on the first ``--subset`` fraction of entries and their rate
(histograms/s) is compared; (a) and (d) run on the whole file.
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

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
TH1_NAME = "Bench/Layer{:02d}/charge_{:02d}"
TH2_NAME = "Bench/Maps/occupancy_{:d}"


def generate(
    path: Path, lumis: int, n_th1: int, n_th2: int, th2_bins: int, compression: int = 505
) -> None:
    """Write the benchmark file with ROOT: one reused object per ME, refilled for every LS."""
    sys.path.insert(0, str(HERE.parent / "src"))
    from dqm_playground_ds.tools.dqmio_writer import DQMIOWriter, _root

    ROOT = _root()
    rng = np.random.default_rng(7)
    th1 = [ROOT.TH1F(f"h{i}", f"h{i}", 100, 0.0, 80000.0) for i in range(n_th1)]
    th2 = [
        ROOT.TH2F(f"m{i}", f"m{i}", th2_bins, -26.7, 26.7, th2_bins, -3.2, 3.2)
        for i in range(n_th2)
    ]
    x = np.linspace(0, 1, 102)
    shape1 = np.exp(-0.5 * ((x - 0.3) / 0.08) ** 2) + 0.1 * np.exp(-3 * x)
    g = np.linspace(-1, 1, th2_bins + 2)
    shape2 = np.outer(1 + 0.2 * np.cos(6 * g), np.exp(-(g**2)))
    names1 = sorted((TH1_NAME.format(i // 10, i), h) for i, h in enumerate(th1))
    names2 = sorted((TH2_NAME.format(i), h) for i, h in enumerate(th2))
    started = time.perf_counter()
    writer = DQMIOWriter(f"{path}?reproducible=bench", guid="BENCH-0000", compression=compression)
    with writer:
        for lumi in range(1, lumis + 1):
            counts1 = rng.poisson(60 * shape1, size=(n_th1, 102)).astype(np.float64)
            counts2 = rng.poisson(3 * shape2, size=(n_th2, *shape2.shape)).astype(np.float64)
            for (name, h), c in zip(names1, counts1, strict=True):
                h.SetContent(c)
                h.SetEntries(float(c.sum()))
                writer.fill("TH1F", name, h)
            for (name, h), c in zip(names2, counts2, strict=True):
                h.SetContent(np.ascontiguousarray(c.reshape(-1)))
                h.SetEntries(float(c.sum()))
                writer.fill("TH2F", name, h)
            writer.end_block(370000 + (lumi - 1) // 500, (lumi - 1) % 500 + 1)
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s"
    )


# -- measurements, each run in a fresh process --------------------------------------------------


def _status(key: str) -> int:
    """VmRSS / VmHWM of this process in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak() -> int:
    """Reset the high-water mark (Linux: write 5 to clear_refs) and return the current RSS."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _status("VmRSS")


def measure_ours(path: str, me: list[str] | None, threads: int | None = None) -> dict:
    from dqm_playground_ds.readers.dqmio import read_dqmio

    read_dqmio(path, me="nothing", missing="ignore")  # warm imports and lazy module state
    base = _reset_peak()
    t, cpu = time.perf_counter(), time.process_time()
    table = read_dqmio(path, me=me, threads=threads)
    seconds = time.perf_counter() - t
    cpu = time.process_time() - cpu
    data_bytes = int(sum(a.nbytes for a in table["data"]))
    table_bytes = int(table.memory_usage(deep=True).sum()) + data_bytes
    return {
        "histograms": len(table),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss_delta": _status("VmHWM") - base,
        "table_bytes": table_bytes,
    }


def measure_uproot_objects(path: str, fraction: float) -> dict:
    import struct

    import uproot
    from uproot.source.chunk import Chunk
    from uproot.source.cursor import Cursor

    t = time.perf_counter()
    n = 0
    with uproot.open(path) as f:
        cls = f.file.class_named("TH1F")
        branch = f["TH1Fs"]["Value"]
        stop = int(branch.num_entries * fraction)
        for b in range(branch.num_baskets):
            if branch.basket_entry_start_stop(b)[0] >= stop:
                break
            basket = branch.basket(b)
            data, offsets = basket.data, basket.byte_offsets
            for i in range(len(offsets) - 1):
                raw = data[offsets[i] : offsets[i + 1]].tobytes()
                head = struct.pack(">IH", (len(raw) + 2) | 0x40000000, 3)
                buf = np.frombuffer(head + raw, dtype=np.uint8)
                obj = cls.read(
                    Chunk.wrap(f.file.source, buf), Cursor(0), {}, f.file, f.file.detached, None
                )
                obj.values()
                n += 1
        th2 = f["TH2Fs"]["Value"]
        for obj in th2.array(library="np", entry_stop=int(th2.num_entries * fraction)):
            obj.values()
            n += 1
    return {"histograms": n, "seconds": time.perf_counter() - t}


def measure_pyroot(path: str, fraction: float) -> dict:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import ROOT
    ROOT.gROOT.SetBatch(True)
    t = time.perf_counter()
    f = ROOT.TFile.Open(path)
    indices = f.Get("Indices")
    trees = {3: f.Get("TH1Fs"), 6: f.Get("TH2Fs")}
    limits = {k: int(v.GetEntries() * fraction) for k, v in trees.items()}
    n = 0
    for i in range(indices.GetEntries()):
        indices.GetEntry(i)
        tree = trees.get(int(indices.Type))
        if tree is None:
            continue
        for entry in range(int(indices.FirstIndex), int(indices.LastIndex) + 1):
            if entry >= limits[int(indices.Type)]:
                break
            tree.GetEntry(entry)
            str(tree.FullName)
            h = tree.Value
            nx, ny = h.GetNbinsX(), h.GetNbinsY()
            if int(indices.Type) == 3:
                [h.GetBinContent(b) for b in range(1, nx + 1)]
            else:
                [h.GetBinContent(bx, by) for by in range(1, ny + 1) for bx in range(1, nx + 1)]
            h.GetEntries()
            n += 1
    f.Close()
    return {"histograms": n, "seconds": time.perf_counter() - t}


def measure_decompress(path: str) -> dict:
    import uproot

    t = time.perf_counter()
    n = raw = 0
    with uproot.open(path) as f:  # the same (default) file handler as the project's reader
        for tree in ("TH1Fs", "TH2Fs"):
            branch = f[tree]["Value"]
            for b in range(branch.num_baskets):
                raw += len(branch.basket(b).data)
            n += branch.num_entries
    return {"histograms": n, "seconds": time.perf_counter() - t, "raw_bytes": raw}


def _needed_baskets(f, path: str, me: list[str]) -> dict[str, list[int]]:
    """Per type tree, the ``Value`` baskets holding the selected entries (as the reader finds them)."""
    from dqm_playground_ds.readers.dqmio import DQMIOFile
    from dqm_playground_ds.readers.dqmio.layout import TYPE_NAMES

    out = {}
    with DQMIOFile(path) as dq:
        for sel in dq.select(me):
            starts = np.asarray(f[TYPE_NAMES[sel.type_code]]["Value"].entry_offsets)
            basket_of = np.searchsorted(starts, sel.entries, side="right") - 1
            out[TYPE_NAMES[sel.type_code]] = np.unique(basket_of).tolist()
    return out


def measure_decompress_selected(path: str, me: list[str], lean: bool) -> dict:
    """Single-thread decompression-only time of the baskets that hold the selected entries.

    ``lean=False``: uproot's ``TBranch.basket`` (the bound (d) above); ``lean=True``: the reader's
    own single-thread basket path (``os.pread`` + uproot's ``decompress``), the tighter bound.
    """
    import uproot

    from dqm_playground_ds.readers.dqmio.baskets import BasketReader

    n = raw = 0
    with uproot.open(path) as f:
        needed = _needed_baskets(f, path, me)
        reader = BasketReader(path, f.file.source)
        t = time.perf_counter()
        for tree, baskets in needed.items():
            branch = f[tree]["Value"]
            seeks, sizes = branch.member("fBasketSeek"), branch.member("fBasketBytes")
            for b in baskets:
                if lean:
                    raw += len(reader.read(int(seeks[b]), int(sizes[b]))[0])
                else:
                    raw += len(branch.basket(b).data)
            n += len(baskets)
        seconds = time.perf_counter() - t
        reader.close()
    return {"histograms": 0, "baskets": n, "seconds": seconds, "raw_bytes": raw}


def _child(method: str, path: str, fraction: float) -> dict:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, __file__, "--measure", method, "--file", path, "--subset", str(fraction)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--lumis", type=int, default=2000)
    parser.add_argument("--th1", type=int, default=50, help="TH1F MEs per LS")
    parser.add_argument("--th2", type=int, default=5, help="TH2F MEs per LS")
    parser.add_argument("--th2-bins", type=int, default=50)
    parser.add_argument(
        "--subset", type=float, default=0.1, help="fraction of entries for (b), (c)"
    )
    parser.add_argument("--file", help="use this DQMIO file instead of generating one")
    parser.add_argument("--sel-th1", type=int, default=95, help="TH1F MEs per LS, selective file")
    parser.add_argument("--sel-th2", type=int, default=5, help="TH2F MEs per LS, selective file")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method (best kept)")
    parser.add_argument(
        "--compression",
        type=int,
        default=505,
        help="ROOT algorithm*100+level of the generated files: 505 ZSTD 5 (default), 101 ZLIB 1 "
        "(what a TFile opened without a setting gets, as DQMRootOutputModule does)",
    )
    parser.add_argument("--skip-slow", action="store_true", help="skip (b) and (c)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()

    if args.measure:
        five = [TH1_NAME.format(i // 10, i) for i in (0, 1, 2, 3)] + [TH2_NAME.format(0)]
        result = {
            "ours_all": lambda: measure_ours(args.file, None),
            "ours_all_1thread": lambda: measure_ours(args.file, None, threads=1),
            "ours_5me": lambda: measure_ours(args.file, five),
            "sel_ours": lambda: measure_ours(args.file, five),
            "sel_ours_1thread": lambda: measure_ours(args.file, five, threads=1),
            "sel_decompress": lambda: measure_decompress_selected(args.file, five, lean=False),
            "sel_decompress_lean": lambda: measure_decompress_selected(args.file, five, lean=True),
            "uproot_objects": lambda: measure_uproot_objects(args.file, args.subset),
            "pyroot_loop": lambda: measure_pyroot(args.file, args.subset),
            "decompress": lambda: measure_decompress(args.file),
        }[args.measure]()
        print(json.dumps(result))
        return

    path = _bench_file(args.file, args.lumis, args.th1, args.th2, args.th2_bins, args.compression)
    sel_path = _bench_file(
        None, args.lumis, args.sel_th1, args.sel_th2, args.th2_bins, args.compression
    )
    methods = [("decompress", path), ("ours_all", path), ("ours_all_1thread", path)]
    methods += [("ours_5me", path), ("sel_decompress", sel_path), ("sel_decompress_lean", sel_path)]
    methods += [("sel_ours", sel_path), ("sel_ours_1thread", sel_path)]
    if not args.skip_slow:
        methods += [("uproot_objects", path), ("pyroot_loop", path)]
    results = _run_all(methods, args.subset, args.repeat)
    report(results, path, sel_path)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def _bench_file(
    given: str | None, lumis: int, th1: int, th2: int, th2_bins: int, compression: int
) -> Path:
    suffix = "" if compression == 505 else f"_c{compression}"  # 505: the files cached so far
    name = f"bench_{lumis}ls_{th1}th1_{th2}th2_{th2_bins}{suffix}.root"
    path = Path(given) if given else CACHE / name
    if not path.exists():
        CACHE.mkdir(exist_ok=True)
        generate(path, lumis, th1, th2, th2_bins, compression)
    return path


def _run_all(methods: list[tuple[str, Path]], fraction: float, repeat: int) -> dict:
    """Every method ``repeat`` times, interleaved (load changes hit all alike); keep the best."""
    runs: dict[str, list[dict]] = {m: [] for m, _ in methods}
    for _ in range(repeat):
        for method, file in methods:
            runs[method].append(_child(method, str(file), fraction))
    results = {}
    for method, rs in runs.items():
        best = min(rs, key=lambda r: r["seconds"])
        best["all_seconds"] = [round(r["seconds"], 3) for r in rs]
        best["rate"] = best["histograms"] / best["seconds"]
        results[method] = best
        print(
            f"{method:20s} {best['histograms']:7d} hist  best {best['seconds']:6.3f} s "
            f"(all {best['all_seconds']})  {best['rate']:9,.0f} hist/s",
            flush=True,
        )
    return results


def report(results: dict, path: Path, sel_path: Path) -> None:
    r = results
    print(f"\nload average: {os.getloadavg()}, usable CPUs: {len(os.sched_getaffinity(0))}")
    print(
        f"file: {path.name}, {path.stat().st_size / 1e6:.0f} MB on disk, "
        f"{r['decompress']['raw_bytes'] / 1e6:.0f} MB of decompressed Value baskets"
    )
    ours = r["ours_all"]
    print(
        f"(a) full read: {ours['rate']:,.0f} hist/s (target >= 150k), 1 thread: "
        f"{r['ours_all_1thread']['rate']:,.0f}; cpu/wall {ours['cpu_seconds'] / ours['seconds']:.2f}"
    )
    print(f"(a)/(d) decompression only: {ours['rate'] / r['decompress']['rate']:6.0%}")
    if "uproot_objects" in r:
        print(f"(a)/(b) uproot per-object : {ours['rate'] / r['uproot_objects']['rate']:6.1f}x")
        print(f"(a)/(c) PyROOT GetEntry   : {ours['rate'] / r['pyroot_loop']['rate']:6.1f}x")
    sel, d = r["sel_ours"], r["sel_decompress"]
    print(
        f"selective read, {sel_path.name}: 5 of 100 MEs per LS, {sel['histograms']} histograms "
        f"from {d['baskets']} baskets ({d['raw_bytes'] / 1e6:.0f} MB decompressed)"
    )
    for name, bound in (
        ("uproot TBranch.basket", d),
        ("lean pread+decompress", r["sel_decompress_lean"]),
    ):
        print(
            f"  vs single-thread decompression of the same baskets ({name}, {bound['seconds']:.3f} s): "
            f"{bound['seconds'] / sel['seconds']:.2f}x faster (target >= 1.3x); 1 thread: "
            f"{bound['seconds'] / r['sel_ours_1thread']['seconds']:.2f}x"
        )
    print(
        f"  cpu/wall {sel['cpu_seconds'] / sel['seconds']:.2f} (threads), "
        f"1 thread {r['sel_ours_1thread']['cpu_seconds'] / r['sel_ours_1thread']['seconds']:.2f}"
    )
    five = r["ours_5me"]
    print(
        f"5 MEs: table {five['table_bytes'] / 1e6:.1f} MB, peak RSS growth "
        f"{five['peak_rss_delta'] / 1e6:.1f} MB = {five['peak_rss_delta'] / five['table_bytes']:.2f}x "
        "(target < 2x)"
    )


if __name__ == "__main__":
    main()
