"""kedro-viz: `kedro viz build` works on the project and its `api/main` shows every registered
pipeline, named nodes only, and a layer for every dataset the catalogs declare."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from kedro.framework.startup import bootstrap_project

from tests.scratch import PROJECT, copy_project

CATALOGS = sorted((PROJECT / "conf" / "base").glob("catalog*.yml"))


def _declared() -> dict[str, dict]:
    """Every catalog entry (names and factory patterns) of conf/base, YAML anchors left out."""
    entries: dict[str, dict] = {}
    for path in CATALOGS:
        for name, entry in (yaml.safe_load(path.read_text()) or {}).items():
            if not name.startswith("_") and isinstance(entry, dict):
                entries[name] = entry
    return entries


def _matches(pattern: str, name: str) -> bool:
    regex = "^" + re.sub(r"\\\{[^}]*\\\}", ".+", re.escape(pattern)) + "$"
    return re.match(regex, name) is not None


@pytest.fixture(scope="module")
def main(tmp_path_factory) -> dict:
    root = copy_project(tmp_path_factory.mktemp("viz"))
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    cli = [sys.executable, "-m", "kedro", "viz", "build"]
    done = subprocess.run(
        cli, check=False, cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (root / "build" / "index.html").is_file()
    return json.loads((root / "build" / "api" / "main").read_text())


@pytest.fixture(scope="module")
def registered() -> dict:
    bootstrap_project(PROJECT)
    from kedro.framework.project import pipelines

    return dict(pipelines)


def test_every_registered_pipeline_is_shown(main, registered):
    shown = {p["id"] for p in main["pipelines"]}
    assert shown == set(registered)
    assert {"data_extraction", "data_visualization", "__default__"} <= shown


def test_every_node_has_a_name(main, registered):
    for name, pipe in registered.items():
        anonymous = [str(n) for n in pipe.nodes if n._name is None]
        assert not anonymous, f"{name}: nodes without name= {anonymous}"
    tasks = [n for n in main["nodes"] if n["type"] == "task"]
    expected = {n.name for n in registered["__default__"].nodes}
    assert {t["name"] for t in tasks} == expected
    for t in tasks:
        assert not re.search(r"__[0-9a-f]{8}$|\(|->", t["name"]), t["name"]


def test_every_declared_dataset_has_a_layer(main):
    declared = _declared()
    missing = [
        name
        for name, entry in declared.items()
        if not ((entry.get("metadata") or {}).get("kedro-viz") or {}).get("layer")
    ]
    assert not missing, f"catalog entries without metadata: kedro-viz: layer: {missing}"
    data = [n for n in main["nodes"] if n["type"] == "data"]
    shown = [n for n in data if any(_matches(k, n["name"]) for k in declared)]
    assert {"histograms", "lumisection_predictions", "report_html", "roc_plots"} <= {
        n["name"] for n in shown
    }
    assert not [n["name"] for n in shown if not n.get("layer")]


def test_layers_are_ordered(main):
    """A layer cycle (e.g. a `models` dataset feeding `primary`) makes kedro-viz drop all layers."""
    assert main["layers"][:2] == ["raw", "intermediate"]
    assert main["layers"][-1] == "reporting"
