"""Platform tasks <-> the train/apply split the processing pipeline uses (``split.RunSplit``).

A task's training runs/LS become ``train``, its testing runs/LS become ``apply``. The mapping is
checked by :class:`RunSplit` (no run on both sides, something to train on), so a malformed task fails
here, with its id and name, rather than deep inside processing. A local YAML file in the same mapping
form is the offline alternative (``split.py``'s docstring shows it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dqm_playground_ds.processing.split import APPLY, TRAIN, RunSplit, SplitError

TASK_FIELDS = ("training_runs", "testing_runs", "training_lumisections", "testing_lumisections")


class TaskError(ValueError):
    """A task record cannot be turned into a split."""


def _runs(task: Mapping[str, Any], key: str, where: str) -> list[int]:
    out = []
    for item in task.get(key) or []:
        value: Any = item.get("run_number") if isinstance(item, Mapping) else item
        try:
            out.append(int(value))
        except (TypeError, ValueError) as exc:
            raise TaskError(f"{where}: {key} holds {item!r}, not a run") from exc
    return sorted(set(out))


def _lumis(task: Mapping[str, Any], key: str, where: str) -> list[list[int]]:
    out = set()
    for item in task.get(key) or []:
        try:
            if isinstance(item, Mapping):
                out.add((int(item["run"]), int(item["ls_number"])))
            else:
                out.add((int(item[0]), int(item[1])))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise TaskError(f"{where}: {key} holds {item!r}, not a lumisection") from exc
    return [list(x) for x in sorted(out)]


def task_to_split(task: Mapping[str, Any]) -> dict[str, Any]:
    """The ``RunSplit.from_mapping`` form of a ``tasks/`` record, validated."""
    if not isinstance(task, Mapping):
        raise TaskError(f"a task must be an object, got {type(task).__name__}")
    where = f"task {task.get('id')!r} ({task.get('name')!r})"
    lacking = [f for f in TASK_FIELDS if f not in task]
    if lacking:
        raise TaskError(f"{where} lacks field(s) {lacking}")
    mapping: dict[str, Any] = {"name": str(task.get("name") or f"task-{task.get('id')}")}
    for side, prefix in ((TRAIN, "training"), (APPLY, "testing")):
        part: dict[str, Any] = {"runs": _runs(task, f"{prefix}_runs", where)}
        lumis = _lumis(task, f"{prefix}_lumisections", where)
        if lumis:
            part["lumisections"] = lumis
        mapping[side] = part
    try:
        return RunSplit.from_mapping(mapping).to_mapping()
    except SplitError as exc:
        raise TaskError(f"{where}: {exc}") from exc


def split_to_task(split: Mapping[str, Any]) -> dict[str, Any]:
    """The body that creates a task from a split mapping (used by the local server and tests)."""
    try:
        s = RunSplit.from_mapping(split)
    except SplitError as exc:
        raise TaskError(str(exc)) from exc
    return {
        "name": s.name,
        "training_runs": sorted(s.train_runs),
        "testing_runs": sorted(s.apply_runs),
        "training_lumisections": [list(x) for x in sorted(s.train_lumis)],
        "testing_lumisections": [list(x) for x in sorted(s.apply_lumis)],
        "metadata": "",
    }
