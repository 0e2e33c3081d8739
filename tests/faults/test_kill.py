"""Item 6: ``kill -9`` of the extraction parent takes its workers with it; a killed worker does not
stop the run; temporaries a killed writer left behind are removed by the next run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dqm_playground_ds.atomic import remove_stale_temporaries
from dqm_playground_ds.extraction import DONE_DIR, Request, extract_many
from dqm_playground_ds.sources import DQMIOFiles
from tests.faults.conftest import ME, SAMPLE, SMALL


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie is dead, only not yet reaped (pid 1 of a container may not)


def _many_inputs(folder: Path, n: int) -> None:
    folder.mkdir()
    for i in range(n):
        shutil.copy(SAMPLE / SMALL[i % 2], folder / f"f{i:03d}.root")


def test_kill_9_of_the_parent_kills_its_workers(tmp_path):
    inputs = tmp_path / "in"
    _many_inputs(inputs, 80)
    cli = [sys.executable, "-m", "dqm_playground_ds.extraction", str(inputs)]
    cli += ["--out", str(tmp_path / "out"), "--workers", "2"]
    parent = subprocess.Popen(cli, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while len(workers) < 2 and parent.poll() is None:
            assert time.monotonic() < deadline, "no workers started"
            workers = _children(parent.pid)
            time.sleep(0.01)
        assert parent.poll() is None, "the extraction finished before it could be killed"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(w) for w in workers):
            assert time.monotonic() < deadline, f"workers {workers} outlived their parent"
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()
    # the next run finishes the job, and leaves no temporary behind
    subprocess.run([*cli[:-1], "1"], check=True, capture_output=True, timeout=300)
    out = tmp_path / "out"
    assert not list(out.glob(".tmp-*")) and not list((out / DONE_DIR).glob(".tmp-*"))
    assert pd.read_parquet(out)["source"].nunique() == 80


@dataclass
class KillsItsWorker(DQMIOFiles):
    """A real source whose reader process is killed (SIGKILL, as the OOM killer does) while it
    reads ``victim``: once if ``once`` (a flag file remembers), else every time."""

    victim: str = ""
    flag: str = ""
    once: bool = True

    def read(self, item, me, include_run_level, missing="raise"):
        if item == self.victim and not (self.once and os.path.exists(self.flag)):
            Path(self.flag).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return super().read(item, me, include_run_level, missing)


def test_a_worker_killed_once_costs_a_reread_not_the_run(tmp_path):
    inputs = tmp_path / "in"
    _many_inputs(inputs, 6)
    victim = str(inputs / "f002.root")
    source = KillsItsWorker(path=str(inputs), victim=victim, flag=str(tmp_path / "killed"))
    index = extract_many(source, tmp_path / "out", Request(me=ME), workers=2, progress=False)
    assert (tmp_path / "killed").exists()  # it really was killed
    assert (index["status"] == "ok").all()
    assert pd.read_parquet(tmp_path / "out")["source"].nunique() == 6


def test_an_input_that_always_kills_its_worker_is_a_bad_row(tmp_path):
    inputs = tmp_path / "in"
    _many_inputs(inputs, 5)
    victim = str(inputs / "f001.root")
    source = KillsItsWorker(path=str(inputs), victim=victim, flag=str(tmp_path / "k"), once=False)
    index = extract_many(source, tmp_path / "out", Request(me=ME), workers=2, progress=False)
    index = index.set_index("path")
    assert index.loc[victim, "status"] == "bad"
    assert "worker process reading it died" in index.loc[victim, "error"]
    assert (index.drop(victim)["status"] == "ok").all()


WRITER = """
import sys, time
from pathlib import Path
from dqm_playground_ds.atomic import atomic_write

def slow(tmp):
    Path(tmp).write_bytes(b"half a partition")
    print("writing", flush=True)
    time.sleep(60)

atomic_write(Path(sys.argv[1]) / "part-x.parquet", slow)
"""


def test_temporaries_of_a_killed_writer_are_removed_on_the_next_run(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "writing"
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(10)
    finally:
        if writer.poll() is None:
            writer.kill()
    left = list(out.glob(".tmp-*"))
    assert len(left) == 1 and not (out / "part-x.parquet").exists()
    mine = out / f".tmp-{os.getpid()}@{os.uname().nodename}-live"  # a live writer's: kept
    mine.write_bytes(b"")
    inputs = tmp_path / "in"
    _many_inputs(inputs, 1)
    extract_many(DQMIOFiles(path=str(inputs)), out, progress=False)
    assert not left[0].exists() and mine.exists()
    assert remove_stale_temporaries(out) == []
