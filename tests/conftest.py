"""Shared test fixtures: paths to the committed DQMIO fixtures and the shared real samples."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

ROOT_DIR = Path(__file__).resolve().parents[1]
FIXTURES = ROOT_DIR / "tests" / "fixtures"
SHARED_REAL = ROOT_DIR.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def dqmio_fixture():
    """Path of a committed DQMIO fixture and what ROOT read back from it."""

    def load(name: str) -> tuple[Path, dict]:
        path = FIXTURES / "dqmio" / f"{name}.root"
        with gzip.open(FIXTURES / "dqmio" / f"{name}.expected.json.gz", "rt") as f:
            return path, json.load(f)

    return load


@pytest.fixture(scope="session")
def shared_real() -> Path:
    """``../shared/data/real``; tests that need it skip when it is absent (a user's fresh clone)."""
    if not SHARED_REAL.is_dir():
        pytest.skip("../shared/data/real is not present")
    return SHARED_REAL
