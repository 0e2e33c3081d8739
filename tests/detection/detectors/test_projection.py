"""PCA projections of the detectors: fitted and applied in float64, chunk by chunk."""

from __future__ import annotations

import numpy as np
import pytest

from dqm_playground_ds.detection.detectors import isolation, reconstruction
from dqm_playground_ds.detection.detectors.isolation import IsolationForestDetector, project
from dqm_playground_ds.detection.detectors.neighbors import NeighborsDetector
from dqm_playground_ds.detection.detectors.reconstruction import PCAReconstruction


@pytest.fixture
def features():
    rng = np.random.default_rng(0)
    return rng.dirichlet(np.ones(30), size=120).astype(np.float32)  # stored like the pipeline's


@pytest.mark.parametrize(
    "det",
    [NeighborsDetector(method="knn", n_components=5), NeighborsDetector(n_components=5),
     IsolationForestDetector(n_estimators=10, n_components=5, random_state=0)],
    ids=["knn", "lof", "isolation_forest"],
)  # fmt: skip
def test_projections_are_float64_and_chunking_changes_nothing(features, det, monkeypatch):
    det.fit(features)
    pca = det.projection_
    assert pca.components_.dtype == np.float64 and pca.mean_.dtype == np.float64
    whole = pca.transform(features.astype(np.float64))
    np.testing.assert_array_equal(project(pca, features, chunk=len(features)), whole)
    np.testing.assert_allclose(project(pca, features, chunk=7), whole, rtol=0, atol=1e-15)
    scores = det.anomaly_score(features)
    monkeypatch.setattr(isolation.project, "__defaults__", (7,))  # chunks of 7 rows
    np.testing.assert_allclose(det.anomaly_score(features), scores, rtol=1e-12)


def test_pca_reconstruction_in_float64_by_chunks(features, monkeypatch):
    det = PCAReconstruction(n_components=4, top_n=5).fit(features)
    assert det.pca_.components_.dtype == np.float64
    x64 = features.astype(np.float64)
    recon = det.pca_.inverse_transform(det.pca_.transform(x64))
    np.testing.assert_array_equal(det.reconstruct(features), recon)
    want = np.sort((x64 - recon) ** 2, axis=1)[:, -5:].mean(axis=1)
    np.testing.assert_allclose(det.anomaly_score(features), want, rtol=1e-12)
    monkeypatch.setattr(reconstruction, "PROJECT_CHUNK", 7)
    np.testing.assert_allclose(det.anomaly_score(features), want, rtol=1e-12)
    assert det.reconstruct(features).dtype == np.float64


def test_a_float32_pca_frozen_before_projects_in_float32(features):
    det = NeighborsDetector(method="knn", n_components=5).fit(features)
    pca = det.projection_
    for name in ("components_", "mean_", "explained_variance_"):
        setattr(pca, name, getattr(pca, name).astype(np.float32))
    z = project(pca, features)
    assert z.dtype == np.float32
    np.testing.assert_array_equal(z, pca.transform(features))


@pytest.mark.parametrize("kind", ["pca", "nmf", "autoencoder"])
def test_reconstruction_scores_by_chunks_equal_the_whole_batch(kind, monkeypatch):
    from dqm_playground_ds.detection.detectors import make_detector

    rng = np.random.default_rng(5)
    X = rng.poisson(50 * np.linspace(0.2, 1.0, 30), size=(120, 30)).astype(np.float32)
    det, _ = make_detector(kind, {"max_iter": 30} if kind == "autoencoder" else {})
    det.fit(X[:80])
    whole = det.anomaly_score(X)
    monkeypatch.setattr(reconstruction, "PROJECT_CHUNK", 7)  # 40 LS in 6 chunks
    np.testing.assert_allclose(det.anomaly_score(X), whole, rtol=1e-10, atol=1e-12)
