"""The one reference of an ME: the run-aware expected shape of good training LS and its pulls.

The reference test (:class:`~dqm_playground_ds.detection.detectors.reference.ReferenceTest`)
flags on these pulls, the report draws them (pull panels, chi2/ndf correlations) and the injection
places its anomalies on the bins the reference populates: a shifter sees the pulls the detector
flagged on.

:meth:`Reference.fit` takes the counts of good training LS and, with ``groups`` (their runs),
weighs every run the same (a long run must not define "normal"). An LS with integral ``N`` and
``c`` entries in a bin gets the pull

    pull = sign(c - N p) * sqrt(binomial deviance(c; N, p)) / sqrt(phi)
    phi  = 1 + (p (1 - p) / N_ref + tau^2) / (p (1 - p) / N)

The deviance residual equals the Gaussian pull (c - N p) / sqrt(N p (1 - p)) at high counts and
keeps the right tail probability at tiny expectations. ``phi`` is the ratio of the total to the
binomial variance of the bin fraction: the reference's own statistics plus ``tau^2``
(``method="beta_binomial"``), the extra LS-to-LS and run-to-run spread of each bin seen in the
training LS, estimated by the method of moments. With several runs ``tau^2`` adds the variance of
the run means (x (1 + 1/G)), because a new run differs from the training runs by their
run-to-run spread, not by the LS-to-LS spread inside one run. With ``method="poisson"`` ``tau^2``
is zero. A bin empty in the reference counts as half a reference entry, so counts in a dead area
give large but finite pulls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.special import xlogy

Method = Literal["poisson", "beta_binomial"]
METHODS: tuple[str, ...] = ("poisson", "beta_binomial")

#: columns of the saved reference table (besides the histogram schema's binning columns)
COLUMNS = ("me", "data", "n_entries", "dispersion", "n_runs", "method")


@dataclass(frozen=True, eq=False)
class Reference:
    """Expected bin fractions ``shape`` (sum 1), the entries behind them and their extra spread."""

    shape: np.ndarray
    n_entries: float
    dispersion: np.ndarray
    n_runs: int = 1
    method: str = "beta_binomial"

    @classmethod
    def fit(
        cls, X: np.ndarray, groups: np.ndarray | None = None, method: str = "beta_binomial"
    ) -> Reference:
        """The reference of counts ``X`` (LS, bins); ``groups`` (run of each LS): run-aware."""
        if method not in METHODS:
            raise ValueError(f"reference method {method!r} not in {METHODS}")
        X = np.asarray(X, dtype=np.float64)
        n = X.sum(axis=1)
        keep = n > 0  # an empty sample carries no shape information
        if groups is not None and len(groups) != len(keep):
            raise ValueError(f"groups has {len(groups)} entries for {len(keep)} samples")
        if not keep.all():
            X, n = X[keep], n[keep]
        if len(X) == 0:
            raise ValueError("reference: every training sample is empty (zero integral)")
        groups = None if groups is None else np.asarray(groups)[keep]
        n_groups = 1 if groups is None else int(np.unique(groups).size)
        total = X.sum(axis=0)
        n_ref = float(total.sum())
        if n_groups < 2:
            p = total / n_ref
            return cls(p, n_ref, _within(X, n, p, n_ref, method), n_groups, method)
        assert groups is not None  # n_groups >= 2
        _, inverse = np.unique(groups, return_inverse=True)
        members: list[Any]
        if (np.diff(inverse) >= 0).all():  # LS in run order (as the preprocessing fits): slices
            starts = np.concatenate(([0], np.flatnonzero(np.diff(inverse)) + 1))
            g_total = np.add.reduceat(X, starts, axis=0)
            members = [slice(a, b) for a, b in zip(starts, [*starts[1:], len(X)], strict=True)]
        else:
            g_total = np.zeros((n_groups, X.shape[1]))
            np.add.at(g_total, inverse, X)
            members = [inverse == g for g in range(n_groups)]
        g_n = g_total.sum(axis=1)
        g_frac = g_total / g_n[:, None]
        p = g_frac.mean(axis=0)
        within = np.zeros_like(p)
        sizes = np.bincount(inverse, minlength=n_groups)
        for g, sel in enumerate(members):
            within += _within(X[sel], n[sel], g_frac[g], g_n[g], method) * sizes[g]
        within /= len(X)
        between = g_frac.var(axis=0, ddof=1) - (p * (1 - p) / g_n[:, None]).mean(axis=0)
        between = np.clip(between, 0.0, None) if method == "beta_binomial" else 0.0
        return cls(p, n_ref, within + between * (1 + 1 / n_groups), n_groups, method)

    def expected(self, X: np.ndarray) -> np.ndarray:
        """Expected counts: the shape scaled to the integral of each row of ``X`` (or of ``X``)."""
        X = np.asarray(X, dtype=np.float64)
        return X.sum(axis=-1, keepdims=True) * self.shape

    def pulls(self, X: np.ndarray) -> np.ndarray:
        """Deviance pulls of counts ``X`` (LS, bins) or one histogram (bins,); same shape out."""
        X = np.asarray(X, dtype=np.float64)
        one = X.ndim == 1
        out = deviance_pulls(np.atleast_2d(X), self.shape, self.n_entries, self.dispersion)
        return out[0] if one else out

    def chi2(self, X: np.ndarray) -> np.ndarray:
        """sum(pull^2) / bins used of each row: the reference test's ``chi2`` statistic."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        return chi2_per_bin(self.pulls(X), X, self.shape[None, :])

    def to_record(self) -> dict[str, Any]:
        return {
            "data": np.asarray(self.shape, dtype=np.float64),
            "n_entries": float(self.n_entries),
            "dispersion": np.broadcast_to(self.dispersion, self.shape.shape).astype(np.float64),
            "n_runs": int(self.n_runs),
            "method": str(self.method),
        }

    @classmethod
    def from_record(cls, row: Mapping[str, Any]) -> Reference:
        shape = np.asarray(row["data"], dtype=np.float64)
        return cls(
            shape,
            float(row["n_entries"]),
            np.asarray(row["dispersion"], dtype=np.float64),
            int(row["n_runs"]),
            str(row["method"]),
        )


