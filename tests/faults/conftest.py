"""Fault-suite fixtures: copies of the bundled sample and of the test fixtures in ``tmp_path``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "01_raw" / "dqmio"
SAMPLE_CSV = ROOT / "data" / "01_raw" / "legacy_csv"
FIXTURES = ROOT / "tests" / "fixtures" / "dqmio"
# two small sample files (36 and 40 LS): every fault reproduces on them
SMALL = (
    "ZeroBias_Run2018A_DQMIO_R315357_LS0001-0036_ci.root",
    "ZeroBias_Run2018A_DQMIO_R315420_LS0001-0040_ci.root",
)
ME = (
    "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_[1-4]",
    "SiStrip/MechanicalView/TIB/Summary_ClusterStoNCorr__OnTrack__TIB",
)


@pytest.fixture
def sample_dir(tmp_path: Path) -> Path:
    """A folder holding copies of two sample files."""
    d = tmp_path / "in"
    d.mkdir()
    for name in SMALL:
        shutil.copy(SAMPLE / name, d / name)
    return d


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
