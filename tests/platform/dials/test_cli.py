"""The documented command of the local DIALS server serves on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys

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
