"""Per-ME preprocessing: quality cuts, crop, rebin, normalisation, fitted on training LS only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dqm_playground_ds.processing.preprocessing import (
    HistogramPreprocessor,
    PreprocessingError,
    QualityCuts,
    rebin_matrix,
    resolve_config,
)
from tests.detection_data import (
    ME_1D,
    ME_1D_B,
    ME_2D,
    NX,
    NY,
    frame,
    get,
    make_histograms,
    replace,
    row,
)

TRAIN = pd.DataFrame({"run": [1] * 10, "lumi": list(range(1, 11))})


@pytest.fixture(scope="module")
def hist() -> pd.DataFrame:
    return make_histograms({1: 10, 2: 5})


def fit(hist, variants=None, quality=None, train=TRAIN):
    return HistogramPreprocessor(variants or {"v": {}}, quality or {}).fit(hist, train)


def test_rebin_matrix_keeps_the_integral():
    for n_in, n_out in [(10, 5), (10, 3), (7, 7), (48, 24), (56, 28), (100, 33)]:
        m = rebin_matrix(n_in, n_out)
        assert m.shape == (n_out, n_in)
        np.testing.assert_allclose(m.sum(axis=0), 1.0)  # every input bin fully distributed
    np.testing.assert_array_equal(rebin_matrix(4, 2), [[1, 1, 0, 0], [0, 0, 1, 1]])
    with pytest.raises(PreprocessingError):
        rebin_matrix(4, 5)


def test_normalisations(hist):
    variants = {
        n: {"1d": {"normalisation": n}, "2d": {"normalisation": n}} for n in ("l1", "max", "none")
    }
    fs = fit(hist, variants).transform(hist)
    raw = np.stack([get(hist, 1, lumi, ME_1D) for lumi in range(1, 11)])
    l1 = fs["l1"].mes[ME_1D].values()[:10]
    mx = fs["max"].mes[ME_1D].values()[:10]
    none = fs["none"].mes[ME_1D].values()[:10]
    np.testing.assert_allclose(l1.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(mx.max(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(none, raw, rtol=1e-6)
    np.testing.assert_allclose(l1, raw / raw.sum(axis=1, keepdims=True), rtol=1e-5)
    # counts are kept whatever the normalisation (statistics-aware tests read them)
    np.testing.assert_allclose(fs["l1"].mes[ME_1D].counts[:10], raw, rtol=1e-6)


def test_crop_and_rebin_1d(hist):
    # axis 0..40 in 40 bins: crop [10, 30] keeps the bins whose centre is inside: 10.5 .. 29.5
    variant = {"v": {"1d": {"crop": {"x": [10, 30]}, "rebin": 4}}}
    fs = fit(hist, variant).transform(hist)["v"]
    raw = get(hist, 1, 3, ME_1D)
    expected = raw[10:30].reshape(5, 4).sum(axis=1)
    assert fs.mes[ME_1D].shape == (5,)
    np.testing.assert_allclose(fs.mes[ME_1D].counts[2], expected, rtol=1e-6)


def test_2d_rebinned_to_a_configurable_size(hist):
    fs = fit(hist, {"v": {"2d": {"shape": [4, 5], "normalisation": "none"}}}).transform(hist)["v"]
    raw = get(hist, 2, 1, ME_2D).reshape(NY, NX)
    expected = raw.reshape(4, 2, 5, 2).sum(axis=(1, 3)).reshape(-1)  # y outer, x inner
    m = fs.mes[ME_2D]
    assert m.shape == (4, 5)
    np.testing.assert_allclose(m.values()[10], expected, rtol=1e-6)
    # a size that does not divide the bins splits bins in proportion: the integral is kept
    fs = fit(hist, {"v": {"2d": {"shape": [3, 7], "normalisation": "none"}}}).transform(hist)["v"]
    np.testing.assert_allclose(fs.mes[ME_2D].counts[10].sum(), raw.sum(), rtol=1e-5)


def test_per_me_override_and_config_errors():
    variant = {"1d": {"rebin": 2}, "per_me": {r"Test/1D/sn": {"rebin": 4, "normalisation": "max"}}}
    assert resolve_config(variant, ME_1D_B, 1).rebin == (1, 4)
    assert resolve_config(variant, ME_1D_B, 1).normalisation == "max"
    assert resolve_config(variant, ME_1D, 1).rebin == (1, 2)
    with pytest.raises(PreprocessingError, match="normalisation 'sqrt'"):
        resolve_config({"1d": {"normalisation": "sqrt"}}, ME_1D, 1)
    with pytest.raises(PreprocessingError, match="unknown key"):
        resolve_config({"1d": {"rebinn": 2}}, ME_1D, 1)


def test_rebin_factor_that_does_not_divide_is_an_error(hist):
    with pytest.raises(PreprocessingError, match="rebin factor 3 does not divide 40"):
        fit(hist, {"v": {"1d": {"rebin": 3}}})


def test_fitted_on_training_ls_only(hist):
    pre = fit(hist)
    # a wildly different histogram in an LS that is not in the training keys changes nothing
    other = replace(hist, 2, 1, ME_1D, np.r_[np.zeros(39), 1e6])
    pre_other = fit(other)
    np.testing.assert_allclose(pre.reference_[ME_1D], pre_other.reference_[ME_1D])
    train_sum = sum(get(hist, 1, lumi, ME_1D) for lumi in range(1, 11))
    np.testing.assert_allclose(pre.reference_[ME_1D], train_sum / train_sum.sum())
    assert pre.n_train_[ME_1D] == 10


def test_quality_cuts_absolute_and_per_bin(hist):
    low = replace(hist, 2, 1, ME_1D, np.full(40, 2.0))  # 80 entries, 2 per bin
    pre = fit(low, quality={"min_entries": 100})
    fs = pre.transform(low)["v"]
    quality, detail = fs.ls_quality()
    assert quality[10] == "low_stats" and ME_1D in detail[10]
    assert (quality[:10] == "ok").all()
    pre = fit(low, quality={"min_entries_per_bin": 3})
    assert pre.transform(low)["v"].ls_quality()[0][10] == "low_stats"
    pre = fit(low, quality={"min_entries_per_bin": 1})
    assert pre.transform(low)["v"].ls_quality()[0][10] == "ok"
    cuts = QualityCuts.from_dict({"min_entries": 10, "per_me": {"Test/2D/.*": {"min_entries": 99}}})
    assert cuts.for_me(ME_2D) == (99.0, 0.0) and cuts.for_me(ME_1D) == (10.0, 0.0)
    with pytest.raises(PreprocessingError, match="unknown key"):
        QualityCuts.from_dict({"min_entry": 1})


def test_bad_input_is_marked_per_ls_and_me(hist):
    bad = replace(hist, 2, 1, ME_1D, np.zeros(40))  # zero entries
    bad = replace(bad, 2, 2, ME_1D, np.r_[np.nan, np.ones(39) * 100])  # NaN bin
    bad = replace(bad, 2, 3, ME_1D_B, np.r_[-1.0, np.ones(39) * 100])  # negative bin
    bad = bad[~((bad["run"] == 2) & (bad["lumi"] == 4) & (bad["me"] == ME_2D))]  # missing ME
    rebinned = row(2, 5, ME_1D, np.ones(20) * 100, x=(0.0, 40.0))  # other binning
    bad = pd.concat([bad[~((bad["run"] == 2) & (bad["lumi"] == 5) & (bad["me"] == ME_1D))],
                     frame([rebinned])], ignore_index=True)  # fmt: skip
    fs = fit(bad).transform(bad)["v"]
    quality, detail = fs.ls_quality()
    assert quality[10:].tolist() == ["empty", "invalid", "invalid", "missing", "bad_binning"]
    assert detail[13] == f"{ME_2D}: missing"
    assert (quality[:10] == "ok").all()
    assert fs.scorable.tolist() == [True] * 10 + [False] * 5
    # what cannot be scored holds no numbers that a detector could mistake for data
    assert np.isfinite(fs.mes[ME_1D].counts).all()
    assert (fs.mes[ME_1D].counts[[10, 11, 14]] == 0).all()


def test_training_ls_with_mixed_binning_use_the_most_common(hist, caplog):
    rebinned = row(1, 1, ME_1D, np.ones(20) * 100)
    mixed = pd.concat([hist[~((hist["run"] == 1) & (hist["lumi"] == 1) & (hist["me"] == ME_1D))],
                       frame([rebinned])], ignore_index=True)  # fmt: skip
    pre = fit(mixed)
    assert pre.binning_[ME_1D][1] == 40
    assert "2 binnings" in caplog.text
    assert pre.transform(mixed)["v"].ls_quality()[0][0] == "bad_binning"


def test_no_training_histogram_is_an_error(hist):
    with pytest.raises(PreprocessingError, match="no histogram of any training LS"):
        fit(hist, train=pd.DataFrame({"run": [99], "lumi": [1]}))
    with pytest.raises(PreprocessingError, match="no training LS passes the quality cuts"):
        fit(hist, quality={"min_entries": 1e9})
    with pytest.raises(PreprocessingError, match="not fitted"):
        HistogramPreprocessor().transform(hist)


def test_identical_variants_share_one_array(hist):
    fs = fit(hist, {"a": {"2d": {"shape": [4, 5]}}, "b": {"2d": {}}}).transform(hist)
    assert fs["a"].mes[ME_1D].counts is fs["b"].mes[ME_1D].counts
    assert fs["a"].mes[ME_2D].counts is not fs["b"].mes[ME_2D].counts


def test_integral_ratio_cancels_luminosity(hist):
    fs = fit(hist).transform(hist)["v"]
    ratio = fs.integral_ratio()
    np.testing.assert_allclose(ratio.sum(axis=1), 0.0, atol=1e-9)
    assert ratio.std(axis=0).max() < 0.05  # Poisson + 0.8-1.2 luminosity: the ratio is stable


def test_reference_is_the_reference_tests_on_ls_whose_every_me_passes():
    """One reference: fitted on the LS the detectors learn from (every ME ok), run-aware."""
    from dqm_playground_ds.detection.detectors import ReferenceTest

    hist = make_histograms({1: 8, 2: 8, 3: 5}, run_scale=0.01)
    hist = replace(hist, 2, 3, ME_1D_B, np.full(len(get(hist, 2, 3, ME_1D_B)), 0.5))  # low stats
    train = pd.DataFrame({"run": [1] * 8 + [2] * 8, "lumi": list(range(1, 9)) * 2})
    pre = fit(hist, quality={"min_entries": 100}, train=train)
    every_ok = train[~((train["run"] == 2) & (train["lumi"] == 3))]
    for me in (ME_1D, ME_1D_B, ME_2D):
        X = np.stack(
            [get(hist, r, ls, me) for r, ls in zip(every_ok["run"], every_ok["lumi"], strict=True)]
        )
        det = ReferenceTest().fit(X, groups=every_ok["run"].to_numpy())
        ref = pre.fitted_references_[me]
        np.testing.assert_allclose(ref.shape, det.reference_, rtol=1e-12)
        np.testing.assert_allclose(ref.dispersion, det.dispersion_, rtol=1e-9, atol=1e-18)
        assert ref.n_runs == 2 and pre.n_train_[me] == len(every_ok)
        np.testing.assert_array_equal(pre.reference_[me], ref.shape)
    table = pre.references()
    assert {"data", "n_entries", "dispersion", "n_runs", "method"} <= set(table.columns)
