"""The DIALS package of a frozen two_level model: its handler, run in a fresh virtual environment
without this project (only numpy from the package index), scores the bundled sample like the
pipeline."""

from __future__ import annotations

import ast
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from dqm_playground_ds.deploy import dials_model
from dqm_playground_ds.deploy.dials_model import PackageError, build_package, main, verify
from dqm_playground_ds.models import load_model
from dqm_playground_ds.pipelines.model_export.nodes import freeze_models
from tests.sample_training import train

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "v1" / "mixed"


@pytest.fixture(scope="module")
def trained():
    return train(["two_level", "reference"])


@pytest.fixture(scope="module")
def frozen(trained):
    return freeze_models(trained.models, trained.preprocessor, trained.predictions, {},
                         trained.science_params)  # fmt: skip


@pytest.fixture(scope="module")
def model(frozen):
    return frozen["two_level"]


@pytest.fixture(scope="module")
def package(model, tmp_path_factory):
    return build_package(model, tmp_path_factory.mktemp("dials") / "two_level")


def test_package_layout_and_template(package, model):
    assert sorted(p.name for p in (package / "model").iterdir()) == [
        "app.py", "model.json", "model.npz", "requirements.txt"]  # fmt: skip
    doc = yaml.safe_load((package / "template.yaml").read_text())
    (resource,) = doc["Resources"].values()
    props = resource["Properties"]
    assert [i["MonitoringElement"] for i in props["InputSignature"]] == model.preprocessor.mes_
    assert {o["Name"] for o in props["OutputSignature"]} == {"score", "flag"}
    assert props["MetricKey"] == "score"
    assert props["Conditions"]["MinRun"] == max(model.meta["training"]["runs"]) + 1
    assert (package / props["CodeUri"] / "app.py").is_file()
    assert (package / props["ModelUri"]).is_file()
    dims = {i["Name"]: i["Dims"] for i in props["InputSignature"]}
    assert (
        dims["charge_PXLayer_1"] == [-1, 100]
        and len(dims["clusterposition_zphi_ontrack_PXLayer_1"]) == 3
    )


def test_the_handler_imports_nothing_of_this_project(package):
    tree = ast.parse((package / "model" / "app.py").read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {n for n in names if n.split(".")[0] == "dqm_playground_ds"}
    assert {n.split(".")[0] for n in names} <= {"__future__", "json", "sys", "pathlib", "numpy",
                                                  "mlserver"}  # fmt: skip


@pytest.mark.parametrize("strategy", ["two_level", "reference"])
def test_handler_in_a_fresh_venv_reproduces_the_pipeline(frozen, trained, strategy, tmp_path):
    model = frozen[strategy]
    package = build_package(model, tmp_path / strategy)
    report = verify(package, model, trained.histograms)  # a new venv, numpy only
    assert report["runs"] == 5 and report["lumisections"] == len(trained.lumisections)
    assert report["flags_equal"] and report["unscored_equal"]
    assert report["max_abs_diff"] < 1e-5  # float32 precision of the pipeline's kNN
    # and the pipeline's own predictions of the held-out runs (final models, not out-of-fold)
    ref = dials_model.reference_scores(model, trained.histograms)
    pred = trained.predictions.set_index(["run", "lumi"])
    held = ref[ref["run"].isin([315322, 315420])].set_index(["run", "lumi"])
    want = pred[pred["strategy"] == strategy].loc[held.index, :]
    # the pipeline projects float32 features (PCA of the kNN), the frozen model in float64
    np.testing.assert_allclose(held["score"], want["score"], rtol=1e-5)
    assert (held["is_anomalous"] == want["is_anomalous"]).all()


@pytest.fixture(scope="module")
def fresh_python(package, tmp_path_factory):
    """One virtual environment with only the package's requirements (numpy)."""
    return dials_model.make_venv(tmp_path_factory.mktemp("venv"),
                                 package / "model" / "requirements.txt")  # fmt: skip


def test_a_package_that_does_not_reproduce_the_model_is_caught(
    package, model, trained, tmp_path, fresh_python
):
    broken = tmp_path / "broken"
    shutil.copytree(package, broken)
    doc = json.loads((broken / "model" / "model.json").read_text())
    doc["decision"]["threshold"] -= 0.5
    (broken / "model" / "model.json").write_text(json.dumps(doc))
    with pytest.raises(PackageError, match=r"does not reproduce the model.*'flags_equal': False"):
        verify(broken, model, trained.histograms, python=fresh_python)


def test_an_interpreter_that_has_the_project_is_no_proof(package, model, trained):
    with pytest.raises(PackageError, match="can import dqm_playground_ds"):
        verify(package, model, trained.histograms, python=sys.executable)


def test_unsupported_strategies_are_refused_with_their_detectors(tmp_path):
    mixed = load_model(FIXTURE)  # pca reconstruction, gmm combination
    with pytest.raises(PackageError, match=r"\['pca \(pca\)'\], combination 'gmm'"):
        build_package(mixed, tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_cli_build_and_verify(model, trained, tmp_path, capsys, monkeypatch):
    store = tmp_path / "frozen"
    from dqm_playground_ds.models import ModelStore

    ModelStore(store).save(model)
    out = tmp_path / "pkg"
    assert main(["build", "two_level", "--store", str(store), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["build", "nope", "--store", str(store), "-o", str(out)]) == 2
    assert "no frozen model 'nope'" in capsys.readouterr().err
    monkeypatch.setattr(dials_model, "_sample", lambda paths: trained.histograms)
    assert main(["verify", str(out), "--store", str(store)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["flags_equal"] and report["max_abs_diff"] < 1e-5
