"""Working points at a target false-alarm rate, with and without consecutive LS."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from dqm_playground_ds.detection.thresholds import persistent, threshold_for_rate


def test_threshold_lets_the_target_rate_through():
    scores = np.random.default_rng(0).normal(size=1000)
    for rate in (0.01, 0.05, 0.2):
        t = threshold_for_rate(scores, rate)
        assert (scores > t).sum() == int(rate * 1000)
    assert threshold_for_rate(np.r_[scores, np.nan, np.nan], 0.01) == threshold_for_rate(
        scores, 0.01
    )


def test_too_few_scores_for_the_rate_gives_the_max(caplog):
    with caplog.at_level(logging.WARNING):
        assert threshold_for_rate(np.arange(50.0), 0.01) == 49.0
    assert "cannot resolve" in caplog.text


@pytest.mark.parametrize("rate", [0.0, 1.0, -0.1])
def test_invalid_rate(rate):
    with pytest.raises(ValueError, match="false-alarm rate"):
        threshold_for_rate(np.arange(10.0), rate)


def test_no_finite_score():
    with pytest.raises(ValueError, match="no finite score"):
        threshold_for_rate(np.full(5, np.nan), 0.1)


def test_persistence_keeps_only_consecutive_flags_within_a_run():
    runs = np.array([1, 1, 1, 1, 1, 1, 2, 2, 1])
    lumis = np.array([1, 2, 3, 5, 6, 8, 1, 2, 9])
    flags = np.array([1, 0, 1, 1, 1, 1, 1, 1, 1], bool)
    # LS 3 and 5 are not consecutive (4 missing); LS 5-6 are; 8-9 are (given out of order);
    # run 2 LS 1-2 are a block of their own
    out = persistent(flags, runs, lumis, 2)
    assert out.tolist() == [False, False, False, True, True, True, True, True, True]
    assert persistent(flags, runs, lumis, 1).tolist() == flags.tolist()
    assert persistent(flags, runs, lumis, 3).sum() == 0
    single = persistent(np.array([1, 0, 1], bool), np.array([1, 1, 2]), np.array([1, 2, 3]))
    assert not single.any()
