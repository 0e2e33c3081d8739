"""notebooks/ run top to bottom (nbclient + ipykernel) in a scratch copy of the project where a
small CI pipeline run has produced the outputs they explore."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.scratch import PROJECT, small_ci_run

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((PROJECT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return small_ci_run(tmp_path_factory)


def test_notebooks_are_committed_without_outputs():
    assert NOTEBOOKS, "no notebook in notebooks/"
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell["outputs"] and cell["execution_count"] is None, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(project, path, monkeypatch):
    monkeypatch.setenv("KEDRO_ENV", "ci")  # the kernel reads the run's environment
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "1")
    nb = nbformat.read(project / "notebooks" / path.name, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(project / "notebooks")}},
    )
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    images = sum(
        "image/png" in out.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )
    assert images >= 7  # every plotting cell showed its figure
    texts = "".join(
        out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
    )
    assert "environment: ci" in texts and "not produced yet" not in texts
