"""The DIALS handler's own copies of the pipeline's numerics (it imports nothing of the project, so
it keeps copies) give what the pipeline gives, to 1e-12: the deviance pulls against a fitted
:class:`~dqm_playground_ds.detection.reference.Reference` of every method, pooled and run-aware,
the within-run form (one reference shape per LS), and the statistics built on the pulls.

Generated counts cover the corners of the pulls (empty LS, bins empty in the reference with and
without counts, tiny and huge integrals); the bundled sample the real shapes. A change to either
copy fails here, so the package cannot drift from what the pipeline flags on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dqm_playground_ds.deploy import dials_handler as handler
from dqm_playground_ds.detection import reference
from dqm_playground_ds.detection.detectors.base import top_n_mean
from dqm_playground_ds.detection.detectors.reference import scan_statistic
from dqm_playground_ds.detection.reference import METHODS, Reference

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "01_raw" / "dqmio"
TOL = {"rtol": 1e-12, "atol": 1e-12}
SHAPES = {"1d": (120,), "2d": (12, 10)}  # room for the widest windows (32; 8 x 8)


def generated(shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(training counts, their runs, scored counts) on ``shape`` bins.

    The reference shape has dead bins (never filled in training) and a few runs with shifted
    shapes; the scored LS add empty LS, a hot dead bin, integrals from 1 to 10^6 and a broad
    excess that only the widest scan windows see whole."""
    rng = np.random.default_rng(seed)
    n_bins = int(np.prod(shape))
    p = rng.gamma(2.0, size=n_bins)
    p[rng.choice(n_bins, n_bins // 6, replace=False)] = 0.0  # dead in the reference
    train, runs = [], []
    for run in range(4):
        q = p * rng.uniform(0.8, 1.2, n_bins)
        q /= q.sum()
        n = rng.integers(200, 50_000, 30)
        train.append(np.stack([rng.multinomial(k, q) for k in n]))
        runs.append(np.full(len(n), 315000 + run))
    q = p / p.sum()
    scored = np.stack([rng.multinomial(k, q) for k in (1, 3, 10, 100, 10_000, 1_000_000)])
    hot = scored[3:5].copy()
    hot[:, np.flatnonzero(p == 0)[:2]] += 50  # counts where the reference has none
    empty = np.zeros((1, n_bins), dtype=scored.dtype)
    shifted = np.stack([rng.multinomial(5_000, np.roll(q, 3)) for _ in range(5)])
    block = np.zeros(shape, dtype=bool)
    block[(slice(2, 10), slice(1, 9)) if len(shape) == 2 else slice(10, 42)] = True
    broad = q * np.where(block.ravel(), 1.6, 1.0)
    wide = np.stack([rng.multinomial(200_000, broad / broad.sum()) for _ in range(3)])
    X = np.vstack([scored, hot, empty, shifted, wide]).astype(np.float64)
    return np.vstack(train).astype(np.float64), np.concatenate(runs), X


def handler_pulls(ref: Reference, X: np.ndarray) -> np.ndarray:
    """The handler's pulls from the arrays a package stores (reference_test entry of a model)."""
    return handler.deviance_pulls(X, ref.shape, float(ref.n_entries), ref.dispersion)


@pytest.mark.parametrize("dim", sorted(SHAPES))
@pytest.mark.parametrize("run_aware", [False, True], ids=["pooled", "run_aware"])
@pytest.mark.parametrize("method", METHODS)
def test_reference_pulls_are_the_pipelines(method, run_aware, dim):
    train, runs, X = generated(SHAPES[dim])
    ref = Reference.fit(train, runs if run_aware else None, method)
    assert (ref.shape == 0).any() and (method == "poisson") == (ref.dispersion == 0).all()
    expected = ref.pulls(X)
    assert np.isfinite(expected).all() and (np.abs(expected) > 5).any()  # far tails reached
    np.testing.assert_allclose(handler_pulls(ref, X), expected, **TOL)
    np.testing.assert_allclose(handler_pulls(ref, train), ref.pulls(train), **TOL)


@pytest.mark.parametrize("method", METHODS)
def test_within_run_pulls_are_the_pipelines(method):
    """One reference shape per LS with its own statistics (n, 1), as the within-run test uses."""
    train, runs, X = generated(SHAPES["1d"], seed=1)
    dispersion = Reference.fit(train, runs, method).dispersion
    rest = train[::-1][: len(X)] + train[: len(X)]  # "the rest of the run" of each scored LS
    rest[0] *= 0.5 / rest[0].sum()  # weighted entries: less than one entry behind a shape
    n_ref = rest.sum(axis=1, keepdims=True)
    p = rest / n_ref
    np.testing.assert_allclose(
        handler.deviance_pulls(X, p, n_ref, dispersion),
        reference.deviance_pulls(X, p, n_ref, dispersion),
        **TOL,
    )


@pytest.mark.parametrize("dim", sorted(SHAPES))
def test_statistics_on_the_pulls_are_the_pipelines(dim):
    """chi2 per bin, the scan (1D windows, 2D rectangles) and the top-N mean of the pulls."""
    train, runs, X = generated(SHAPES[dim], seed=2)
    ref = Reference.fit(train, runs)
    pull = ref.pulls(X)
    np.testing.assert_allclose(
        handler.chi2_per_bin(pull, X, ref.shape[None, :]), ref.chi2(X), **TOL
    )
    shape = list(SHAPES[dim]) if dim == "2d" else None
    np.testing.assert_allclose(
        handler.scan_statistic(pull, shape), scan_statistic(pull, shape), **TOL
    )
    for n in (1, 5, pull.shape[1]):
        np.testing.assert_allclose(handler.top_n_mean(pull**2, n), top_n_mean(pull**2, n), **TOL)


@pytest.fixture(scope="module")
def sample_counts() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(counts, runs) of every ME of the bundled sample's DQMIO files."""
    files = sorted(SAMPLE.glob("*.root"))
    if not files:
        pytest.skip("bundled sample not generated")
    from tests.sample_training import sample_histograms

    hist = sample_histograms().sort_values(["me", "run", "lumi"])
    return {
        str(me): (np.stack(g["data"].to_numpy()).astype(np.float64), g["run"].to_numpy())
        for me, g in hist.groupby("me")
    }


@pytest.mark.parametrize("method", METHODS)
def test_pulls_of_the_bundled_sample_are_the_pipelines(sample_counts, method):
    for me, (X, runs) in sample_counts.items():
        ref = Reference.fit(X, runs, method)
        np.testing.assert_allclose(handler_pulls(ref, X), ref.pulls(X), **TOL, err_msg=me)
