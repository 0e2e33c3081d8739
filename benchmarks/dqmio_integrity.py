"""Benchmark: what the per-histogram integrity check costs, and what it catches, in one run.

    python benchmarks/dqmio_integrity.py              # sample + fixtures (~1 min)
    pip install -e ".[root]" && python benchmarks/dqmio_integrity.py --large   # + the 110k file

Cost: every file is read with ``read_dqmio(..., verify=True)`` and ``verify=False`` alternately,
best of ``--repeat`` each, in this process; the ratio verify/plain is printed per file and over
all. With ``--large`` the 2000 LS x 55 ME file of ``dqmio_read.py`` is written (once, with ROOT,
cached in benchmarks/.cache) and measured too.

Detection: ``--flips`` single-bit flips per file at random positions inside compressed ``Value``
baskets (``tests/faults/flips.py``); each is detected (DQMIOError), harmless (the table read is
identical) or silent (a different table without a word).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT_DIR = HERE.parent
sys.path.insert(0, str(ROOT_DIR))  # tests.faults.flips

from dqm_playground_ds.readers.dqmio import read_dqmio  # noqa: E402
from tests.faults.flips import flip_outcomes  # noqa: E402

SAMPLE = ROOT_DIR / "data" / "01_raw" / "dqmio"
FIXTURES = ROOT_DIR / "tests" / "fixtures" / "dqmio"


def best_of(path: Path, verify: bool, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        read_dqmio(path, include_run_level=True, verify=verify)
        best = min(best, time.perf_counter() - started)
    return best


def large_file() -> Path:
    sys.path.insert(0, str(HERE))
    from dqmio_read import CACHE, generate

    path = CACHE / "bench_2000ls.root"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        generate(path, 2000, 50, 5, 50)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--flips", type=int, default=150)
    parser.add_argument("--large", action="store_true", help="also the 110k-histogram file")
    args = parser.parse_args()
    files = [
        *sorted(SAMPLE.glob("*.root")),
        *(p for p in sorted(FIXTURES.glob("*.root")) if p.name != "not_dqmio.root"),
    ]
    if args.large:
        files.append(large_file())

    print(f"## cost: read_dqmio verify=True vs verify=False (best of {args.repeat})\n")
    print("| file | histograms | plain s | verified s | ratio |")
    print("|---|---:|---:|---:|---:|")
    total_plain = total_verified = 0.0
    for path in files:
        n = len(read_dqmio(path, include_run_level=True))
        plain, verified = best_of(path, False, args.repeat), best_of(path, True, args.repeat)
        total_plain, total_verified = total_plain + plain, total_verified + verified
        print(f"| {path.name} | {n:,} | {plain:.4f} | {verified:.4f} | {verified / plain:.2f} |")
    print(f"| **all** | | {total_plain:.4f} | {total_verified:.4f} | "
          f"**{total_verified / total_plain:.2f}** |")  # fmt: skip

    print(f"\n## detection: {args.flips} single-bit flips per file inside Value baskets\n")
    print("| file | detected | harmless | silent | crash | detected % |")
    print("|---|---:|---:|---:|---:|---:|")
    totals = {"detected": 0, "harmless": 0, "silent": 0, "crash": 0}
    flip_files = [p for p in files if p.stat().st_size < 5_000_000]  # the large file: too slow
    with tempfile.TemporaryDirectory() as tmp:
        for path in flip_files:
            outcomes, _ = flip_outcomes(path, Path(tmp), args.flips, seed=15)
            for k in totals:
                totals[k] += outcomes[k]
            share = 100 * outcomes["detected"] / args.flips
            print(f"| {path.name} | {outcomes['detected']} | {outcomes['harmless']} | "
                  f"{outcomes['silent']} | {outcomes['crash']} | {share:.1f} |")  # fmt: skip
    n = args.flips * len(flip_files)
    print(f"| **all** | {totals['detected']} | {totals['harmless']} | {totals['silent']} | "
          f"{totals['crash']} | **{100 * totals['detected'] / n:.1f}** |")  # fmt: skip


if __name__ == "__main__":
    main()
