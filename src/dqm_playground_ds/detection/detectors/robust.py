"""Robust z-score of a few summary features, e.g. the ME's share of the LS's statistics.

With ``integral_ratio`` features (log integral of an ME minus the LS mean over MEs) the luminosity
cancels and an ME that lost or gained entries relative to the others stands out. This is the only
detector that sees a normalisation change or a low-statistics ME once histograms are normalised.
Median and MAD make the reference immune to the few bad LS hidden in the training data.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from dqm_playground_ds.detection.detectors.base import BaseDetector


class RobustZScore(BaseDetector):
    """max over features of |x - median| / (1.4826 MAD); ``side`` = both, low or high."""

    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "side": [StrOptions({"both", "low", "high"})],
        "min_scale": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, side: str = "both", min_scale: float = 1e-3, contamination: float = 0.01):
        self.side = side
        self.min_scale = min_scale
        self.contamination = contamination

    def _fit(self, X: np.ndarray) -> None:
        self.median_ = np.median(X, axis=0)
        mad = np.median(np.abs(X - self.median_), axis=0)
        self.scale_ = np.maximum(1.4826 * mad, self.min_scale)

    def _anomaly(self, X: np.ndarray) -> np.ndarray:
        z = (X - self.median_) / self.scale_
        if self.side == "low":
            z = -z
        elif self.side == "both":
            z = np.abs(z)
        return z.max(axis=1)
