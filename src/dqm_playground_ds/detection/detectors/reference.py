"""Statistics-aware reference test: per-bin pulls of an LS against good training LS.

The reference and its pulls are :mod:`dqm_playground_ds.detection.reference` (the one reference
the plots and the injection use too): the shape ``p`` of the training LS, run-weighted when
``fit(X, groups=runs)`` gets the run of every LS, signed binomial deviance pulls with the reference's
own statistics and the beta-binomial extra spread ``tau^2`` (``method="beta_binomial"``; zero with
``method="poisson"``, which flags any real-data variation at high statistics).

Statistics (``statistic``): ``chi2`` = sum(pull^2) / bins used, ``max_pull`` = max |pull|,
``chi2_norm`` = chi2 * N^(-1/3) (AutoDQM's statistics-normalised variant), ``top_n`` = mean of the
``top_n`` largest pull^2, and ``scan`` = the largest |sum of pulls| / sqrt(bins) over contiguous
windows of 1 to 32 bins (rectangles of 1-8 x 1-8 bins in a 2D map of ``shape``). The scan is the
statistic of a local defect: a dead region or hot spot a few bins wide moves every pull in it the
same way, which a chi2 over all bins dilutes and a single max pull misses; width 1 is the max pull.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from dqm_playground_ds.detection.detectors.base import BaseDetector, top_n_mean
from dqm_playground_ds.detection.reference import Reference, chi2_per_bin, deviance_pulls

__all__ = ["ReferenceTest", "chi2_per_bin", "deviance_pulls", "scan_statistic"]

STATISTICS = ("chi2", "max_pull", "chi2_norm", "top_n", "scan")
WIDTHS_1D = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
WIDTHS_2D = (1, 2, 4, 8)


class ReferenceTest(BaseDetector):
    """Per-bin Poisson / beta-binomial pulls against a reference; input = counts, not normalised."""

    _positive_only = True
    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "method": [StrOptions({"poisson", "beta_binomial"})],
        "statistic": [StrOptions(set(STATISTICS))],
        "top_n": [Interval(Integral, 1, None, closed="left")],
        "shape": [tuple, list, None],
    }

    def __init__(
        self,
        method: str = "beta_binomial",
        statistic: str = "chi2",
        top_n: int = 10,
        shape: tuple[int, ...] | None = None,
        contamination: float = 0.01,
        chunk_size: int = 8192,
    ) -> None:
        self.method = method
        self.statistic = statistic
        self.top_n = top_n
        self.shape = shape
        self.contamination = contamination
        self.chunk_size = chunk_size

    def fit(self, X, y=None, groups=None):
        """``groups`` (e.g. the run of each LS) makes the reference and its spread run-aware."""
        self._groups = None if groups is None else np.asarray(groups)
        try:
            return super().fit(X, y)
        finally:
            del self._groups

    def _fit(self, X: np.ndarray) -> None:
        ref = Reference.fit(X, getattr(self, "_groups", None), self.method)
        self.reference_ = ref.shape
        self.n_reference_ = ref.n_entries
        self.dispersion_ = ref.dispersion
        self.n_groups_ = ref.n_runs

    @property
    def fitted_reference(self) -> Reference:
        """The fitted :class:`~dqm_playground_ds.detection.reference.Reference` (what it flags on)."""
        return Reference(
            self.reference_, self.n_reference_, self.dispersion_, self.n_groups_, self.method
        )

    def pulls(self, X) -> np.ndarray:
        """Per-bin pulls (n, bins); 0 where neither the LS nor the reference has entries."""
        X = self._validate(X, reset=False)
        return self._pulls(X.astype(np.float64))

    def _pulls(self, X: np.ndarray) -> np.ndarray:
        return deviance_pulls(X, self.reference_, self.n_reference_, self.dispersion_)

    def statistics(self, X) -> dict[str, np.ndarray]:
        """Every statistic at once (each of shape (n,))."""
        return self._statistics(self._validate(X, reset=False), STATISTICS)

    def _statistics(self, X: np.ndarray, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        out = {k: np.empty(len(X)) for k in names}
        for start in range(0, len(X), self.chunk_size):
            sl = slice(start, start + self.chunk_size)
            chunk = X[sl].astype(np.float64)
            pull = self._pulls(chunk)
            sq = pull**2
            if "chi2" in names or "chi2_norm" in names:
                chi2 = chi2_per_bin(pull, chunk, self.reference_[None, :])
                if "chi2" in names:
                    out["chi2"][sl] = chi2
                if "chi2_norm" in names:
                    n = np.maximum(chunk.sum(axis=1), 1.0)
                    out["chi2_norm"][sl] = chi2 * np.power(n, -1 / 3)
            if "max_pull" in names:
                out["max_pull"][sl] = np.sqrt(sq.max(axis=1, initial=0.0))
            if "top_n" in names:
                out["top_n"][sl] = top_n_mean(sq, self.top_n)
            if "scan" in names:
                out["scan"][sl] = self._scan(pull)
        return out

    def _anomaly(self, X: np.ndarray) -> np.ndarray:
        return self._statistics(X, (self.statistic,))[self.statistic]

    def _scan(self, pull: np.ndarray) -> np.ndarray:
        return scan_statistic(pull, self.shape)


def scan_statistic(pull: np.ndarray, shape: tuple[int, ...] | list[int] | None) -> np.ndarray:
    """max over windows of |sum of pulls| / sqrt(window size), via (2D) cumulative sums."""
    shape = tuple(shape) if shape is not None else (pull.shape[1],)
    if len(shape) == 1 or shape[0] == 1:
        c = np.pad(np.cumsum(pull, axis=1), ((0, 0), (1, 0)))
        best = np.zeros(len(pull))
        for w in (w for w in WIDTHS_1D if w <= pull.shape[1]):
            best = np.maximum(best, np.abs(c[:, w:] - c[:, :-w]).max(axis=1) / np.sqrt(w))
        return best
    ny, nx = shape
    m = pull.reshape(len(pull), ny, nx)
    c = np.pad(m.cumsum(axis=1).cumsum(axis=2), ((0, 0), (1, 0), (1, 0)))
    best = np.zeros(len(pull))
    for h in (h for h in WIDTHS_2D if h <= ny):
        for w in (w for w in WIDTHS_2D if w <= nx):
            box = c[:, h:, w:] - c[:, :-h, w:] - c[:, h:, :-w] + c[:, :-h, :-w]
            best = np.maximum(best, np.abs(box).max(axis=(1, 2)) / np.sqrt(h * w))
    return best
