"""Strategies: detectors fitted per ME, out-of-fold calibration, a combiner and a working point.

A *strategy* is a named list of detector specs (each fitted once per matching ME), the feature
variant they read, a combination (:mod:`dqm_playground_ds.detection.combine`) and a target false-alarm rate.

Calibration is honest by construction: the training LS are split into folds *by run* (by blocks
of consecutive LS when there are fewer runs than folds), every training LS is scored by detectors
that did not see it, and those out-of-fold score vectors fit the combiner and set the threshold.
The final detectors are then refitted on all training LS. The same out-of-fold scores are what a
training LS is reported with, so no LS is ever scored by a model that was trained on it.

Detectors whose ``fit`` takes ``groups`` (the reference test) receive the run of every training LS,
so that the run-to-run spread, not only the LS-to-LS one, defines what is normal. Run-aware
detectors (``uses_groups``, :mod:`dqm_playground_ds.detection.detectors.run_aware`) also score an LS in the
context of the other LS of its run: the scorable LS of that run whose ME passes the quality cuts.

Out-of-fold scores cover every training-split LS, bad ones included (the fold models learn from the
good LS of the other folds), so that real labels of training runs can choose the best strategy
without any LS being scored by a model that saw it.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dqm_playground_ds.detection.combine import ScoreCombiner, me_importance
from dqm_playground_ds.detection.detectors import RunContext, make_detector
from dqm_playground_ds.detection.detectors.run_aware import SCORE_CHUNK_ROWS, run_batches
from dqm_playground_ds.detection.thresholds import threshold_for_rate
from dqm_playground_ds.processing.preprocessing import OK, FeatureSet, MEFeatures
from dqm_playground_ds.workers import parallel_map

log = logging.getLogger(__name__)


class StrategyError(ValueError):
    """A strategy definition in the parameters is malformed."""


@dataclass(frozen=True)
class DetectorSpec:
    """One detector kind with its parameters, applied to every ME matching ``mes`` and ``dims``."""

    name: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    mes: str | None = None  # regular expression, full match; None = every ME
    dims: tuple[int, ...] = (1, 2)
    max_train: int | None = None  # subsample of training LS (keeps training cost bounded)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], where: str) -> DetectorSpec:
        unknown = set(spec) - {"name", "kind", "params", "mes", "dims", "max_train"}
        if unknown or "kind" not in spec:
            raise StrategyError(f"{where}: needs 'kind'; unknown key(s) {sorted(unknown)}")
        out = cls(
            name=str(spec.get("name", spec["kind"])),
            kind=str(spec["kind"]),
            params=dict(spec.get("params") or {}),
            mes=spec.get("mes"),
            dims=tuple(int(d) for d in spec.get("dims", (1, 2))),
            max_train=int(spec["max_train"]) if spec.get("max_train") else None,
        )
        try:
            make_detector(out.kind, dict(out.params))
        except ValueError as exc:
            raise StrategyError(f"{where}: {exc}") from exc
        return out

    def key(self) -> str:
        """Identity of the fitted models (the name is only a label)."""
        return json.dumps(
            [self.kind, dict(self.params), self.mes, self.dims, self.max_train],
            sort_keys=True,
            default=str,
        )

    def applies_to(self, me: str, dim: int) -> bool:
        return dim in self.dims and (self.mes is None or re.fullmatch(self.mes, me) is not None)


@dataclass(frozen=True)
class StrategySpec:
    name: str
    preprocessing: str
    detectors: tuple[DetectorSpec, ...]
    combination: Mapping[str, Any]
    false_alarm_rate: float = 0.01
    consecutive: int = 1
    top_n_mes: int = 3

    @classmethod
    def from_dict(cls, name: str, spec: Mapping[str, Any]) -> StrategySpec:
        where = f"strategy {name!r}"
        unknown = set(spec) - {
            "preprocessing",
            "detectors",
            "combination",
            "threshold",
            "top_n_mes",
        }
        if unknown:
            raise StrategyError(f"{where}: unknown key(s) {sorted(unknown)}")
        dets = spec.get("detectors") or []
        if not dets:
            raise StrategyError(f"{where}: no detectors")
        detectors = tuple(
            DetectorSpec.from_dict(d, f"{where} detector {i}") for i, d in enumerate(dets)
        )
        names = [d.name for d in detectors]
        if len(set(names)) != len(names):
            raise StrategyError(f"{where}: detector names {names} are not unique")
        threshold = dict(spec.get("threshold") or {})
        bad = set(threshold) - {"false_alarm_rate", "consecutive"}
        if bad:
            raise StrategyError(f"{where}: threshold has unknown key(s) {sorted(bad)}")
        combination = dict(spec.get("combination") or {"method": "max_z"})
        try:
            ScoreCombiner(**combination)
        except TypeError as exc:
            raise StrategyError(f"{where}: combination {combination}: {exc}") from exc
        return cls(
            name=name,
            preprocessing=str(spec.get("preprocessing", "default")),
            detectors=detectors,
            combination=combination,
            false_alarm_rate=float(threshold.get("false_alarm_rate", 0.01)),
            consecutive=int(threshold.get("consecutive", 1)),
            top_n_mes=int(spec.get("top_n_mes", 3)),
        )


class _MappedRows:
    """A detector input a worker reads itself: the rows of an ME whose counts are a file of the
    feature store. It pickles as the path and the row numbers, not as the array, so nothing
    is copied to the worker; the worker's result is the same as from the array."""

    def __init__(self, features: MEFeatures, needs: str, rows: np.ndarray) -> None:
        self.features, self.needs, self.rows = features, needs, rows

    def get(self) -> np.ndarray:
        if self.needs == "counts":
            return self.features.counts[self.rows]
        return self.features.values(self.rows)


