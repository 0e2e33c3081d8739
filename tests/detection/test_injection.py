"""Each synthetic anomaly type does what it says, and injections only touch held-out good LS."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dqm_playground_ds.detection.injection import (
    ANOMALY_TYPES,
    Axis,
    InjectionError,
    inject,
    inject_table,
    populated_mask,
)
from tests.detection_data import ME_1D, ME_2D, NX, NY, make_histograms, shape_1d, shape_2d

H1 = np.random.default_rng(0).poisson(20000 * shape_1d()).astype(float)
H2 = np.random.default_rng(1).poisson(20000 * shape_2d()).astype(float)
AX = Axis(0.0, 40.0, 40)


def mean_bin(h):
    return (np.arange(h.size) * h).sum() / h.sum()


@pytest.mark.parametrize("seed", range(5))
def test_dead_region_zeroes_a_contiguous_populated_block(seed):
    out, frac = inject(
        H1, (1, 40), "dead_region", np.random.default_rng(seed), reference=shape_1d()
    )
    zeroed = np.flatnonzero((out == 0) & (H1 > 0))
    assert 0.05 <= frac <= 0.20
    assert zeroed.size == max(1, round(frac * populated_mask(shape_1d()).sum()))
    assert np.all(np.diff(zeroed) == 1)  # contiguous
    np.testing.assert_array_equal(np.delete(out, zeroed), np.delete(H1, zeroed))  # rest untouched


def test_dead_region_2d_is_a_rectangle():
    out, _ = inject(H2, (NY, NX), "dead_region", np.random.default_rng(3), reference=shape_2d())
    ys, xs = np.nonzero(((out == 0) & (H2 > 0)).reshape(NY, NX))
    assert ys.size > 0
    box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    rect = out.reshape(NY, NX)[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    assert (rect == 0).all() and box == rect.size


@pytest.mark.parametrize("seed", range(5))
def test_hot_spot_multiplies_one_to_three_bins(seed):
    out, factor = inject(H1, (1, 40), "hot_spot", np.random.default_rng(seed), reference=shape_1d())
    changed = np.flatnonzero(out != H1)
    assert 3.0 <= factor <= 5.0 and 1 <= changed.size <= 3
    assert np.all(np.diff(changed) == 1)
    ratio = out[changed].sum() / H1[changed].sum()
    assert ratio == pytest.approx(factor, rel=0.1)  # Poisson on top of the counts


@pytest.mark.parametrize("seed", range(6))
def test_shift_moves_the_distribution_by_one_to_three_bins(seed):
    out, bins = inject(H1, (1, 40), "shift", np.random.default_rng(seed), reference=shape_1d())
    assert bins in (-3, -2, -1, 1, 2, 3)
    # whole-bin shift: every bin's content lands exactly ``bins`` bins away (or leaves the axis)
    np.testing.assert_array_equal(out[3:37], np.roll(H1, int(bins))[3:37])


@pytest.mark.parametrize("seed", range(6))
def test_stretch_scales_x_about_zero_by_two_to_ten_percent(seed):
    out, frac = inject(H1, (1, 40), "stretch", np.random.default_rng(seed), axis=AX)
    assert 0.02 <= abs(frac) <= 0.10
    # pivot x = 0 is the low edge: bin positions (centres) scale by 1 + frac
    c = np.arange(40) + 0.5
    ratio = (c * out).sum() / out.sum() / ((c * H1).sum() / H1.sum())
    assert ratio == pytest.approx(1 + frac, abs=0.01)


def test_shift_and_stretch_act_along_x_in_2d():
    out, bins = inject(H2, (NY, NX), "shift", np.random.default_rng(0))
    before, after = H2.reshape(NY, NX), out.reshape(NY, NX)
    np.testing.assert_array_equal(after[:, 3:-3], np.roll(before, int(bins), axis=1)[:, 3:-3])
    out, frac = inject(H2, (NY, NX), "stretch", np.random.default_rng(0), axis=Axis(0, NX, NX))
    after = out.reshape(NY, NX)
    assert 0.02 <= abs(frac) <= 0.10
    np.testing.assert_allclose(after.sum(axis=1), before.sum(axis=1), rtol=0.1)  # y untouched


def test_normalisation_low_stats_and_noise():
    rng = np.random.default_rng(0)
    out, f = inject(H1, (1, 40), "normalisation", rng)
    assert (1.25 <= f <= 2.0 or 0.5 <= f <= 0.8) and out.sum() == pytest.approx(f * H1.sum())
    np.testing.assert_allclose(out / out.sum(), H1 / H1.sum())
    out, frac = inject(H1, (1, 40), "low_stats", rng)
    assert 0.01 <= frac <= 0.20 and out.sum() == pytest.approx(frac * H1.sum(), rel=0.1)
    assert (out == np.round(out)).all()  # thinned counts stay counts
    out, level = inject(H1, (1, 40), "noise", rng)
    assert 1.0 <= level <= 3.0 and (out >= 0).all()
    resid = (out - H1)[H1 > 100] / np.sqrt(H1[H1 > 100])
    assert resid.std() == pytest.approx(level, rel=0.4)


def test_per_type_parameters_and_unknown_type():
    _out, bins = inject(H1, (1, 40), "shift", np.random.default_rng(0), params={"bins": (1, 1)})
    assert abs(bins) == 1
    with pytest.raises(InjectionError, match="unknown anomaly type"):
        inject(H1, (1, 40), "flip", np.random.default_rng(0))
    with pytest.raises(InjectionError, match="nothing populated"):
        inject(
            np.zeros(40), (1, 40), "dead_region", np.random.default_rng(0), reference=np.zeros(40)
        )


def test_inject_table_touches_only_the_given_ls_and_one_me_per_copy():
    hist = make_histograms({1: 4, 2: 4})
    keys = pd.DataFrame({"run": [2, 2], "lumi": [1, 3]})
    refs = {me: None for me in hist["me"].unique()}
    refs = {ME_1D: shape_1d(), ME_2D: shape_2d(), "Test/1D/sn": shape_1d(centre=20, width=5)}
    table, info = inject_table(hist, keys, list(ANOMALY_TYPES), 3, refs, np.random.default_rng(0))
    assert len(info) == 3 * len(ANOMALY_TYPES)
    assert set(map(tuple, info[["run", "lumi"]].to_numpy())) <= {(2, 1), (2, 3)}
    assert info["anomaly_type"].value_counts().to_dict() == dict.fromkeys(ANOMALY_TYPES, 3)
    assert len(table) == 3 * len(info)  # every ME of the LS copied, once per sample
    original = hist.set_index(["run", "lumi", "me"])["data"]
    for sample, grp in table.groupby("sample"):
        changed = [
            me
            for me, d, r, lumi in zip(grp["me"], grp["data"], grp["run"], grp["lumi"], strict=True)
            if not np.array_equal(d, original[(r, lumi, me)])
        ]
        assert changed in ([], [info.loc[sample, "me"]])  # only the injected ME may differ
        assert len(changed) == 1 or info.loc[sample, "anomaly_type"] == "noise"