def _within(X: np.ndarray, n: np.ndarray, p: np.ndarray, n_ref: float, method: str) -> np.ndarray:
    """Method-of-moments extra variance of the bin fractions around ``p`` (0 for Poisson)."""
    if method != "beta_binomial":
        return np.zeros_like(p)
    f = X / n[:, None]
    excess = (f - p) ** 2 - p * (1 - p) * (1 / n[:, None] + 1 / n_ref)
    return np.clip(excess.mean(axis=0), 0.0, None)


def references_from_table(table: pd.DataFrame) -> dict[str, Reference]:
    """The saved reference table (``me_references``) back as one :class:`Reference` per ME."""
    if table.empty:
        return {}
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"me_references lacks column(s) {missing}: rerun data_processing to refit the "
            "references"
        )
    return {str(r["me"]): Reference.from_record(r) for r in table.to_dict(orient="records")}


def deviance_pulls(
    X: np.ndarray, p: np.ndarray, n_ref: float | np.ndarray, dispersion: np.ndarray | float
) -> np.ndarray:
    """Signed binomial deviance residuals of counts ``X`` (n, bins) against shapes ``p``.

    ``p`` is one shape (bins,) or one per row (n, bins) with its statistics ``n_ref`` (scalar or
    (n, 1)); ``dispersion`` is the extra variance of the bin fractions (quasi-likelihood). Shared by
    the reference, the pooled reference test and the within-run test, so that all flag and show
    the same pulls. 0 where neither the LS nor the reference has entries.
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
