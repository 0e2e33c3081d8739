"""The extraction tests' input folder: the two good DQMIO files and one that is not ROOT."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def inputs(dqmio_folder: Path) -> Path:
    (dqmio_folder / "c_broken.root").write_bytes(b"not root at all" * 100)
    return dqmio_folder
