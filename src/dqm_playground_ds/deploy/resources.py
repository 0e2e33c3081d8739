"""Per-task Kubernetes resources from node tags.

Kedro tags cannot hold ``cpu: 2`` (only letters, digits, ``_.-``), so tags name *profiles* and
the environment's ``argo.yml`` says what each profile requests, kedro-kubeflow style::

    resources:
      __default__: {requests: {cpu: 500m, memory: 1Gi}, limits: {memory: 2Gi}}
      extraction:  {requests: {cpu: "2", memory: 4Gi}, limits: {memory: 8Gi}}

A node gets the profiles named by its tags or its name (``__default__`` when none match); a task
gets, per quantity, the largest value any of its nodes needs, since its nodes run in one pod.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

DEFAULT = "__default__"

_SUFFIX = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QUANTITY = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)$"
)


def quantity(value: Any) -> Decimal:
    """The value of a Kubernetes quantity (``500m``, ``2``, ``4Gi``, ``1e3``); ValueError if invalid."""
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 2, 4Gi)")
    try:
        return Decimal(match.group(1)) * _SUFFIX[match.group(2)]
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise ValueError(f"{value!r} is not a Kubernetes quantity") from exc


def check_profiles(profiles: Mapping[str, Any]) -> None:
    """Fail early, naming the profile, rather than on the cluster at submission time."""
    for name, spec in profiles.items():
        if not isinstance(spec, Mapping) or set(spec) - {"requests", "limits"}:
            raise ValueError(f"resources.{name}: expected a mapping with requests and/or limits")
        for part, values in spec.items():
            if not isinstance(values, Mapping):
                raise ValueError(f"resources.{name}.{part}: expected a mapping of quantities")
            for resource, value in values.items():
                try:
                    quantity(value)
                except ValueError as exc:
                    raise ValueError(f"resources.{name}.{part}.{resource}: {exc}") from None
        requests, limits = spec.get("requests", {}), spec.get("limits", {})
        for resource in set(requests) & set(limits):
            if quantity(requests[resource]) > quantity(limits[resource]):
                raise ValueError(f"resources.{name}: {resource} request exceeds its limit")


def node_profiles(node_name: str, tags: Iterable[str], profiles: Mapping[str, Any]) -> list[str]:
    """Profiles that apply to one node: those named by its tags or its name, else the default."""
    named = sorted(p for p in {node_name, *tags} if p in profiles and p != DEFAULT)
    return named or ([DEFAULT] if DEFAULT in profiles else [])


def task_resources(
    nodes: Iterable[tuple[str, Iterable[str]]], profiles: Mapping[str, Any]
) -> dict[str, dict[str, str]]:
    """Largest request and limit per resource over the profiles of every node of a task."""
    out: dict[str, dict[str, str]] = {}
    for name, tags in nodes:
        for profile in node_profiles(name, tags, profiles):
            for part, values in (profiles[profile] or {}).items():
                merged = out.setdefault(part, {})
                for resource, value in values.items():
                    if resource not in merged or quantity(value) > quantity(merged[resource]):
                        merged[resource] = str(value)
    limits, requests = out.get("limits", {}), out.get("requests", {})
    for resource in set(limits) & set(requests):  # a max of requests may pass a smaller limit
        if quantity(requests[resource]) > quantity(limits[resource]):
            limits[resource] = requests[resource]
    return {part: dict(sorted(values.items())) for part, values in sorted(out.items()) if values}
