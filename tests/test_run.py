"""Kedro end to end: the project registers its pipelines and the CI environment runs on the sample."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project_copy(tmp_path, monkeypatch) -> Path:
    """The project's configuration and raw data in a scratch folder, so outputs land there."""
    for name in ("pyproject.toml", "conf"):
        src = PROJECT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    shutil.copytree(PROJECT / "data" / "01_raw", tmp_path / "data" / "01_raw")
    (tmp_path / "src").mkdir()  # the package itself is imported from the installed project
    local = tmp_path / "conf" / "local"
    for p in local.glob("*"):  # a developer's own overrides must not leak into the test
        if p.name != ".gitkeep" and p.is_file():
            p.unlink()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "1")
    return tmp_path


def test_pipelines_are_registered():
    bootstrap_project(PROJECT)
    from kedro.framework.project import pipelines

    assert "data_extraction" in pipelines
    assert "__default__" in pipelines
    default = pipelines["__default__"]
    assert "extract_histograms" in {n.name for n in default.nodes}


@pytest.mark.slow
def test_ci_environment_end_to_end(project_copy):
    if not list((project_copy / "data" / "01_raw" / "dqmio").glob("*_ci.root")):
        pytest.skip("bundled CI sample not generated")
    bootstrap_project(project_copy)
    with KedroSession.create(project_path=project_copy, env="ci") as session:
        session.run()
    index = pd.read_parquet(project_copy / "data" / "02_intermediate" / "file_index.parquet")
    assert (index["status"] == "ok").all()
    assert all(Path(p).name.endswith("_ci.root") for p in index["path"])
    histograms = pd.read_parquet(project_copy / "data" / "02_intermediate" / "histograms.parquet")
    assert histograms["me"].nunique() == 7
    assert sorted(histograms["run"].unique()) == sorted(r for runs in index["runs"] for r in runs)
