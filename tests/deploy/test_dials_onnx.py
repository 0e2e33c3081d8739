"""ONNX variant of the DIALS package: each detector's ONNX graph against the pipeline's detector,
and the package's handler in a fresh virtual environment (numpy and onnxruntime from the index).

Skipped without the ``onnx`` extra (skl2onnx, onnx, onnxruntime)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("skl2onnx")
pytest.importorskip("onnxruntime")

from dqm_playground_ds import deploy
from dqm_playground_ds.deploy import dials_model, dials_onnx
from dqm_playground_ds.deploy.dials_model import PackageError, build_package, verify
from tests.deploy import dials_kinds

# relative parity of the raw detector scores with the pipeline's. Where the pipeline computes in
# float64 (autoencoder, NMF least squares, Isolation Forest trees on unprojected features) the
# graphs agree to rounding. A PCA of float32 features runs in float32 in the pipeline (numpy's
# BLAS) and in the graph (onnxruntime's): both round differently by ~1 ulp of the projection,
# which becomes ~1e-6..1e-5 of a kNN distance or a top-N residual (measured on the bundled
# sample: kNN 6e-6, LOF 4e-6, PCA reconstruction 6e-6).
TOLERANCE = {"autoencoder": 1e-6, "nmf": 1e-6, "isolation_forest": 1e-6, "knn": 1e-6,
             "lof": 5e-5, "pca": 5e-5}  # fmt: skip
PROJECTED = 5e-5  # knn / Isolation Forest on a float32 PCA projection


@pytest.fixture(scope="module")
def generated():
    return dials_kinds.generated()


@pytest.fixture(scope="module")
def kinds(generated):
    return dials_kinds.train_kinds(generated)


def _cases(kinds):
    for name, model in kinds.items():
        for ds in model.strategy.detector_sets:
            if ds.spec.kind in dials_onnx.CONVERTERS:
                yield name, ds


def test_every_converted_detector_matches_the_pipeline(kinds, generated):
    _, _, features, _ = generated
    seen = set()
    for name, ds in _cases(kinds):
        f = features[kinds[name].strategy.spec.preprocessing]
        rows = np.flatnonzero(f.scorable)
        for me in ds.mes_:
            det = ds.models_[me]
            x = f.mes[me].values(rows)
            graph = dials_onnx.detector_onnx(ds.spec.kind, det, x.shape[1])
            got, want = dials_onnx.score(graph, x), det.anomaly_score(x)
            projected = getattr(det, "projection_", None) is not None
            tol = PROJECTED if projected and ds.spec.kind != "lof" else TOLERANCE[ds.spec.kind]
            rel = np.abs(got - want) / np.abs(want)
            assert rel.max() <= tol, (name, ds.spec.name, me, rel.max())
            if not projected and ds.spec.kind in ("autoencoder", "nmf", "isolation_forest"):
                assert rel.max() <= 1e-6
            seen.add(ds.spec.kind)
    assert seen == set(dials_onnx.CONVERTERS)


def test_run_aware_and_statistical_detectors_have_no_graph(kinds):
    ds = kinds["run_aware"].strategy.detector_sets
    assert all(dials_onnx.detector_onnx(s.spec.kind, s.models_[s.mes_[0]], 10) is None for s in ds)


@pytest.fixture(scope="module")
def onnx_python(kinds, tmp_path_factory):
    """One fresh virtual environment with an ONNX package's requirements (numpy, onnxruntime)."""
    package = build_package(kinds["forest"], tmp_path_factory.mktemp("pkg") / "p", onnx=True)
    return dials_model.make_venv(tmp_path_factory.mktemp("venv"),
                                 package / "model" / "requirements.txt")  # fmt: skip


@pytest.mark.parametrize("name", ["reconstruction_gmm", "forest", "neighbours_kde"])
def test_onnx_package_in_a_fresh_venv_reproduces_the_pipeline(kinds, generated, name, tmp_path,
                                                              onnx_python):  # fmt: skip
    model = kinds[name]
    package = build_package(model, tmp_path / name, onnx=True)
    onnx_files = sorted(p.name for p in (package / "model").glob("*.onnx"))
    n_models = sum(len(ds.mes_) for ds in model.strategy.detector_sets)
    assert len(onnx_files) == n_models  # every detector of these strategies has a graph
    assert "onnxruntime==" in (package / "model" / "requirements.txt").read_text()
    report = verify(package, model, generated[0], python=onnx_python)
    assert report["onnx"] and report["flags_equal"] and report["unscored_equal"]
    assert report["max_rel_diff"] < 1e-4, report


def test_the_handler_scores_with_the_graphs(kinds, generated, tmp_path, onnx_python):
    """A package whose PCA graph is swapped for the NMF one (same ME) no longer reproduces."""
    model = kinds["reconstruction_gmm"]  # detector sets: pca, nmf, autoencoder
    package = build_package(model, tmp_path / "p", onnx=True)
    code = package / "model"
    (code / "det0_0.onnx").write_bytes((code / "det1_0.onnx").read_bytes())
    with pytest.raises(PackageError, match="does not reproduce"):
        verify(package, model, generated[0], python=onnx_python)


def test_without_the_extra_the_onnx_variant_is_refused_clearly(kinds, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "skl2onnx", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "dqm_playground_ds.deploy.dials_onnx", raising=False)
    monkeypatch.delattr(deploy, "dials_onnx", raising=False)
    with pytest.raises(PackageError, match=r"needs the onnx extra"):
        build_package(kinds["forest"], tmp_path / "p", onnx=True)
    assert not (tmp_path / "p").exists()


def test_cli_build_onnx(kinds, tmp_path, capsys):
    from dqm_playground_ds.models import ModelStore

    ModelStore(tmp_path / "frozen").save(kinds["forest"])
    out = tmp_path / "pkg"
    args = ["build", "forest", "--store", str(tmp_path / "frozen"), "-o", str(out), "--onnx"]
    assert dials_model.main(args) == 0
    assert "wrote" in capsys.readouterr().out
    assert len(list((out / "model").glob("*.onnx"))) == 6  # 2 forests x 3 MEs