def _resolved(x: Any) -> Any:
    return x.get() if isinstance(x, _MappedRows) else x


def _detector_input(
    features: FeatureSet,
    me: str,
    needs: str,
    rows: np.ndarray,
    ratio: np.ndarray | None,
    in_worker: bool = False,
) -> Any:
    """The array a detector of ``me`` reads; ``in_worker``: a :class:`_MappedRows` where the
    counts are a file a worker can map (the parent then builds no copy for it)."""
    f = features.mes[me]
    if in_worker and needs in ("counts", "values") and getattr(f.source, "portable", False):
        return _MappedRows(f, needs, rows)
    if needs == "counts":
        return features.mes[me].counts[rows]
    if needs == "values":
        return features.mes[me].values(rows)
    j = features.me_names.index(me)
    if ratio is None:
        raise StrategyError(f"{me}: the integral ratio was not computed")
    return ratio[rows, j : j + 1]


class MEDetectorSet:
    """One :class:`DetectorSpec` fitted separately on every ME it applies to."""

    def __init__(self, spec: DetectorSpec, random_state: int = 0) -> None:
        self.spec = spec
        self.random_state = random_state

    def fit(
        self,
        features: FeatureSet,
        rows: np.ndarray,
        n_jobs: int = 1,
        only: Collection[str] | None = None,
    ) -> MEDetectorSet:
        """One detector per ME on ``rows`` (subsampled to ``max_train``); MEs over ``n_jobs``.

        ``only``: fit just these of the matching MEs (one ME group of a fan-out; may leave none).
        The subsample and every ME's model do not depend on the other MEs, so the models are those
        of the full fit; ``features`` stays whole (the integral ratio and run context use all MEs).
        """
        rows, ratio, runs = self._prepare(features, rows, only)
        if not self.mes_:
            self.models_ = {}
            return self
        order = _largest_first(features, self.mes_)
        tasks = (self._fit_args(features, j, rows, ratio, runs, n_jobs > 1) for j in order)
        fitted = parallel_map(_fit_detector, tasks, n_jobs, n_tasks=len(order))
        by_me = {self.mes_[j]: model for j, model in zip(order, fitted, strict=True)}
        self.models_ = {me: by_me[me] for me in self.mes_}
        return self

    def _prepare(
        self, features: FeatureSet, rows: np.ndarray, only: Collection[str] | None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Set ``mes_`` and ``needs_``; return the (subsampled) training rows, the integral ratio
        if the detector reads it, and the run of every training row."""
        spec = self.spec
        rng = np.random.default_rng(self.random_state)
        if spec.max_train and len(rows) > spec.max_train:
            rows = np.sort(rng.choice(rows, spec.max_train, replace=False))
        _, self.needs_ = make_detector(spec.kind, dict(spec.params))
        self.mes_ = [m for m, f in features.mes.items() if spec.applies_to(m, f.dim)]
        if not self.mes_:
            raise StrategyError(f"detector {spec.name!r}: no ME matches mes={spec.mes!r}")
        if only is not None:
            keep = set(only)
            self.mes_ = [m for m in self.mes_ if m in keep]
        if not self.mes_:
            return rows, None, None
        ratio = features.integral_ratio() if self.needs_ == "integral_ratio" else None
        runs = features.keys["run"].to_numpy()[rows] if "run" in features.keys else None
        return rows, ratio, runs

    def _fit_args(
        self,
        features: FeatureSet,
        j: int,
        rows: np.ndarray,
        ratio: np.ndarray | None,
        runs: np.ndarray | None,
        in_worker: bool,
    ) -> tuple[Any, ...]:
        """The arguments of :func:`_fit_detector` for the ``j``-th ME."""
        me = self.mes_[j]
        x = _detector_input(features, me, self.needs_, rows, ratio, in_worker)
        return self.spec, self.random_state, tuple(features.mes[me].shape), x, runs

    @property
    def columns(self) -> list[tuple[str, str]]:
        return [(me, self.spec.name) for me in self.mes_]

    def relabelled(self, spec: DetectorSpec) -> MEDetectorSet:
        """The same fitted models under another strategy's detector name (same ``key()``)."""
        if spec.key() != self.spec.key():
            raise StrategyError(
                f"detector {spec.name!r} is not the same detector as {self.spec.name!r}"
            )
        out = MEDetectorSet(spec, self.random_state)
        out.mes_, out.models_, out.needs_ = self.mes_, self.models_, self.needs_
        return out

    def anomaly_scores(
        self,
        features: FeatureSet,
        rows: np.ndarray | None = None,
        context: tuple[FeatureSet, np.ndarray] | None = None,
        n_jobs: int = 1,
    ) -> np.ndarray:
        """Raw anomaly scores (n, n_mes); NaN for LS that cannot be scored.

        ``context``: (feature set, row of it that each row of ``features`` stands for, -1 if none)
        gives run-aware detectors the run of a scored LS from elsewhere (injected anomalies are
        scored against the real LS of their run); by default the scored rows are their own context.
        """
        rows = np.arange(len(features)) if rows is None else np.asarray(rows)
        out = np.full((len(rows), len(self.mes_)), np.nan)
        ok = features.scorable[rows]
        if not ok.any() or not self.mes_:
            return out
        ratio = features.integral_ratio() if self.needs_ == "integral_ratio" else None
        scored = rows[ok]
        order = _largest_first(features, self.mes_)
        tasks = (
            (self.models_[self.mes_[j]],
             *self._score_args(features, j, scored, ratio, context, n_jobs > 1))
            for j in order
        )  # fmt: skip
        columns = parallel_map(_anomaly, tasks, n_jobs, n_tasks=len(order))
        for j, column in zip(order, columns, strict=True):
            out[ok, j] = column
        return out

    def _uses_groups(self) -> bool:
        det, _ = make_detector(self.spec.kind, dict(self.spec.params))
        return bool(getattr(det, "uses_groups", False))

    def _score_args(
        self,
        features: FeatureSet,
        j: int,
        scored: np.ndarray,
        ratio: np.ndarray | None,
        context: tuple[FeatureSet, np.ndarray] | None,
        in_worker: bool = False,
    ) -> tuple[Any, np.ndarray | None, RunContext | None]:
        """(inputs, runs, run context) of the ``j``-th ME: with its model, all a worker needs to
        score it (the model is not needed to build them: a fold's model can be fitted there)."""
        me = self.mes_[j]
        x = _detector_input(features, me, self.needs_, scored, ratio, in_worker)
        if not self._uses_groups():
            return x, None, None
        runs = features.keys["run"].to_numpy()[scored]
        if context is None:
            ctx_features, own_rows = features, scored
            candidates = scored
        else:
            ctx_features, own_map = context
            own_rows = np.asarray(own_map)[scored]
            candidates = np.flatnonzero(
                np.isin(ctx_features.keys["run"].to_numpy(), np.unique(runs))
            )
        k = ctx_features.me_names.index(me)
        good = ctx_features.scorable[candidates] & (ctx_features.quality[candidates, k] == OK)
        ctx_rows = candidates[good]
        pos = np.full(len(ctx_features), -1)
        pos[ctx_rows] = np.arange(len(ctx_rows))
        own = np.where(own_rows >= 0, pos[np.maximum(own_rows, 0)], -1)
        cx = _detector_input(ctx_features, me, self.needs_, ctx_rows, ratio, in_worker)
        ctx_runs = ctx_features.keys["run"].to_numpy()[ctx_rows]
        return x, runs, RunContext(cx, ctx_runs, own)


def _fit_detector(
    spec: DetectorSpec, random_state: int, shape: tuple[int, ...], x: np.ndarray, runs: Any
) -> Any:
    """One ME's detector (module level: it may run in a worker process)."""
    x = _resolved(x)
    det, _ = make_detector(spec.kind, dict(spec.params))
    if "random_state" in det.get_params() and "random_state" not in spec.params:
        det.set_params(random_state=random_state)
    if "shape" in det.get_params() and "shape" not in spec.params:
        det.set_params(shape=shape)
    if "groups" in inspect.signature(det.fit).parameters:
        return det.fit(x, groups=runs)  # type: ignore[call-arg]
    return det.fit(x)


def _largest_first(features: FeatureSet, mes: list[str]) -> list[int]:
    """Positions of ``mes``, the MEs with most bins first: a worker that takes the big 2D maps
    first is not left alone with one at the end (the results go back in ``mes`` order)."""
    return sorted(range(len(mes)), key=lambda j: -int(np.prod(features.mes[mes[j]].shape)))


def _rows_of(x: Any, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` of a detector input (read from the feature store when it is mapped)."""
    if isinstance(x, _MappedRows):
        return _MappedRows(x.features, x.needs, x.rows[rows]).get()
    return x[rows]


def _anomaly(model: Any, x: Any, runs: Any, context: RunContext | None) -> np.ndarray:
    """Scores of one ME's LS, by batches of ``SCORE_CHUNK_ROWS`` LS (whole runs for run-aware
    detectors: a score depends on its run only), each read when scored: a worker holds one
    batch's inputs and temporaries, not those of every LS (GBs for a 2D map of 300k LS). The
    batches depend on the rows alone, so the scores are the same in a worker or in-process."""
    n = len(x.rows) if isinstance(x, _MappedRows) else len(x)
    if n <= SCORE_CHUNK_ROWS:
        x = _resolved(x)
        if context is None:
            return model.anomaly_score(x)
        if isinstance(context.X, _MappedRows):
            context = RunContext(context.X.get(), context.groups, context.own)
        return model.anomaly_score(x, groups=runs, context=context)
    out = np.empty(n)
    if context is None:
        for start in range(0, n, SCORE_CHUNK_ROWS):
            rows = np.arange(start, min(start + SCORE_CHUNK_ROWS, n))
            out[rows] = model.anomaly_score(_rows_of(x, rows))
        return out
    for rows, ctx_rows, own in run_batches(runs, context, SCORE_CHUNK_ROWS):
        sub = RunContext(_rows_of(context.X, ctx_rows), context.groups[ctx_rows], own)
        out[rows] = model.anomaly_score(_rows_of(x, rows), groups=runs[rows], context=sub)
    return out


def assign_folds(keys: pd.DataFrame, n_folds: int) -> np.ndarray:
    """Fold id per row: whole runs, largest first into the emptiest fold; LS blocks if too few runs."""
    runs = keys["run"].to_numpy()
    sizes = pd.Series(runs).value_counts()
    if len(sizes) >= n_folds:
        load = np.zeros(n_folds)
        fold_of = {}
        for run, size in sizes.sort_values(ascending=False, kind="stable").items():
            f = int(np.argmin(load))
            fold_of[run] = f
            load[f] += size
        return np.array([fold_of[r] for r in runs])
    log.warning(
        "%d training run(s) < %d folds: calibration folds are blocks of consecutive LS instead "
        "of runs (out-of-fold scores are then optimistic)",
        len(sizes),
        n_folds,
    )
    out = np.empty(len(keys), dtype=int)
    for run in sizes.index:
        sel = np.flatnonzero(runs == run)
        order = sel[np.argsort(keys["lumi"].to_numpy()[sel], kind="stable")]
        out[order] = np.arange(order.size) * n_folds // order.size
    return out


def fit_detector_set(
    spec: DetectorSpec,
    features: FeatureSet,
    train_rows: np.ndarray,
    folds: np.ndarray,
    random_state: int = 0,
    oof_rows: np.ndarray | None = None,
    oof_folds: np.ndarray | None = None,
    n_jobs: int = 1,
    only: Collection[str] | None = None,
) -> tuple[MEDetectorSet, np.ndarray]:
    """Final detector set on all training rows and the out-of-fold scores of ``oof_rows``.

    ``oof_rows`` (default: the training rows) are scored by the model of their fold
    (``oof_folds``), fitted on the training rows of the other folds. ``only``: restrict to these
    MEs (:meth:`MEDetectorSet.fit`): the columns are then exactly those of the full fit.
    """
    if oof_rows is None:
        oof_rows, oof_folds = train_rows, folds
    oof_rows, oof_folds = np.asarray(oof_rows), np.asarray(oof_folds)
    in_worker = n_jobs > 1
    final = MEDetectorSet(spec, random_state)
    final_rows, ratio, runs = final._prepare(features, train_rows, only)
    oof = np.full((len(oof_rows), len(final.mes_)), np.nan)
    if not final.mes_:
        final.models_ = {}
        return final, oof
    # every fold's model of every ME and the final models are independent tasks of one pool: a
    # fold's model is fitted and scores its held-out LS in the worker (only scores come back),
    # and no worker waits at the end of a fold for the others. The inputs of a task are built
    # when it is dispatched, so at most a few tasks' arrays exist at once.
    plans: dict[int, tuple[MEDetectorSet, np.ndarray, Any, Any, np.ndarray | None]] = {
        -1: (final, final_rows, ratio, runs, None)
    }
    held_rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for f in np.unique(folds).tolist():
        part = MEDetectorSet(spec, random_state)
        rows, part_ratio, part_runs = part._prepare(features, train_rows[folds != f], only)
        held = np.flatnonzero(oof_folds == f)
        ok = features.scorable[oof_rows[held]]
        if ok.any():  # a fold with nothing to score needs no model
            held_rows[f] = (held, ok)
            plans[f] = (part, rows, part_ratio, part_runs, oof_rows[held][ok])
    rank = {j: r for r, j in enumerate(_largest_first(features, final.mes_))}
    order = sorted(  # biggest MEs first, the final model last of each ME
        ((f, j) for f in plans for j in range(len(final.mes_))),
        key=lambda t: (rank[t[1]], t[0] < 0, t[0]),
    )

    def task(f: int, j: int) -> tuple[tuple[Any, ...], tuple[Any, ...] | None]:
        det, rows, r, g, scored = plans[f]
        fit = det._fit_args(features, j, rows, r, g, in_worker)
        if scored is None:
            return fit, None
        return fit, det._score_args(features, j, scored, r, None, in_worker)

    results = parallel_map(_train_task, (task(f, j) for f, j in order), n_jobs, n_tasks=len(order))
    models: dict[str, Any] = {}
    for (f, j), result in zip(order, results, strict=True):
        if f < 0:
            models[final.mes_[j]] = result
        else:
            held, ok = held_rows[f]
            oof[held[ok], j] = result
    final.models_ = {me: models[me] for me in final.mes_}
    return final, oof


def _train_task(fit: tuple[Any, ...], score: tuple[Any, ...] | None) -> Any:
    """A final model, or a fold's model's scores of its held-out LS (it may run in a worker)."""
    model = _fit_detector(*fit)
    return model if score is None else _anomaly(model, *score)


@dataclass
class StrategyScores:
    raw: np.ndarray  # (n, k) detector scores
    z: np.ndarray  # (n, k) standardised
    score: np.ndarray  # (n,) LS score
    mes: list[str]  # ME order of ``importance``
    importance: np.ndarray  # (n, n_me) per-ME standardised score


@dataclass
class Strategy:
    """A fitted strategy; pickled into ``06_models``."""

    spec: StrategySpec
    detector_sets: list[MEDetectorSet]
    combiner: ScoreCombiner
    threshold: float
    oof_keys: pd.DataFrame  # training-split LS (run, lumi) with out-of-fold scores
    oof_raw: np.ndarray
    oof_good: np.ndarray | None = None  # which of them are good training LS (calibration)

    @property
    def columns(self) -> list[tuple[str, str]]:
        return [c for s in self.detector_sets for c in s.columns]

    def raw_scores(
        self,
        features: FeatureSet,
        use_oof: bool = True,
        cache: dict | None = None,
        context: tuple[FeatureSet, np.ndarray] | None = None,
        n_jobs: int = 1,
    ) -> np.ndarray:
        """Detector scores; ``cache`` shares them between strategies that share detector sets."""
        cache = {} if cache is None else cache
        parts = []
        for s in self.detector_sets:
            # the entry keeps the feature set it was computed on: an identity check, never an id()
            key = (s.spec.key(), self.spec.preprocessing, context is None)
            hit = cache.get(key)
            if hit is None or hit[0] is not features:
                raw = s.anomaly_scores(features, context=context, n_jobs=n_jobs)
                hit = cache[key] = (features, raw)
            parts.append(hit[1])
        raw = np.hstack(parts)
        if use_oof and {"run", "lumi"} <= set(features.keys.columns) and len(self.oof_keys):
            idx = pd.MultiIndex.from_frame(self.oof_keys[["run", "lumi"]])
            pos = idx.get_indexer(pd.MultiIndex.from_frame(features.keys[["run", "lumi"]]))
            hit = pos >= 0
            raw[hit] = self.oof_raw[pos[hit]]
        return raw

    def anomaly_scores(
        self,
        features: FeatureSet,
        use_oof: bool = True,
        cache: dict | None = None,
        context: tuple[FeatureSet, np.ndarray] | None = None,
        n_jobs: int = 1,
    ) -> StrategyScores:
        """Scores of every LS of ``features`` (training LS get their out-of-fold scores)."""
        raw = self.raw_scores(features, use_oof, cache, context, n_jobs)
        z = self.combiner.standardise(raw)
        mes, importance = me_importance(z, [me for me, _ in self.columns])
        return StrategyScores(raw, z, self.combiner.anomaly_score(raw), mes, importance)


def cache_key(preprocessing: str, det: DetectorSpec) -> str:
    """Identity of a fitted detector set across strategies: its features and its ``key()``."""
    return f"{preprocessing}|{det.key()}"


def applicable(spec: StrategySpec, features: FeatureSet, quiet: bool = False) -> list[DetectorSpec]:
    """The strategy's detectors that match some ME of the data (the others are logged, skipped)."""
    detectors = [
        d for d in spec.detectors if any(d.applies_to(m, f.dim) for m, f in features.mes.items())
    ]
    if not detectors:
        raise StrategyError(
            f"strategy {spec.name!r}: no detector applies to any ME of the data "
            f"({sorted(features.mes)}); check the detectors' mes/dims"
        )
    for d in [] if quiet else spec.detectors:
        if d not in detectors:
            log.info("strategy %s: detector %s matches no ME (mes=%r, dims=%s): skipped",
                     spec.name, d.name, d.mes, list(d.dims))  # fmt: skip
    return detectors


def _fit_combiner(
    spec: StrategySpec, columns: list[tuple[str, str]], calib: np.ndarray
) -> ScoreCombiner:
    """The combiner on the good training LS's out-of-fold scores; silent columns are named."""
    usable = ~np.isnan(calib).any(axis=1)
    combiner = ScoreCombiner(**spec.combination).fit(calib[usable])
    for (me, det_name), live in zip(columns, combiner.active_, strict=True):
        if not live:
            log.warning(
                "strategy %s: detector %s on %s gives the same score to every training LS "
                "(nothing to see in this data, e.g. an ME ratio with one ME): it has no vote",
                spec.name,
                det_name,
                me,
            )
    return combiner


def fit_strategy(
    spec: StrategySpec,
    features: FeatureSet,
    train_rows: np.ndarray,
    folds: np.ndarray,
    cache: dict[str, tuple[MEDetectorSet, np.ndarray]] | None = None,
    random_state: int = 0,
    oof_rows: np.ndarray | None = None,
    oof_folds: np.ndarray | None = None,
    n_jobs: int = 1,
) -> Strategy:
    """Fit (or reuse from ``cache``) each detector set, then the combiner and the threshold.

    ``oof_rows`` (default: the training rows) get out-of-fold scores; the combiner and the
    threshold only see those of ``train_rows`` (the good training LS).
    """
    cache = {} if cache is None else cache
    if oof_rows is None:
        oof_rows, oof_folds = train_rows, folds
    oof_rows = np.asarray(oof_rows)
    good = np.isin(oof_rows, train_rows)
    detectors = applicable(spec, features)
    sets, oofs = [], []
    for det in detectors:
        key = cache_key(spec.preprocessing, det)
        if key not in cache:
            log.info("strategy %s: fitting %s (%s)", spec.name, det.name, det.kind)
            cache[key] = fit_detector_set(
                det, features, train_rows, folds, random_state, oof_rows, oof_folds, n_jobs
            )
        final, oof = cache[key]
        if final.spec.name != det.name:  # same models, this strategy's column label
            final = final.relabelled(det)
        sets.append(final)
        oofs.append(oof)
    oof_raw = np.hstack(oofs)
    calib = oof_raw[good]
    combiner = _fit_combiner(spec, [c for s in sets for c in s.columns], calib)
    threshold = threshold_for_rate(combiner.anomaly_score(calib), spec.false_alarm_rate)
    keys = features.keys.iloc[oof_rows][["run", "lumi"]].reset_index(drop=True)
    return Strategy(spec, sets, combiner, threshold, keys, oof_raw, good)
