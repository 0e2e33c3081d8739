"""The documented command of the local DIALS server serves on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests


def test_the_documented_command_serves_the_loaded_histograms(tmp_path, dials_table):
    path = tmp_path / "histograms.parquet"
    dials_table.to_parquet(path)
    cmd = [sys.executable, "-m", "dqm_playground_ds.platform.dials.server", "--load", str(path),
           "--port", "0", "--token", "t", "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("serving http://127.0.0.1:") and line.endswith("/api/v1/"), line
        url = line.split()[1]
        mes = requests.get(url + "mes/", headers={"Authorization": "Bearer t"}, timeout=10).json()
        assert sum(m["count"] for m in mes) == int((dials_table["lumi"] > 0).sum())
        assert requests.get(url + "mes/", timeout=10).status_code == 403
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_several_server_processes_share_the_socket_and_end_with_it(tmp_path, dials_table):
    """``--workers 2``: forked workers on one socket (as gunicorn serves DIALS), none left over."""
    import time

    path = tmp_path / "histograms.parquet"
    dials_table.to_parquet(path)
    cmd = [sys.executable, "-m", "dqm_playground_ds.platform.dials.server", "--load", str(path),
           "--port", "0", "--token", "t", "--log-level", "warning", "--workers", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split()[1]
        task = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        children = [int(p) for p in task.read_text().split()]
        assert len(children) == 1
        for _ in range(10):  # fresh connections: whichever process accepts one answers it
            r = requests.get(url + "run/count/", headers={"Authorization": "Bearer t"}, timeout=10)
            assert r.json()["count"] == dials_table["run"].nunique()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{children[0]}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{children[0]}").exists()
