"""Single-bit flips inside the ``Value`` baskets of real DQMIO files, and what the reader makes of them.

Shared by the fault tests and ``benchmarks/dqmio_integrity.py``: a flip is *detected* (the reader
raises ``DQMIOError`` naming the file), *harmless* (the table read is identical to the original) or
*silent* (a different table, no word): the one outcome that must not happen. Anything else is a crash.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import uproot

from dqm_playground_ds.readers.dqmio import DQMIOError, read_dqmio
from dqm_playground_ds.readers.dqmio.layout import HIST_TYPES, TYPE_NAMES


def value_basket_ranges(path: Path) -> list[tuple[int, int]]:
    """(start, end) file offsets of the compressed payload of every histogram ``Value`` basket."""
    ranges = []
    with uproot.open(path) as f:
        keys = {k.split(";")[0] for k in f.keys(recursive=False)}
        for code in HIST_TYPES:
            name = TYPE_NAMES[code]
            if name not in keys:
                continue
            branch = f[name]["Value"]
            seeks = branch.member("fBasketSeek")[: branch.num_baskets]
            sizes = branch.member("fBasketBytes")[: branch.num_baskets]
            for seek, size in zip(seeks, sizes, strict=True):
                if seek <= 0 or seek + size > f.file.source.num_bytes:
                    continue  # a basket kept inside the tree's own record, not a key of its own
                key = f.file.chunk(int(seek), int(seek) + 64).raw_data.tobytes()
                nbytes = int.from_bytes(key[0:4], "big")
                keylen = int.from_bytes(key[14:16], "big")
                if nbytes == size:
                    ranges.append((int(seek) + keylen, int(seek) + nbytes))
    return ranges


def _same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    if len(a) != len(b) or list(a.columns) != list(b.columns):
        return False
    for col in a.columns:
        if col == "source":
            continue
        if col == "data":
            if not all(
                np.array_equal(x, y, equal_nan=True) for x, y in zip(a[col], b[col], strict=True)
            ):
                return False
        elif not a[col].equals(b[col]):
            return False
    return True


def flip_outcomes(
    original: Path, work: Path, n: int, seed: int = 0
) -> tuple[Counter[str], list[str]]:
    """Flip ``n`` random single bits (one per copy) inside Value baskets; count the outcomes."""
    expected = read_dqmio(original, include_run_level=True)
    ranges = value_basket_ranges(original)
    sizes = np.array([e - s for s, e in ranges])
    rng = np.random.default_rng(seed)
    outcomes: Counter[str] = Counter()
    notes = []
    copy = work / f"flipped-{original.name}"
    blob = original.read_bytes()
    for _ in range(n):
        k = int(rng.choice(len(ranges), p=sizes / sizes.sum()))
        offset = ranges[k][0] + int(rng.integers(sizes[k]))
        bit = int(rng.integers(8))
        data = bytearray(blob)
        data[offset] ^= 1 << bit
        copy.write_bytes(bytes(data))
        try:
            got = read_dqmio(copy, include_run_level=True)
        except DQMIOError:
            outcomes["detected"] += 1
            continue
        except Exception as exc:  # a crash is an outcome to count
            outcomes["crash"] += 1
            notes.append(f"crash at byte {offset} bit {bit}: {type(exc).__name__}: {exc}")
            continue
        if _same(expected, got):
            outcomes["harmless"] += 1
        else:
            outcomes["silent"] += 1
            notes.append(f"silent at byte {offset} bit {bit}")
    copy.unlink(missing_ok=True)
    return outcomes, notes


def copy_fixture(src: Path, dst_dir: Path) -> Path:
    dst = dst_dir / src.name
    shutil.copy(src, dst)
    return dst
