"""ONNX variant of the DIALS package: each detector's ONNX graph against the pipeline's detector,
and the package's handler in a fresh virtual environment (numpy and onnxruntime from the index).

Skipped without the ``onnx`` extra (skl2onnx, onnx, onnxruntime)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("skl2onnx")
pytest.importorskip("onnxruntime")

from dqm_playground_ds import deploy
from dqm_playground_ds.deploy import dials_model, dials_onnx
from dqm_playground_ds.deploy.dials_model import PackageError, build_package, verify
from dqm_playground_ds.detection.detectors.neighbors import NeighborsDetector
from dqm_playground_ds.models import load_model
from tests.deploy import dials_kinds

# relative parity of the raw detector scores with the pipeline's. The detectors fit and apply their
# PCA in float64 and the graphs project with float64 constants: PCA reconstruction, LOF (in a
# projection), autoencoder, NMF and the Isolation Forest (leaf values gathered and summed in double)
# agree to rounding. kNN on the unprojected float32 features: sklearn rounds its brute-force
# squared distances to float32, the graph keeps them double (~1e-7).
TOLERANCE = {"autoencoder": 1e-12, "nmf": 1e-12, "pca": 1e-12, "lof": 1e-12, "knn": 1e-6,
             "isolation_forest": 1e-12}  # fmt: skip
PROJECTED_KNN = 1e-12  # kNN in a float64 PCA projection (KD tree or brute force)
FLOAT32_PCA = 1e-4  # a model frozen with a float32 PCA (before float64 projections)
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "v2" / "mixed"


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
            rel = np.abs(got - want) / np.abs(want)
            assert rel.max() <= TOLERANCE[ds.spec.kind], (name, ds.spec.name, me, rel.max())
            seen.add(ds.spec.kind)
    assert seen == set(dials_onnx.CONVERTERS)


@pytest.mark.parametrize("n_components", [3, 20])  # a KD tree, brute force
def test_knn_in_a_float64_projection_matches_to_rounding(generated, n_components):
    _, _, features, _ = generated
    f = features["default"]
    rows = np.flatnonzero(f.scorable)
    values = f.mes[f.me_names[0]].values(rows)
    # scored LS outside the training set: a training LS at distance ~0 from itself is ~1e-10 of
    # cancellation noise in sklearn's |x|^2 - 2 x.y + |y|^2, not a difference of the projection
    train, x = values[::2], values[1::2]
    det = NeighborsDetector(method="knn", n_neighbors=4, n_components=n_components).fit(train)
    assert det.projection_.components_.dtype == np.float64
    assert det.model_._fit_method == ("brute" if n_components > 15 else "kd_tree")
    got = dials_onnx.score(dials_onnx.detector_onnx("knn", det, x.shape[1]), x)
    want = det.anomaly_score(x)
    assert (np.abs(got - want) / want).max() <= PROJECTED_KNN


def test_a_float32_pca_frozen_before_keeps_its_float32_graph():
    """The v2 fixture (float32 PCAs of a kNN and a PCA reconstruction) converts as it did."""
    model = load_model(FIXTURE)
    features = model.preprocessor.transform(pd.read_parquet(FIXTURE / "inputs.parquet"),
                                            _keys(FIXTURE))[model.strategy.spec.preprocessing]  # fmt: skip
    rows = np.flatnonzero(features.scorable)
    assert dials_model.float32_projection(model)
    for ds in model.strategy.detector_sets:
        if ds.spec.kind not in ("knn", "pca"):
            continue
        for me in ds.mes_:
            det = ds.models_[me]
            x = features.mes[me].values(rows)
            got = dials_onnx.score(dials_onnx.detector_onnx(ds.spec.kind, det, x.shape[1]), x)
            want = det.anomaly_score(x)
            assert np.abs(got - want).max() <= FLOAT32_PCA * np.abs(want).max(), (ds.spec.name, me)


def _keys(folder: Path) -> pd.DataFrame:
    expected = json.loads((folder / "expected.json").read_text())
    return pd.DataFrame(expected["keys"], columns=["run", "lumi"])


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
    assert report["rtol"] == 1e-6 and report["max_rel_diff"] < 1e-6, report


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
