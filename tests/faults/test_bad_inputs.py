"""Items 2 and 9: every per-input failure is a ``bad`` row naming the file (and line), never a crash;
inputs that are no files (dangling or looping symlinks, directories) are recorded, not dropped."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import uproot

from dqm_playground_ds.extraction import Request, extract_many
from dqm_playground_ds.sources import DQMIOFiles, LegacyCSVFiles
from tests.faults.conftest import FIXTURES, ME, SAMPLE_CSV, SMALL


def _by_path(index: pd.DataFrame) -> pd.DataFrame:
    return index.set_index("path")


def _without_value_branch(path: Path) -> None:
    """Replace the file's TH1Fs tree by one with FullName and Flags but no Value branch."""
    with uproot.open(path) as f:
        arrays = f["TH1Fs"].arrays(["FullName", "Flags"], library="ak")
    with uproot.update(path) as f:
        f["TH1Fs"] = {"FullName": arrays["FullName"], "Flags": np.asarray(arrays["Flags"])}


def test_tree_without_value_branch_is_a_bad_row(sample_dir, tmp_path):
    broken = sample_dir / "no_value.root"
    shutil.copy(FIXTURES / "all_types.root", broken)
    _without_value_branch(broken)
    index = _by_path(extract_many(DQMIOFiles(path=str(sample_dir)), tmp_path / "o", progress=False))
    assert index.loc[str(broken), "status"] == "bad"
    assert "TH1Fs has no readable Value branch" in index.loc[str(broken), "error"]
    assert str(broken) in index.loc[str(broken), "error"]
    assert (index.drop(str(broken))["status"] == "ok").all()


def test_corrupt_basket_offsets_are_a_bad_row(sample_dir, tmp_path):
    """Two single-bit flips that crashed the run with ``repeats may not contain negative values``."""
    blob = (FIXTURES / "all_types.root").read_bytes()
    for offset, bit in ((11797, 1), (13986, 0)):
        data = bytearray(blob)
        data[offset] ^= 1 << bit
        (sample_dir / f"flip{offset}.root").write_bytes(bytes(data))
    index = _by_path(extract_many(DQMIOFiles(path=str(sample_dir)), tmp_path / "o", progress=False))
    for offset in (11797, 13986):
        row = index.loc[str(sample_dir / f"flip{offset}.root")]
        assert row["status"] == "bad" and "corrupt entry offsets" in row["error"]
    assert (index.loc[[str(sample_dir / n) for n in SMALL], "status"] == "ok").all()


def _csv_variants(folder: Path) -> dict[str, tuple[Path, str]]:
    lines = (SAMPLE_CSV / "ZeroBias_2018A_DataFrame_1D_sample.csv").read_text().splitlines()
    head, rows = lines[0], lines[1:]
    fields = rows[3].split('"')  # the histo field is the one quoted field
    tail = fields[2].split(",")  # "", entries, Xmax, Xmin, Xbins, Ymax, Ymin, Ybins
    tail[4] = "abc"
    cases = {
        "extra_field": ([*rows[:4], rows[4] + ",1,2,3", *rows[5:8]], "line 6"),
        "open_quote": ([*rows[:4], rows[4].replace('"[', "[", 1), *rows[5:8]], "line 6"),
        "xbins_text": (
            [*rows[:3], '"'.join([fields[0], fields[1], ",".join(tail)]), *rows[4:8]],
            "line 5: Xbins is 'abc'",
        ),
        "run_text": ([*rows[:2], "31x322" + rows[2][6:], *rows[3:8]], "line 4: fromrun is"),
    }
    out = {}
    for name, (body, where) in cases.items():
        path = folder / f"{name}.csv"
        path.write_text("\n".join([head, *body]) + "\n")
        out[name] = (path, where)
    return out


def test_malformed_legacy_csv_rows_are_bad_rows_naming_the_line(tmp_path):
    folder = tmp_path / "csv"
    folder.mkdir()
    shutil.copy(SAMPLE_CSV / "ZeroBias_2018A_DataFrame_1D_sample.csv", folder / "good.csv")
    cases = _csv_variants(folder)
    index = _by_path(extract_many(LegacyCSVFiles(path=str(folder)), tmp_path / "o", progress=False))
    assert index.loc[str(folder / "good.csv"), "status"] == "ok"
    for path, where in cases.values():
        assert index.loc[str(path), "status"] == "bad", path
        assert str(path) in index.loc[str(path), "error"] and where in index.loc[str(path), "error"]


def test_bad_rows_are_remembered_so_a_rerun_does_not_crash_either(sample_dir, tmp_path):
    broken = sample_dir / "no_value.root"
    shutil.copy(FIXTURES / "all_types.root", broken)
    _without_value_branch(broken)
    source, out = DQMIOFiles(path=str(sample_dir)), tmp_path / "o"
    first = extract_many(source, out, progress=False)
    second = extract_many(source, out, progress=False)
    assert first["status"].tolist() == second["status"].tolist()
    assert second["seconds"].tolist() == first["seconds"].tolist()  # from the markers: not re-read


def test_symlinks_and_directories_are_recorded(sample_dir, tmp_path):
    (sample_dir / "dangling.root").symlink_to(tmp_path / "nowhere.root")
    (sample_dir / "loop.root").symlink_to(sample_dir / "loop.root")
    (sample_dir / "folder.root").mkdir()
    index = _by_path(
        extract_many(
            DQMIOFiles(path=str(sample_dir)), tmp_path / "o", Request(me=ME), progress=False
        )
    )
    assert "dangling symlink" in index.loc[str(sample_dir / "dangling.root"), "error"]
    assert "symlink loop" in index.loc[str(sample_dir / "loop.root"), "error"]
    assert "is a directory" in index.loc[str(sample_dir / "folder.root"), "error"]
    assert (index.loc[[str(sample_dir / n) for n in SMALL], "status"] == "ok").all()
    assert os.path.islink(sample_dir / "loop.root")  # recorded, left alone
