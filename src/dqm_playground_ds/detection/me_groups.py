"""Training fanned out over groups of MEs: each group fitted apart, merged into the unsharded fit.

Per-ME detectors are independent: a detector set fitted on some of its MEs (the feature set kept
whole, so the integral ratio and the run context are unchanged; the ``max_train`` subsample depends
only on the seed) gives exactly those MEs' models and out-of-fold columns. So ME group ``i`` of
``N`` (:func:`assign_me_groups`: every ME in exactly one group) fits, for its MEs, every detector
set the active strategies need (:func:`fit_me_group`, one process or pod per group), and
:func:`merge_me_groups` assembles the ``N`` partial caches into the cache that
:func:`~.strategy.fit_strategy` reads. The combiners and thresholds need every ME's column: they
are fitted where the groups meet, as without the fan-out, so the strategies are bit-identical.

A group result carries a fingerprint of what its fits read (:func:`fit_fingerprint`): results of
other data, parameters or code never mix with the current ones.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np

from dqm_playground_ds.detection.strategy import (
    DetectorSpec,
    MEDetectorSet,
    StrategySpec,
    applicable,
    cache_key,
    fit_detector_set,
)
from dqm_playground_ds.processing.preprocessing import FeatureSet

_GROUP = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
Cache = dict[str, tuple[MEDetectorSet, np.ndarray]]


class MEGroupError(ValueError):
    """ME group results that cannot be merged; the message names the group and what is wrong."""


def parse_group(text: str) -> tuple[int, int]:
    """``"i/N"`` -> ``(i, N)`` with ``0 <= i < N``."""
    m = _GROUP.match(str(text))
    if not m or not int(m.group(1)) < int(m.group(2)):
        raise ValueError(f"ME group {text!r}: expected 'i/N' with 0 <= i < N, e.g. '0/4'")
    return int(m.group(1)), int(m.group(2))


def partition_name(index: int, count: int) -> str:
    """The partition (file stem) one group's result is saved under."""
    return f"group-{index}-of-{count}"


@dataclass(frozen=True)
class TrainingPlan:
    """What training fits: the strategies, the rows and folds of the calibration, the seed."""

    specs: tuple[StrategySpec, ...]
    train_rows: np.ndarray  # good training LS (fit the detectors)
    folds: np.ndarray  # fold of each train row
    oof_rows: np.ndarray  # training-split LS given out-of-fold scores
    oof_folds: np.ndarray
    random_state: int


def needed_sets(
    plan: TrainingPlan, me_features: Mapping[str, FeatureSet]
) -> dict[str, tuple[str, DetectorSpec]]:
    """Cache key -> (preprocessing, detector) of every detector set the strategies fit, in the
    order :func:`~.strategy.fit_strategy` first meets them (so its spec carries the same name)."""
    out: dict[str, tuple[str, DetectorSpec]] = {}
    for spec in plan.specs:
        for det in applicable(spec, me_features[spec.preprocessing], quiet=True):
            out.setdefault(cache_key(spec.preprocessing, det), (spec.preprocessing, det))
    return out


def me_weights(
    needed: Mapping[str, tuple[str, DetectorSpec]], me_features: Mapping[str, FeatureSet]
) -> dict[str, float]:
    """Rough fitting cost per ME: the input width of every detector set that fits it."""
    weights: dict[str, float] = {}
    for pp, det in needed.values():
        for me, f in me_features[pp].mes.items():
            weights.setdefault(me, 0.0)
            if det.applies_to(me, f.dim):
                weights[me] += 1.0 if det.kind == "integral_ratio" else float(np.prod(f.shape))
    return weights


def assign_me_groups(weights: Mapping[str, float], count: int) -> list[list[str]]:
    """MEs into ``count`` groups, heaviest first into the lightest group (ties: by name, then the
    lowest group): every ME in exactly one group, the same assignment in every process."""
    if count < 1:
        raise ValueError(f"ME groups: need at least 1 group, got {count}")
    groups: list[list[str]] = [[] for _ in range(count)]
    load = [0.0] * count
    for me in sorted(weights, key=lambda m: (-weights[m], m)):
        g = min(range(count), key=lambda i: (load[i], i))
        groups[g].append(me)
        load[g] += weights[me]
    return [sorted(g) for g in groups]


def _versions() -> list[str]:
    from dqm_playground_ds import __version__

    return [__version__, *(metadata.version(p) for p in ("numpy", "scikit-learn", "scipy"))]


def fit_fingerprint(
    plan: TrainingPlan,
    me_features: Mapping[str, FeatureSet],
    needed: Mapping[str, tuple[str, DetectorSpec]],
) -> str:
    """Hash of everything the group fits read: detector sets, seed, rows and folds, the
    training-split features of the preprocessings used, library versions (not ``n_jobs``)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps([sorted(needed), plan.random_state, _versions()]).encode())
    for a in (plan.train_rows, plan.folds, plan.oof_rows, plan.oof_folds):
        h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
    rows = np.union1d(plan.train_rows, plan.oof_rows)
    for pp in sorted({pp for pp, _ in needed.values()}):
        fs = me_features[pp]
        layout = [(m, f.dim, list(f.shape), f.normalisation) for m, f in fs.mes.items()]
        h.update(json.dumps([pp, layout, list(fs.keys.columns)]).encode())
        for col in ("run", "lumi"):
            if col in fs.keys:
                h.update(np.ascontiguousarray(fs.keys[col].to_numpy()[rows]).tobytes())
        h.update(np.ascontiguousarray(fs.quality[rows]).tobytes())
        h.update(np.ascontiguousarray(fs.integral[rows]).tobytes())
        for f in fs.mes.values():
            h.update(np.ascontiguousarray(f.counts[rows]).tobytes())
    return h.hexdigest()


@dataclass
class MEGroupFit:
    """One ME group's part of every detector set: saved by its process, merged by training."""

    index: int
    count: int
    fingerprint: str
    mes: list[str]  # the MEs of this group
    sets: Cache  # cache key -> (this group's detector set, its out-of-fold columns)
    order: dict[str, list[str]]  # cache key -> every ME of the full set, in the full fit's order

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"


