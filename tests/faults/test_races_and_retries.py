"""Items 4 and 5: a file replaced while it is read is read again (never old rows under a new
fingerprint); a bad status whose cause was environmental, or whose file changed, is retried."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from dqm_playground_ds.extraction import DONE_DIR, Request, extract_many, partition_id
from dqm_playground_ds.readers.dqmio import read_dqmio
from dqm_playground_ds.sources import DQMIOFiles
from tests.faults.conftest import ME, SAMPLE, SMALL, truncate


@dataclass
class ReplacedWhileRead(DQMIOFiles):
    """A real DQMIO source; the first ``times`` reads of ``victim`` see the file swapped under them
    (``os.replace`` by another file, as a copy job finishing would do) right after reading."""

    victim: str = ""
    replacement: str = ""
    times: int = 1

    def read(self, item, me, include_run_level, missing="raise"):
        table = super().read(item, me, include_run_level, missing)
        if item == self.victim and self.times > 0:
            self.times -= 1
            tmp = Path(item).with_suffix(".swap")
            shutil.copy(self.replacement, tmp)
            os.replace(tmp, item)
        return table


def test_a_file_replaced_while_read_is_read_again(sample_dir, tmp_path):
    victim = sample_dir / SMALL[0]
    new = SAMPLE / "ZeroBias_Run2018A_DQMIO_R315322_LS0096-0190.root"
    source = ReplacedWhileRead(path=str(sample_dir), victim=str(victim), replacement=str(new))
    out = tmp_path / "o"
    index = extract_many(source, out, Request(me=ME), progress=False).set_index("path")
    assert index.loc[str(victim), "status"] == "ok"
    rows = pd.read_parquet(out / f"part-{partition_id(str(victim))}.parquet")
    assert set(rows["run"]) == {315322}  # the new file's rows, not the old file's
    assert len(rows) == len(read_dqmio(new, me=ME))
    marker = json.loads((out / DONE_DIR / f"{partition_id(str(victim))}.json").read_text())
    assert marker["fingerprint"]["size"] == new.stat().st_size
    # and nothing is read again: marker and file agree
    again = extract_many(DQMIOFiles(path=str(sample_dir)), out, Request(me=ME), progress=False)
    assert again.set_index("path").loc[str(victim), "seconds"] == index.loc[str(victim), "seconds"]


def test_a_file_that_keeps_changing_is_recorded_nowhere_and_read_next_run(sample_dir, tmp_path):
    victim = sample_dir / SMALL[0]
    other = sample_dir / SMALL[1]
    source = ReplacedWhileRead(
        path=str(sample_dir), victim=str(victim), replacement=str(other), times=10
    )
    out = tmp_path / "o"
    extract_many(DQMIOFiles(path=str(sample_dir)), out, Request(me=ME), progress=False)
    index = extract_many(source, out, Request(me=ME), progress=False, retry_bad=True)
    # same fingerprint on the first run would skip it; force a re-read through a changed file
    shutil.copy(SAMPLE / SMALL[0], victim)
    index = extract_many(source, out, Request(me=ME), progress=False).set_index("path")
    assert index.loc[str(victim), "status"] == "bad"
    assert "changed while it was read" in index.loc[str(victim), "error"]
    assert not (out / f"part-{partition_id(str(victim))}.parquet").exists()
    assert not (out / DONE_DIR / f"{partition_id(str(victim))}.json").exists()
    settled = extract_many(DQMIOFiles(path=str(sample_dir)), out, Request(me=ME), progress=False)
    assert settled.set_index("path").loc[str(victim), "status"] == "ok"


def test_a_bad_file_fixed_by_replacement_is_read_again_without_retry_bad(sample_dir, tmp_path):
    victim = sample_dir / SMALL[0]
    truncate(victim)
    out = tmp_path / "o"
    source = DQMIOFiles(path=str(sample_dir))
    assert (
        extract_many(source, out, progress=False).set_index("path").loc[str(victim), "status"]
        == "bad"
    )
    shutil.copy(SAMPLE / SMALL[0], victim)  # the fingerprint changes
    index = extract_many(source, out, progress=False).set_index("path")
    assert index.loc[str(victim), "status"] == "ok"


def _unprivileged() -> list[str]:
    """A command prefix under which file permissions apply (root drops its override capability)."""
    if os.getuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be enforced")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--"]


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_permission_error_fixed_later_is_retried(tmp_path):
    """A real permission error, fixed by the operator: read again without ``retry_bad``."""
    prefix = _unprivileged()
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for name in SMALL:
        shutil.copy(SAMPLE / name, inputs / name)
    locked = inputs / SMALL[0]
    locked.chmod(0o000)
    cli = [*prefix, sys.executable, "-m", "dqm_playground_ds.extraction", str(inputs)]
    cli += ["--out", str(out), "--workers", "1", "--index", str(tmp_path / "index.parquet")]

    def run() -> pd.DataFrame:
        subprocess.run(cli, check=True, capture_output=True, timeout=120)
        return pd.read_parquet(tmp_path / "index.parquet").set_index("path")

    index = run()
    assert index.loc[str(locked), "status"] == "bad"
    assert "Permission" in index.loc[str(locked), "error"]
    assert "read again on the next run" in index.loc[str(locked), "error"]
    locked.chmod(0o644)  # the operator fixes it; no retry_bad needed
    index = run()
    assert index.loc[str(locked), "status"] == "ok"


def test_corrupt_files_are_not_retried_without_a_change(sample_dir, tmp_path):
    victim = sample_dir / SMALL[0]
    truncate(victim)
    out, source = tmp_path / "o", DQMIOFiles(path=str(sample_dir))
    first = extract_many(source, out, progress=False).set_index("path")
    second = extract_many(source, out, progress=False).set_index("path")
    assert second.loc[str(victim), "seconds"] == first.loc[str(victim), "seconds"]  # not re-read
