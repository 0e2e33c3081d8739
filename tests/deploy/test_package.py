"""`kedro package`: a wheel and a configuration archive that run the pipeline elsewhere, with
`python -m dqm_playground_ds --conf-source=<archive> --env=ci`."""

from __future__ import annotations

import shutil
import sys
import tarfile

import pandas as pd
import pytest

from tests.deploy.buildsteps import PROJECT, ci_sample, make_venv, run


@pytest.mark.slow
def test_kedro_package_runs_from_the_wheel_and_the_conf_archive(tmp_path):
    project = tmp_path / "project"  # a scratch copy: `kedro package` writes dist/ in the project
    project.mkdir()
    for name in ("pyproject.toml", "README.md", ".telemetry"):
        shutil.copy(PROJECT / name, project / name)
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    shutil.copytree(
        PROJECT / "src" / "dqm_playground_ds", project / "src" / "dqm_playground_ds", ignore=skip
    )
    shutil.copytree(PROJECT / "conf", project / "conf")
    (project / "conf" / "local" / "credentials.yml").write_text("playground: {token: secret}\n")

    run([sys.executable, "-m", "kedro", "package"], cwd=project)
    (wheel,) = (project / "dist").glob("dqm_playground_ds-*.whl")
    archive = project / "dist" / "conf-dqm_playground_ds.tar.gz"
    with tarfile.open(archive) as tar:
        members = set(tar.getnames())
    assert {"conf/base/catalog.yml", "conf/ci/catalog.yml", "conf/argo/argo.yml"} <= members
    assert "conf/local/credentials.yml" not in members  # local secrets never travel

    python = make_venv(tmp_path / "venv")
    run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", str(wheel)],
        cwd=tmp_path,
    )
    where = run([str(python), "-c", "import dqm_playground_ds; print(dqm_playground_ds.__file__)"],
                cwd=tmp_path)  # fmt: skip
    assert where.startswith(str(tmp_path / "venv")), where  # the wheel, not the editable install
    elsewhere = tmp_path / "elsewhere"  # no pyproject.toml, no conf/: only data
    ci_sample(elsewhere / "data")
    run(
        [str(python), "-m", "dqm_playground_ds", f"--conf-source={archive}", "--env=ci",
         "--pipeline", "data_extraction"],
        cwd=elsewhere,
    )  # fmt: skip
    index = pd.read_parquet(elsewhere / "data" / "02_intermediate" / "file_index.parquet")
    assert len(index) == 2 and (index["status"] == "ok").all()
    histograms = pd.read_parquet(elsewhere / "data" / "02_intermediate" / "histograms.parquet")
    assert histograms["me"].nunique() == 7
