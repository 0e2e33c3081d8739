"""A scratch copy of the project (configuration, raw sample, notebooks) for tests that run Kedro
commands, so that their outputs (data/, build/, .viz/) never land in the working tree."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

PROJECT = Path(__file__).resolve().parents[1]


def copy_project(dest: Path, *, raw_data: bool = False, notebooks: bool = False) -> Path:
    """Copy pyproject.toml and conf/ (without a developer's conf/local files) into ``dest``;
    the package itself is imported from the installed project."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT / "pyproject.toml", dest / "pyproject.toml")
    shutil.copytree(PROJECT / "conf", dest / "conf")
    for p in (dest / "conf" / "local").glob("*"):
        if p.is_file() and p.name != ".gitkeep":
            p.unlink()
    (dest / "src").mkdir(exist_ok=True)
    if raw_data:
        shutil.copytree(PROJECT / "data" / "01_raw", dest / "data" / "01_raw")
    if notebooks:
        shutil.copytree(
            PROJECT / "notebooks", dest / "notebooks", ignore=shutil.ignore_patterns(".ipynb*")
        )
    return dest


# The CI sample with the cheap strategies: the predictions the notebooks explore, in seconds.
# (The plots of the sample are left to `kedro run --env=ci` in .ci/run; the visualization nodes are
# tested on generated inputs in tests/pipelines/data_visualization.)
SMALL_RUN: dict[str, Any] = {
    "data_science": {
        "active_strategies": ["reference", "reference_gmm"],
        "injection": {"n_per_type": 20},
        "evaluation": {"n_bootstrap": 20},
    },
}
SMALL_RUN_PIPELINES = ("data_extraction", "data_processing", "data_science")
_small_runs: dict[int, Path] = {}


def small_ci_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch project (raw sample and notebooks) where the CI environment has run with
    :data:`SMALL_RUN`; made once per test session and shared by the modules that read it."""
    key = id(tmp_path_factory)
    if key not in _small_runs:
        root = copy_project(tmp_path_factory.mktemp("ci_run"), raw_data=True, notebooks=True)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("KEDRO_DISABLE_TELEMETRY", "1")
            mp.chdir(root)
            bootstrap_project(root)
            with KedroSession.create(project_path=root, env="ci", runtime_params=SMALL_RUN) as s:
                s.run(pipeline_names=list(SMALL_RUN_PIPELINES))
        _small_runs[key] = root
    return _small_runs[key]
