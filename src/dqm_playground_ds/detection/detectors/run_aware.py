"""Run-aware detectors: an LS against its own run, a run against the good training runs.

On real data the run-to-run variation of a monitor element dominates the LS-to-LS one (2017
``MainDiagonal Position``: the run means spread ~13x more than the LS of one run). A pooled reference
must then tolerate the whole envelope of good runs, so an LS shifted by one run-sigma looks like
another run while a good run with unusual calibration is flagged in full. Two detectors split the
question in two levels:

* :class:`RunNeighbors` (level b): the mean normalised histogram of the LS's run against the run
  means of the good training runs (mean distance to the ``n_neighbors`` nearest). A whole bad run,
  the common case in certification, stands out here; a run's own calibration does not, as long as
  some good training run looks like it. ``mode="causal"``: the run mean of the LS seen so far (live
  use, nothing from the future of the run).
* :class:`WithinRunDeviation` (level a): the LS's counts against the rest of its own run (leave one
  out, or the preceding LS with ``mode="causal"``), as deviance pulls with the within-run extra
  variance learned on the training runs; the run's calibration cancels. An LS without a reference
  (a run of one LS, the first LS in causal mode) gets the median training score: no evidence.

Both take ``groups`` (the run of every row; rows of a run in LS order) in ``fit`` and in
``anomaly_score``; without it RunNeighbors takes every LS as its own run (a plain kNN on LS) and
WithinRunDeviation takes all LS as one run (each LS against all the others). ``context`` gives the run of a scored LS from elsewhere: an anomaly injected into
an LS is scored against the real LS of its run (the injected LS replacing its original ``own``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from numbers import Integral

import numpy as np
from scipy import sparse
from sklearn.neighbors import NearestNeighbors
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from dqm_playground_ds.detection.detectors.base import BaseDetector
from dqm_playground_ds.detection.detectors.reference import scan_statistic
from dqm_playground_ds.detection.reference import chi2_per_bin, deviance_pulls

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunContext:
    """The LS of the runs a scored row belongs to.

    ``X``/``groups``: the context rows (rows of a run in LS order); ``own[i]``: the context row that
    scored row ``i`` stands for (it is left out of, or replaced in, its run), -1 if none.
    """

    X: np.ndarray
    groups: np.ndarray
    own: np.ndarray


def _as_groups(groups, n: int, each: bool = True) -> np.ndarray:
    if groups is None:  # no run information: every LS its own run, or all one run
        return np.arange(n) if each else np.zeros(n, dtype=np.int64)
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups has {groups.size} entries for {n} samples")
    return groups


SCORE_CHUNK_ROWS = 16384  # scored LS per batch of whole runs
FIT_CHUNK_ROWS = 16384  # training LS per batch of whole runs (WithinRunDeviation)


def run_chunks(groups: np.ndarray, max_rows: int) -> list[np.ndarray]:
    """The runs of ``groups`` in consecutive batches of at most ``max_rows`` rows (a bigger run
    is a batch of its own)."""
    values, counts = np.unique(groups, return_counts=True)
    batches, start, size = [], 0, 0
    for i, n in enumerate(counts.tolist()):
        if size and size + n > max_rows:
            batches.append(values[start:i])
            start, size = i, 0
        size += n
    if len(values):
        batches.append(values[start:])
    return batches


def run_batches(
    groups: np.ndarray, context: RunContext, max_rows: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Scored rows in batches of whole runs (:func:`run_chunks`): for each batch, its rows, the
    rows of ``context`` in those runs, and the position among the latter of each row's own
    context row (-1 if none): what scoring a batch alone needs."""
    for runs in run_chunks(groups, max_rows):
        rows = np.flatnonzero(np.isin(groups, runs))
        ctx_rows = np.flatnonzero(np.isin(context.groups, runs))
        pos = np.full(len(context.groups), -1)
        pos[ctx_rows] = np.arange(len(ctx_rows))
        own = context.own[rows]
        yield rows, ctx_rows, np.where(own >= 0, pos[np.maximum(own, 0)], -1)


