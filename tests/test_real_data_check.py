"""The real-data check (scripts/real_data_check.py) on ../shared/data/real; skipped when absent."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / ".." / "shared" / "data" / "real"


@pytest.fixture(scope="module")
def check():
    if not REAL.is_dir():
        pytest.skip("../shared/data/real is not present")
    spec = importlib.util.spec_from_file_location(
        "real_data_check", ROOT / "scripts" / "real_data_check.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_sample_is_read(check):
    samples = check.load_real(REAL)
    assert {"316187 zphi layer 1", "316187 zphi layer 2"} <= set(samples)
    maps = samples["316187 zphi layer 1"]
    assert len(maps) == 16 and maps["y_bins"].iloc[0] == 200 and maps["x_bins"].iloc[0] == 300
    assert check.labels(maps, REAL) == {"golden": 16}
    charge = next(v for k, v in samples.items() if "charge_PXLayer_1" in k)
    assert len(charge) == 45  # run 367094: every histogram of this export is empty


def test_detectors_on_real_maps(check):
    maps = check.load_real(REAL)["316187 zphi layer 2"]
    out = check.check_maps(maps, [107, 108, 109, 110, 473, 474, 475, 476], n_per_type=8)
    assert out["n_train"] == 8 and out["n_apply"] == 8
    # held-out real LS of the same run are close to the reference: chi2/ndf near 1
    assert max(out["chi2ndf_apply_beta_binomial"]) < 1.5
    # a dead region and a shift injected into real held-out LS are found
    assert out["reference"]["auc_dead_region"] >= 0.95
    assert out["reference"]["auc_shift"] >= 0.95
