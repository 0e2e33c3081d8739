"""Train/apply split of lumisections by run, as a platform task or a local YAML file defines it.

A split names the runs (and optionally single lumisections) to train on and to apply to. The field
splits by run, never by LS: neighbouring LS of one run are nearly identical. LS-level lists exist
because platform tasks carry them; a run listed on both sides is refused.

YAML/JSON form::

    name: pixel-2018
    train: {runs: [315257, 315259]}
    apply: {runs: [315264], lumisections: [[315265, 12], [315265, 13]]}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

TRAIN = "train"
APPLY = "apply"


class SplitError(ValueError):
    """A split definition is malformed or contradictory."""


def _runs(value: Any, where: str) -> frozenset[int]:
    if value is None:
        return frozenset()
    try:
        return frozenset(int(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise SplitError(f"{where}: runs must be a list of run numbers, got {value!r}") from exc


def _lumis(value: Any, where: str) -> frozenset[tuple[int, int]]:
    if value is None:
        return frozenset()
    out = set()
    for item in value:
        try:
            run, ls = (
                (int(item["run"]), int(item["ls_number"]))
                if isinstance(item, Mapping)
                else (int(item[0]), int(item[1]))
            )
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise SplitError(f"{where}: lumisection {item!r} is not [run, ls]") from exc
        out.add((run, ls))
    return frozenset(out)


@dataclass(frozen=True)
class RunSplit:
    train_runs: frozenset[int] = field(default_factory=frozenset)
    apply_runs: frozenset[int] = field(default_factory=frozenset)
    train_lumis: frozenset[tuple[int, int]] = field(default_factory=frozenset)
    apply_lumis: frozenset[tuple[int, int]] = field(default_factory=frozenset)
    name: str = "split"

    def __post_init__(self) -> None:
        both = self.train_runs & self.apply_runs
        if both:
            raise SplitError(
                f"split {self.name!r}: run(s) {sorted(both)} are in both train and apply"
            )
        both_ls = self.train_lumis & self.apply_lumis
        if both_ls:
            raise SplitError(
                f"split {self.name!r}: lumisection(s) {sorted(both_ls)[:5]} in both sides"
            )
        if not (self.train_runs or self.train_lumis):
            raise SplitError(f"split {self.name!r}: no training runs or lumisections")

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any]) -> RunSplit:
        if not isinstance(spec, Mapping):
            raise SplitError(f"a split must be a mapping, got {type(spec).__name__}")
        flat = {"train_runs", "apply_runs"} & set(spec)
        if flat:
            # the flat form of split files written elsewhere: {train_runs: [...], apply_runs: [...]}
            both = flat | ({"train", "apply"} & set(spec))
            if {"train", "apply"} & set(spec):
                raise SplitError(
                    f"split: give train/apply or train_runs/apply_runs, not {sorted(both)}"
                )
            spec = {
                **{k: v for k, v in spec.items() if k not in flat},
                "train": {"runs": spec.get("train_runs") or []},
                "apply": {"runs": spec.get("apply_runs") or []},
            }
        unknown = set(spec) - {"name", "train", "apply"}
        if unknown:
            raise SplitError(
                f"split: unknown key(s) {sorted(unknown)}; expected name, train, apply "
                "(or train_runs, apply_runs)"
            )
        name = str(spec.get("name", "split"))
        sides = {}
        for side in (TRAIN, APPLY):
            part = spec.get(side) or {}
            if not isinstance(part, Mapping):
                raise SplitError(f"split {name!r}: {side} must be a mapping with runs/lumisections")
            sides[side] = (
                _runs(part.get("runs"), f"split {name!r} {side}"),
                _lumis(part.get("lumisections"), f"split {name!r} {side}"),
            )
        return cls(sides[TRAIN][0], sides[APPLY][0], sides[TRAIN][1], sides[APPLY][1], name)

    @classmethod
    def from_runs(cls, train: Iterable[int], apply: Iterable[int], name: str = "split") -> RunSplit:
        return cls(frozenset(map(int, train)), frozenset(map(int, apply)), name=name)

    def to_mapping(self) -> dict[str, Any]:
        def side(runs: frozenset[int], lumis: frozenset[tuple[int, int]]) -> dict[str, Any]:
            out: dict[str, Any] = {"runs": sorted(runs)}
            if lumis:
                out["lumisections"] = [list(x) for x in sorted(lumis)]
            return out

        return {
            "name": self.name,
            TRAIN: side(self.train_runs, self.train_lumis),
            APPLY: side(self.apply_runs, self.apply_lumis),
        }

    def assign(self, runs: Iterable[int], lumis: Iterable[int]) -> pd.Series:
        """``train`` / ``apply`` / missing for each (run, lumi); LS lists take precedence over runs."""
        runs = np.asarray(list(runs), dtype=np.int64)
        lumis = np.asarray(list(lumis), dtype=np.int64)
        out = np.full(len(runs), None, dtype=object)
        out[np.isin(runs, list(self.train_runs))] = TRAIN
        out[np.isin(runs, list(self.apply_runs))] = APPLY
        for target, pairs in ((TRAIN, self.train_lumis), (APPLY, self.apply_lumis)):
            if pairs:
                keys = set(pairs)
                hit = np.fromiter(
                    ((int(r), int(x)) in keys for r, x in zip(runs, lumis, strict=True)),
                    dtype=bool,
                    count=len(runs),
                )
                out[hit] = target
        return pd.Series(out, dtype="string", name="split")
