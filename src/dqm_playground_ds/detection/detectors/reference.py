"""Statistics-aware reference test: per-bin pulls of an LS against good training LS.

The reference is the pooled shape ``p`` of the training LS (AutoDQM compares to reference runs the
same way). An LS with integral ``N`` and ``c`` entries in a bin gets the pull

    pull = sign(c - N p) * sqrt(binomial deviance(c; N, p)) / sqrt(phi)
    phi  = 1 + (p (1 - p) / N_ref + tau^2) / (p (1 - p) / N)

The deviance residual equals the Gaussian pull (c - N p) / sqrt(N p (1 - p)) at high counts and
keeps the right tail probability at tiny expectations. ``phi`` is the ratio of the total to the
binomial variance of the bin fraction: the reference's own statistics plus ``tau^2``
(``method="beta_binomial"``), the extra LS-to-LS and run-to-run spread of each bin seen in the
training LS, estimated by the method of moments (a beta-binomial's variance is the binomial one
plus ``p (1 - p) rho``). ``fit(X, groups=runs)`` makes it run-aware: each run weighs the same in
the reference and ``tau^2`` adds the variance of the run means (x (1 + 1/G)), because a new run
differs from the training runs by their run-to-run spread (a 1 % calibration scale is many sigma
at 45k entries per LS), not by the LS-to-LS spread inside one run. With ``method="poisson"`` ``tau^2`` is zero, which flags any real-data
variation at high statistics. A bin empty in the reference counts as half a reference entry, so
counts in a dead area give large but finite pulls.

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
from scipy.special import xlogy
from sklearn.utils._param_validation import Interval, StrOptions

from dqm_playground_ds.detection.detectors.base import BaseDetector, top_n_mean

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
        X = X.astype(np.float64)
        n = X.sum(axis=1)
        keep = n > 0  # an empty sample carries no shape information
        X, n = X[keep], n[keep]
        if len(X) == 0:
            raise ValueError("ReferenceTest: every training sample is empty (zero integral)")
        groups = getattr(self, "_groups", None)
        if groups is not None and len(groups) != len(keep):
            raise ValueError(f"groups has {len(groups)} entries for {len(keep)} samples")
        groups = None if groups is None else groups[keep]
        self.n_groups_ = 1 if groups is None else int(np.unique(groups).size)
        total = X.sum(axis=0)
        self.n_reference_ = float(total.sum())
        if self.n_groups_ < 2:
            self.reference_ = total / self.n_reference_
            self.dispersion_ = self._within(X, n, self.reference_, self.n_reference_)
            return
        # run-aware: every run weighs the same in the reference (a long run must not define
        # "normal"), and the spread of the run means enters the dispersion, since a new run
        # differs from the mean of the training runs by that much (+1/G for the mean's error)
        _, inverse = np.unique(groups, return_inverse=True)
        g_total = np.zeros((self.n_groups_, X.shape[1]))
        np.add.at(g_total, inverse, X)
        g_n = g_total.sum(axis=1)
        g_frac = g_total / g_n[:, None]
        self.reference_ = g_frac.mean(axis=0)
        within = np.zeros_like(self.reference_)
        for g in range(self.n_groups_):
            sel = inverse == g
            within += self._within(X[sel], n[sel], g_frac[g], g_n[g]) * sel.sum()
        within /= len(X)
        p = self.reference_
        between = g_frac.var(axis=0, ddof=1) - (p * (1 - p) / g_n[:, None]).mean(axis=0)
        between = np.clip(between, 0.0, None) if self.method == "beta_binomial" else 0.0
        self.dispersion_ = within + between * (1 + 1 / self.n_groups_)

    def _within(self, X: np.ndarray, n: np.ndarray, p: np.ndarray, n_ref: float) -> np.ndarray:
        """Method-of-moments extra variance of the bin fractions around ``p`` (0 for Poisson)."""
        if self.method != "beta_binomial":
            return np.zeros_like(p)
        f = X / n[:, None]
        excess = (f - p) ** 2 - p * (1 - p) * (1 / n[:, None] + 1 / n_ref)
        return np.clip(excess.mean(axis=0), 0.0, None)

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


def deviance_pulls(
    X: np.ndarray, p: np.ndarray, n_ref: float | np.ndarray, dispersion: np.ndarray | float
) -> np.ndarray:
    """Signed binomial deviance residuals of counts ``X`` (n, bins) against shapes ``p``.

    ``p`` is one shape (bins,) or one per row (n, bins) with its statistics ``n_ref`` (scalar or
    (n, 1)); ``dispersion`` is the extra variance of the bin fractions (quasi-likelihood). Shared by
    the pooled reference test and the within-run test (run_aware.py), so that both flag on the same
    pulls. 0 where neither the LS nor the reference has entries.
    """
    n = X.sum(axis=1, keepdims=True)
    n_ref = np.maximum(np.asarray(n_ref, dtype=np.float64), 1e-300)
    pv = np.maximum(p, 0.5 / n_ref)
    mu = n * pv
    # signed binomial deviance residual: Gaussian pulls at high counts, the right tail
    # probability at tiny expectations (1 count where 0.001 is expected is ~3 sigma, not 30)
    r1 = np.divide(X, mu, out=np.ones_like(X), where=(X > 0) & (mu > 0))
    rest, rest_mu = n - X, n - mu
    r2 = np.divide(rest, rest_mu, out=np.ones_like(X), where=(rest > 0) & (rest_mu > 0))
    dev = 2 * (xlogy(X, r1) + xlogy(rest, r2))
    z = np.sign(X - mu) * np.sqrt(np.clip(dev, 0, None))
    # quasi-likelihood: divide by the ratio of total to binomial variance
    base = np.maximum(pv * (1 - pv), 1e-300)
    extra = base / n_ref + dispersion
    pull = z / np.sqrt(1 + n * extra / base)
    pull[((p <= 0) & (X <= 0)) | (n[:, 0] <= 0)[:, None]] = 0.0
    return pull


def chi2_per_bin(pull: np.ndarray, X: np.ndarray, p: np.ndarray) -> np.ndarray:
    """sum(pull^2) / bins used (bins with entries in the LS or the reference)."""
    used = np.maximum(((np.asarray(p) > 0) | (X > 0)).sum(axis=1), 1)
    return (pull**2).sum(axis=1) / used


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
