"""Good training histograms (counts of one 1D ME) and a planted anomaly, shared by detector tests."""

from __future__ import annotations

import numpy as np
import pytest

from tests.detection_data import shape_1d


def counts(n_ls: int, seed: int, entries: float = 4000.0, shape=None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = shape_1d() if shape is None else shape
    n = entries * rng.uniform(0.8, 1.2, size=n_ls)
    return rng.poisson(n[:, None] * p[None, :]).astype(np.float64)


@pytest.fixture(scope="session")
def good() -> np.ndarray:
    return counts(300, seed=1)


@pytest.fixture(scope="session")
def test_good() -> np.ndarray:
    return counts(50, seed=2)


@pytest.fixture(scope="session")
def test_bad() -> np.ndarray:
    """The peak moved by 3 bins: every detector family must see it."""
    return counts(50, seed=3, shape=np.roll(shape_1d(), 3))
