"""Shared test fixtures: the committed DQMIO fixtures (as files and as an input folder), the shared
real samples and a partition store on fsspec's in-memory filesystem."""

from __future__ import annotations

import gzip
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
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


@pytest.fixture
def dqmio_folder(tmp_path: Path) -> Path:
    """``tmp_path/in`` holding two good DQMIO files, ``a.root`` (all ME types) and ``b.root``
    (many baskets): the input folder of the extraction and store tests."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(FIXTURES / "dqmio" / "all_types.root", folder / "a.root")
    shutil.copy(FIXTURES / "dqmio" / "many_baskets.root", folder / "b.root")
    return folder


@pytest.fixture
def memory_url() -> Iterator[str]:
    """A fresh store URL on fsspec's in-memory filesystem (a ``PartitionStore`` or
    ``HistogramStoreDataset`` path), removed afterwards: that filesystem outlives the test."""
    url = f"memory://stores/{uuid.uuid4().hex}"
    yield url
    fs = fsspec.filesystem("memory")
    if fs.exists(url):
        fs.rm(url, recursive=True)


@pytest.fixture
def memory_store(memory_url: str) -> str:
    """:func:`memory_url` under the name the data_extraction pipeline tests use."""
    return memory_url
