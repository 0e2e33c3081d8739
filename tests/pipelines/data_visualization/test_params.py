"""``params:data_visualization``: one set of defaults (the model's, stated again in conf/base), and
a typo stops ``kedro run`` before any node runs, naming the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from dqm_playground_ds.pipelines.data_visualization.params import DataVisualizationParams
from tests.scratch import copy_project

CONF = Path(__file__).resolve().parents[3] / "conf" / "base"


def test_conf_base_states_the_models_defaults():
    given = yaml.safe_load((CONF / "parameters_data_visualization.yml").read_text())
    assert given["data_visualization"] == DataVisualizationParams().model_dump()


def test_values_are_checked_and_frozen():
    with pytest.raises(ValidationError, match="detial_runs"):
        DataVisualizationParams.model_validate({"detial_runs": {"n_most_flagged": 2}})
    with pytest.raises(ValidationError, match="method"):
        DataVisualizationParams.model_validate({"correlation": {"method": "cosine"}})
    with pytest.raises(ValidationError, match="max_rows"):
        DataVisualizationParams.model_validate({"run_overview": {"max_rows": 0}})
    with pytest.raises(ValidationError, match="frozen"):
        DataVisualizationParams().report_strategy = "x"  # type: ignore[misc]
    p = DataVisualizationParams.model_validate({"detail_runs": {"runs": [315322]}})
    assert p.detail_runs.runs == [315322] and p.detail_runs.n_most_flagged == 5


@pytest.mark.slow
def test_an_unknown_key_stops_kedro_run_naming_it(tmp_path):
    root = copy_project(tmp_path / "project")
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    cli = [sys.executable, "-m", "kedro", "run", "--pipeline", "data_visualization"]
    done = subprocess.run(
        [*cli, "--params", "data_visualization.detial_runs.n_most_flagged=2"],
        check=False,
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "detial_runs" in out and "DataVisualizationParams" in out, out[-3000:]
    assert "Running node" not in out and not (root / "data" / "08_reporting").exists()