def group_sums(inverse: np.ndarray, X: np.ndarray, n_groups: int) -> np.ndarray:
    """Row sums per group (a sparse product: np.add.at is ~50x slower on wide histograms)."""
    ind = sparse.csr_matrix(
        (np.ones(len(inverse)), (inverse, np.arange(len(inverse)))), shape=(n_groups, len(X))
    )
    return np.asarray(ind @ X)


def _run_sums(
    ctx: RunContext, groups: np.ndarray, x: np.ndarray, causal: bool, replace: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per scored row: sum and count of its run's context LS, own row left out or replaced by ``x``.

    ``causal``: only context rows before the own row (all of the run if there is none).
    """
    uniq, inv = np.unique(np.concatenate([ctx.groups, groups]), return_inverse=True)
    g_ctx, g_row = inv[: len(ctx.groups)], inv[len(ctx.groups) :]
    d = ctx.X.shape[1]
    own = ctx.own
    has = own >= 0
    if not causal:
        sums = group_sums(g_ctx, ctx.X, len(uniq))
        counts = np.bincount(g_ctx, minlength=len(uniq)).astype(np.float64)
        s, c = sums[g_row], counts[g_row]
        s[has] -= ctx.X[own[has]]
        c[has] -= 1
    else:
        # cumulative sums in context order within each run: prefix before the own row
        order = np.argsort(g_ctx, kind="stable")
        cs = np.cumsum(ctx.X[order], axis=0)
        cs = np.vstack([np.zeros((1, d)), cs])
        start = np.searchsorted(g_ctx[order], np.arange(len(uniq)), side="left")
        stop = np.searchsorted(g_ctx[order], np.arange(len(uniq)), side="right")
        pos_in_order = np.empty(len(order), dtype=np.int64)
        pos_in_order[order] = np.arange(len(order))
        end = stop[g_row].copy()
        end[has] = pos_in_order[own[has]]
        s = cs[end] - cs[start[g_row]]
        c = (end - start[g_row]).astype(np.float64)
    if replace:
        s = s + x
        c = c + 1
    return s, c


class _GroupedDetector(BaseDetector):
    """Detectors whose score of a row depends on the other rows of its run."""

    uses_groups = True
    _each_its_own_run = True  # without groups: every LS is its own run (else: all one run)
    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "mode": [StrOptions({"run", "causal"})],
    }

    def fit(self, X, y=None, groups=None):
        self._validate_params()
        X = self._validate(X, reset=True)
        if X.shape[0] < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 samples, got 1 sample")
        groups = _as_groups(groups, len(X), self._each_its_own_run)
        train_scores = self._fit_grouped(X, groups)
        self.offset_ = float(np.percentile(-train_scores, 100.0 * self.contamination))
        return self

    def anomaly_score(self, X, groups=None, context: RunContext | None = None) -> np.ndarray:
        """Higher = more anomalous; ``groups``: run of each row; ``context``: see the module."""
        check_is_fitted(self, "offset_")
        X = self._validate(X, reset=False)
        groups = _as_groups(groups, len(X), self._each_its_own_run)
        own_context = context is None
        if context is None:
            context = RunContext(X, groups, np.arange(len(X)))
        elif len(context.own) != len(X):
            raise ValueError(f"context.own has {len(context.own)} entries for {len(X)} samples")
        if len(X) <= SCORE_CHUNK_ROWS:
            return self._anomaly_grouped(X, groups, context).astype(np.float64)
        # a row's score depends on its run only: whole runs at a time keep the (rows, bins)
        # float64 run sums and pulls of a batch, not of every scored LS (9 GB at 300k LS)
        out = np.empty(len(X))
        for rows, ctx_rows, own in run_batches(groups, context, SCORE_CHUNK_ROWS):
            x = X[rows]
            if own_context:
                sub = RunContext(x, groups[rows], own)
            else:
                sub = RunContext(context.X[ctx_rows], context.groups[ctx_rows], own)
            out[rows] = self._anomaly_grouped(x, groups[rows], sub)
        return out

    def score_samples(self, X, groups=None) -> np.ndarray:
        return -self.anomaly_score(X, groups)

    def decision_function(self, X, groups=None) -> np.ndarray:
        return self.score_samples(X, groups) - self.offset_

    def predict(self, X, groups=None) -> np.ndarray:
        return np.where(self.decision_function(X, groups) >= 0, 1, -1)

    def _anomaly(self, X: np.ndarray) -> np.ndarray:
        # score_samples/predict without groups (see _each_its_own_run)
        g = _as_groups(None, len(X), self._each_its_own_run)
        return self._anomaly_grouped(X, g, RunContext(X, g, np.arange(len(X))))

    def _fit_grouped(self, X: np.ndarray, groups: np.ndarray) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover - abstract

    def _anomaly_grouped(self, X: np.ndarray, groups: np.ndarray, ctx: RunContext) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover - abstract


class RunNeighbors(_GroupedDetector):
    """Run mean of the normalised histogram vs the good training runs' means (kNN distance).

    Every LS of a run gets its run's score (in causal mode, the score of the run so far). Input:
    normalised histograms (``values``). ``window``: compare a run only with the ``window`` good
    training runs nearest in run number (groups must then be run numbers), a reference that follows
    slow drifts over the year (as LHCb's DINAMO does in time order).
    """

    _parameter_constraints: dict = {
        **_GroupedDetector._parameter_constraints,
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "window": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(
        self,
        n_neighbors: int = 3,
        mode: str = "run",
        window: int | None = None,
        contamination: float = 0.01,
    ):
        self.n_neighbors = n_neighbors
        self.mode = mode
        self.window = window
        self.contamination = contamination

    def _fit_grouped(self, X: np.ndarray, groups: np.ndarray) -> np.ndarray:
        uniq, inv = np.unique(groups, return_inverse=True)
        sums = group_sums(inv, X, len(uniq))
        self.run_means_ = sums / np.bincount(inv)[:, None]
        self.runs_ = uniq
        self.n_runs_ = len(uniq)
        if self.n_runs_ < 2:
            log.warning(
                "RunNeighbors: one training run; a run is scored by its distance to that run"
            )
        self.n_neighbors_ = min(self.n_neighbors, self.n_runs_)
        self.model_ = NearestNeighbors(n_neighbors=self.n_neighbors_).fit(self.run_means_)
        # in-sample, like every detector's offset_ (a training run finds itself at distance 0);
        # the pipeline calibrates on out-of-fold scores instead
        return self._distance(self.run_means_, uniq)[inv]

    def _distance(self, V: np.ndarray, runs: np.ndarray) -> np.ndarray:
        if self.window is None or self.window >= self.n_runs_:
            dist, _ = self.model_.kneighbors(V)
            return dist.mean(axis=1)
        try:
            runs = np.asarray(runs, dtype=np.float64)
            train = self.runs_.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                "RunNeighbors(window=...) needs numeric run numbers as groups"
            ) from exc
        out = np.empty(len(V))
        k = min(self.n_neighbors_, self.window)
        for i, (v, r) in enumerate(zip(V, runs, strict=True)):
            near = np.argsort(np.abs(train - r), kind="stable")[: self.window]
            d = np.sqrt(((self.run_means_[near] - v) ** 2).sum(axis=1))
            out[i] = np.sort(d)[:k].mean()
        return out

    def _anomaly_grouped(self, X: np.ndarray, groups: np.ndarray, ctx: RunContext) -> np.ndarray:
        causal = self.mode == "causal"
        if not causal and ctx.X is X:
            # the common case (every row is its own context row): one distance per run
            uniq, inv = np.unique(groups, return_inverse=True)
            sums = group_sums(inv, X, len(uniq))
            return self._distance(sums / np.bincount(inv)[:, None], uniq)[inv]
        s, c = _run_sums(ctx, groups, X, causal=causal, replace=True)
        return self._distance(s / c[:, None], groups)


class WithinRunDeviation(_GroupedDetector):
    """Counts of an LS against the rest of its run: deviance pulls with within-run dispersion.

    ``statistic``: ``chi2`` (sum of squared pulls per bin used) or ``scan`` (largest window sum,
    as in the reference test). Input: counts (not normalised).
    """

    _positive_only = True
    _each_its_own_run = False
    _parameter_constraints: dict = {
        **_GroupedDetector._parameter_constraints,
        "statistic": [StrOptions({"chi2", "scan"})],
        "shape": [tuple, list, None],
    }

    def __init__(
        self,
        statistic: str = "chi2",
        mode: str = "run",
        shape: tuple[int, ...] | None = None,
        contamination: float = 0.01,
        chunk_size: int = 4096,
    ):
        self.statistic = statistic
        self.mode = mode
        self.shape = shape
        self.contamination = contamination
        self.chunk_size = chunk_size

    def _fit_grouped(self, X: np.ndarray, groups: np.ndarray) -> np.ndarray:
        # by batches of whole runs (an LS is compared with its run only): the float64 copies,
        # run references and moments of one batch at a time, not of every training LS (5 arrays
        # of 1.7 GB each for a 32x32 map of 210k LS)
        batches = [np.flatnonzero(np.isin(groups, b)) for b in run_chunks(groups, FIT_CHUNK_ROWS)]
        # method of moments: extra variance of the LS bin fractions around their run's reference
        total, n_ok = np.zeros(X.shape[1]), 0
        ok = np.zeros(len(X), dtype=bool)
        for rows in batches:
            x, ref, n_ref = self._batch_reference(X, groups, rows)
            n = x.sum(axis=1, keepdims=True)
            good = (n[:, 0] > 0) & (n_ref[:, 0] > 0)
            ok[rows] = good
            f, p = x[good] / n[good], ref[good] / n_ref[good]
            excess = (f - p) ** 2 - p * (1 - p) * (1 / n[good] + 1 / n_ref[good])
            total += excess.sum(axis=0)
            n_ok += int(good.sum())
            del x, ref, n_ref, f, p, excess
        if not n_ok:
            raise ValueError(
                "WithinRunDeviation: no training LS has another LS of its run to compare with "
                "(every training run has a single LS)"
            )
        self.dispersion_ = np.clip(total / n_ok, 0.0, None)
        self.neutral_ = 0.0
        scores = np.empty(len(X))
        for rows in batches:
            x, ref, n_ref = self._batch_reference(X, groups, rows)
            scores[rows] = self._statistic(x, ref, n_ref)
        self.neutral_ = float(np.median(scores[ok]))
        scores[~ok] = self.neutral_
        return scores

    def _batch_reference(
        self, X: np.ndarray, groups: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """float64 counts of ``rows`` (whole runs) and the reference of each from its run."""
        x = X[rows].astype(np.float64)
        ref, n_ref = self._reference(
            x, groups[rows], RunContext(x, groups[rows], np.arange(len(x)))
        )
        return x, ref, n_ref

    def _reference(
        self, X: np.ndarray, groups: np.ndarray, ctx: RunContext
    ) -> tuple[np.ndarray, np.ndarray]:
        s, _ = _run_sums(ctx, groups, X, causal=self.mode == "causal", replace=False)
        return s, s.sum(axis=1, keepdims=True)

    def _statistic(self, X: np.ndarray, ref: np.ndarray, n_ref: np.ndarray) -> np.ndarray:
        out = np.full(len(X), self.neutral_)
        n = X.sum(axis=1)
        for start in range(0, len(X), self.chunk_size):
            sl = slice(start, start + self.chunk_size)
            ok = (n[sl] > 0) & (n_ref[sl, 0] > 0)
            if not ok.any():
                continue
            x, r, nr = X[sl][ok], ref[sl][ok], n_ref[sl][ok]
            p = r / nr
            pull = deviance_pulls(x, p, nr, self.dispersion_)
            if self.statistic == "chi2":
                stat = chi2_per_bin(pull, x, p)
            else:
                stat = scan_statistic(pull, self.shape)
            out[np.arange(start, min(start + self.chunk_size, len(X)))[ok]] = stat
        return out

    def _anomaly_grouped(self, X: np.ndarray, groups: np.ndarray, ctx: RunContext) -> np.ndarray:
        X = X.astype(np.float64)
        cx = RunContext(ctx.X.astype(np.float64), ctx.groups, ctx.own)
        ref, n_ref = self._reference(X, groups, cx)
        return self._statistic(X, ref, n_ref)
