"""Per-ME score vectors -> one score per LS, and which MEs drove it.

The power of the field's systems comes from combining MEs: one ME alone reaches AUC ~0.7, the
vector of all MEs' scores much more. Two combinations, both fitted on the score vectors of good
training LS (ideally out-of-fold scores, see ``detectors.ensemble``):

* ``max_z``: every column is log-transformed (scores are positive and span decades) and robustly
  standardised (median, 1.4826 MAD); the LS score is the largest standardised score (not clipped:
  an LS whose every column is below its median still ranks by how far, so scores do not tie);
* ``mean_z``: the mean standardised score: evidence adds up, e.g. an LS slightly off within a run
  that is slightly off among runs (a product of likelihood ratios, in logs);
* ``gmm`` / ``kde``: a Gaussian mixture or kernel density on the standardised columns; the LS score
  is ``-log p`` (ML4DQMDC-PixelAE). Columns below their training median are raised to it before
  the density is evaluated: an unusually *good* reconstruction is not an anomaly. LS with every
  column below the median would all tie at one floor: they rank below it by their largest column.

A column whose training scores are all equal (a detector that sees nothing in this data, such as
the ME-balance ratio with a single ME) is inactive: it has no vote and its standardised score is NaN.

Attribution: each column belongs to an ME; an ME's importance is its largest standardised score,
and ``top_mes`` lists MEs by importance. An LS with a missing column gets NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KernelDensity
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

METHODS = ("max_z", "mean_z", "gmm", "kde")
TIE_BREAK = 1e-3  # weight of the largest column for LS below the median everywhere (gmm/kde)


class ScoreCombiner(BaseEstimator):
    """Fit on (n_train, k) raw score vectors; :meth:`score` gives one LS score, higher = worse."""

    _parameter_constraints: dict = {
        "method": [StrOptions(set(METHODS))],
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "covariance_type": [StrOptions({"full", "diag", "tied", "spherical"})],
    }

    def __init__(
        self,
        method: str = "max_z",
        n_components: int = 1,
        covariance_type: str = "full",
        reg_covar: float = 1e-2,
        bandwidth: float | str = "scott",
        random_state: int | None = 0,
    ) -> None:
        self.method = method
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.bandwidth = bandwidth
        self.random_state = random_state

    def fit(self, S, y=None) -> ScoreCombiner:
        self._validate_params()
        S = validate_data(self, S, reset=True, dtype=np.float64)
        if len(S) < 2:
            raise ValueError("ScoreCombiner needs at least 2 training score vectors")
        self.log_ = (S >= 0).all(axis=0)
        low = np.percentile(S, 5, axis=0)
        positive_low = np.array([np.min(c[c > 0], initial=1.0) for c in S.T])
        self.shift_ = np.where(low > 0, low, positive_low)  # keeps log() finite at 0
        T = self._transform(S)
        self.active_ = np.ptp(T, axis=0) > 0 if len(T) else np.zeros(S.shape[1], bool)
        if not self.active_.any():
            raise ValueError(
                "every detector column gives the same score to every training LS: nothing to combine"
            )
        self.center_ = np.median(T, axis=0)
        mad = 1.4826 * np.median(np.abs(T - self.center_), axis=0)
        spread = T.std(axis=0)
        self.scale_ = np.where(mad > 0, mad, np.where(spread > 0, spread, 1.0))
        Z = ((T - self.center_) / self.scale_)[:, self.active_]
        if self.method == "gmm":
            k = min(self.n_components, max(1, len(S) // (5 * S.shape[1] + 5)))
            self.density_ = GaussianMixture(
                n_components=k,
                covariance_type=self.covariance_type,
                reg_covar=self.reg_covar,
                random_state=self.random_state,
            ).fit(Z)
        elif self.method == "kde":
            self.density_ = KernelDensity(bandwidth=self.bandwidth).fit(Z)
        return self

    def _transform(self, S: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            logged = np.log(np.clip(S, 0, None) + self.shift_)
        return np.where(self.log_, logged, S)

    def standardise(self, S) -> np.ndarray:
        """Standardised (log) scores, NaN kept; the common scale used for attribution."""
        check_is_fitted(self, "center_")
        S = validate_data(self, S, reset=False, dtype=np.float64, ensure_all_finite="allow-nan")
        Z = (self._transform(S) - self.center_) / self.scale_
        Z[:, ~self.active_] = np.nan
        return Z

    def anomaly_score(self, S) -> np.ndarray:
        """One score per row (higher = more anomalous); NaN if any active column is NaN."""
        Z = self.standardise(S)[:, self.active_]
        bad = np.isnan(Z).any(axis=1)
        Z = np.nan_to_num(Z, nan=0.0)
        if self.method == "max_z":
            out = Z.max(axis=1)
        elif self.method == "mean_z":
            out = Z.mean(axis=1)
        else:
            out = -self.density_.score_samples(np.clip(Z, 0.0, None))
            floor = (Z <= 0).all(axis=1)
            out[floor] += TIE_BREAK * Z[floor].max(axis=1)
        out[bad] = np.nan
        return out


def me_importance(z: np.ndarray, column_mes: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Per-ME importance = max standardised score over that ME's columns; (mes, (n, n_me))."""
    mes = list(dict.fromkeys(column_mes))
    out = np.full((len(z), len(mes)), np.nan)
    col = np.asarray(column_mes, dtype=object)
    for j, me in enumerate(mes):
        block = z[:, col == me]
        with np.errstate(invalid="ignore"):
            out[:, j] = np.where(np.isnan(block).all(axis=1), np.nan, np.nanmax(
                np.where(np.isnan(block), -np.inf, block), axis=1))  # fmt: skip
    return mes, out


def top_mes(importance: np.ndarray, mes: Sequence[str], n: int = 3) -> list[list[str]]:
    """The ``n`` most important MEs of each row, most important first (NaN MEs skipped)."""
    order = np.argsort(-np.nan_to_num(importance, nan=-np.inf), axis=1, kind="stable")[:, :n]
    names = np.asarray(mes, dtype=object)
    out = []
    for row, idx in zip(importance, order, strict=True):
        out.append([str(names[i]) for i in idx if not np.isnan(row[i])])
    return out