def fit_me_group(
    plan: TrainingPlan,
    me_features: Mapping[str, FeatureSet],
    index: int,
    count: int,
    n_jobs: int = 1,
) -> MEGroupFit:
    """Every needed detector set on the MEs of group ``index`` of ``count`` (MEs over ``n_jobs``)."""
    if not 0 <= index < count:
        raise ValueError(f"ME group {index}/{count}: need 0 <= i < N")
    needed = needed_sets(plan, me_features)
    mine = assign_me_groups(me_weights(needed, me_features), count)[index]
    sets: Cache = {}
    order: dict[str, list[str]] = {}
    for key, (pp, det) in needed.items():
        features = me_features[pp]
        order[key] = [m for m, f in features.mes.items() if det.applies_to(m, f.dim)]
        sets[key] = fit_detector_set(det, features, plan.train_rows, plan.folds, plan.random_state,
                                     plan.oof_rows, plan.oof_folds, n_jobs, only=mine)  # fmt: skip
    return MEGroupFit(index, count, fit_fingerprint(plan, me_features, needed), mine, sets, order)


def _check_groups(fits: Sequence[MEGroupFit]) -> None:
    """Same count, fingerprint and detector sets everywhere; each group once; each ME once."""
    first = fits[0]
    for f in fits:
        if f.count != first.count:
            raise MEGroupError(f"ME group {f.label}: one of {f.count} groups, but group "
                               f"{first.label} is one of {first.count}")  # fmt: skip
        if f.fingerprint != first.fingerprint:
            raise MEGroupError(
                f"ME group {f.label}: fitted on other data, parameters or code than group "
                f"{first.label} (fingerprint {f.fingerprint[:12]} != {first.fingerprint[:12]})"
            )
        if f.order != first.order:
            raise MEGroupError(f"ME group {f.label}: other detector sets than group {first.label}")
    seen = Counter(f.index for f in fits)
    duplicated = sorted(i for i, n in seen.items() if n > 1)
    missing = sorted(set(range(first.count)) - set(seen))
    if duplicated or missing:
        raise MEGroupError(f"ME groups of {first.count}: missing {missing}, duplicated "
                           f"{duplicated}; run every group once")  # fmt: skip
    owner: dict[str, str] = {}
    for f in fits:
        for me in f.mes:
            if me in owner:
                raise MEGroupError(f"ME {me!r} is in ME groups {owner[me]} and {f.label}")
            owner[me] = f.label


def merge_me_groups(fits: Sequence[MEGroupFit]) -> Cache:
    """The full cache (MEs and out-of-fold columns in the full fit's order) from every group."""
    if not fits:
        raise MEGroupError("no ME group results to merge")
    _check_groups(fits)
    fits = sorted(fits, key=lambda f: f.index)
    out: Cache = {}
    for key, order in fits[0].order.items():
        columns: dict[str, tuple[Any, np.ndarray]] = {}
        for f in fits:
            part, oof = f.sets[key]
            for j, me in enumerate(part.mes_):
                columns[me] = (part.models_[me], oof[:, j])
        if sorted(columns) != sorted(order):
            lost = sorted(set(order) - set(columns))
            raise MEGroupError(f"detector set {key}: MEs {lost} fitted by no ME group of "
                               f"{fits[0].count}, or MEs {sorted(set(columns) - set(order))} "
                               "not of this set")  # fmt: skip
        template = fits[0].sets[key][0]
        merged = MEDetectorSet(template.spec, template.random_state)
        merged.needs_, merged.mes_ = template.needs_, list(order)
        merged.models_ = {me: columns[me][0] for me in order}
        out[key] = (merged, np.column_stack([columns[me][1] for me in order]))
    return out


def select_me_groups(
    results: Mapping[str, Any], fingerprint: str, expected: int = 0
) -> tuple[Cache | None, list[str]]:
    """The merged cache of a complete set of group results of these inputs, and why each other
    result was not used (a loaded partition may be a callable, as PartitionedDataset gives).

    ``expected``: only a set of that many groups is taken (0: the complete set with most groups).
    """
    notes: list[str] = []
    by_count: dict[int, list[MEGroupFit]] = {}
    for name in sorted(results):
        fit = results[name]
        fit = fit() if callable(fit) else fit
        if not isinstance(fit, MEGroupFit):
            notes.append(f"{name}: not an ME group result ({type(fit).__name__})")
        elif fit.fingerprint != fingerprint:
            notes.append(f"{name}: ME group {fit.label} was fitted on other data, parameters or "
                         "code (stale)")  # fmt: skip
        elif expected and fit.count != expected:
            notes.append(f"{name}: ME group {fit.label}, but {expected} groups are expected")
        else:
            by_count.setdefault(fit.count, []).append(fit)
    for count in sorted(by_count, reverse=True):
        try:
            return merge_me_groups(by_count[count]), notes
        except MEGroupError as exc:
            notes.append(str(exc))
    if expected and expected not in by_count:
        notes.append(f"no result of the current inputs for any of the {expected} ME groups")
    return None, notes
