"""Check an Argo manifest before it reaches a cluster (no ``argo lint`` here: no CLI, no server).

Two layers: hera's models, generated from Argo's own OpenAPI schema, check field names and types
(they ignore unknown fields, so a round trip catches typos such as ``retryStratgy``); then the
rules the schema cannot express: references between tasks, templates, volumes and parameters.
"""

from __future__ import annotations

import json
import re
from typing import Any

_WORKFLOW_PARAM = re.compile(r"\{\{\s*workflow\.parameters\.([A-Za-z0-9_.-]+)\s*\}\}")
_NAME = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")  # Argo's rule for template and task names


class ManifestError(ValueError):
    """The manifest would be rejected by Argo or fail at run time; the message lists every problem."""


def validate(doc: dict[str, Any]) -> None:
    """Raise :class:`ManifestError` listing every problem found in a WorkflowTemplate/CronWorkflow."""
    problems = _schema_problems(doc)
    kind = doc.get("kind")
    spec = doc.get("spec", {})
    if kind == "CronWorkflow":
        if not spec.get("schedules"):
            problems.append("spec.schedules: a CronWorkflow needs at least one schedule")
        spec = spec.get("workflowSpec", {})
    problems += _spec_problems(spec)
    if problems:
        raise ManifestError("invalid Argo manifest:\n  - " + "\n  - ".join(problems))


def _schema_problems(doc: dict[str, Any]) -> list[str]:
    try:
        from hera.workflows import models
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ManifestError(
            "validation needs hera: pip install -e '.[test]' (or pass --no-validate)"
        ) from exc
    from pydantic import ValidationError

    model: dict[str, Any] = {
        "WorkflowTemplate": models.WorkflowTemplate,
        "CronWorkflow": models.CronWorkflow,
    }
    kind = doc.get("kind")
    if kind not in model:
        return [f"kind: expected one of {sorted(model)}, got {kind!r}"]
    if doc.get("apiVersion") != "argoproj.io/v1alpha1":
        return [f"apiVersion: expected argoproj.io/v1alpha1, got {doc.get('apiVersion')!r}"]
    try:
        parsed = model[kind].model_validate(doc)
    except ValidationError as exc:
        return [
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:20]
        ]
    dumped = parsed.model_dump(by_alias=True, exclude_none=True, mode="json")
    return [f"{path}: not an Argo field" for path in _dropped(json.loads(json.dumps(doc)), dumped)]


def _dropped(original: Any, dumped: Any, path: str = "") -> list[str]:
    """Paths present in ``original`` but lost in the model round trip (unknown fields)."""
    if isinstance(original, dict) and isinstance(dumped, dict):
        out = []
        for key, value in original.items():
            sub = f"{path}.{key}" if path else key
            if key not in dumped:
                if value is not None:
                    out.append(sub)
            else:
                out += _dropped(value, dumped[key], sub)
        return out
    if isinstance(original, list) and isinstance(dumped, list):
        return [
            p
            for i, (a, b) in enumerate(zip(original, dumped, strict=False))
            for p in _dropped(a, b, f"{path}[{i}]")
        ]
    return []


def _spec_problems(spec: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    templates = {t.get("name"): t for t in spec.get("templates", [])}
    if len(templates) != len(spec.get("templates", [])):
        problems.append("spec.templates: template names must be unique")
    for name in templates:
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(f"template {name!r}: invalid name")
    if spec.get("entrypoint") not in templates:
        problems.append(f"spec.entrypoint {spec.get('entrypoint')!r} names no template")

    volumes = {v["name"] for v in spec.get("volumes", [])}
    declared = {p["name"] for p in spec.get("arguments", {}).get("parameters", [])}
    for used in sorted(set(_WORKFLOW_PARAM.findall(json.dumps(spec))) - declared):
        problems.append(f"{{{{workflow.parameters.{used}}}}} is used but not declared in arguments")

    for tname, template in templates.items():
        for mount in template.get("container", {}).get("volumeMounts", []):
            if mount["name"] not in volumes:
                problems.append(f"template {tname!r} mounts undeclared volume {mount['name']!r}")
        if "dag" in template:
            problems += _dag_problems(tname, template["dag"].get("tasks", []), templates)
    return problems


def _dag_problems(tname: str, tasks: list[dict[str, Any]], templates: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    names = [t.get("name") for t in tasks]
    if len(set(names)) != len(names):
        problems.append(f"dag {tname!r}: task names must be unique")
    graph: dict[str, list[str]] = {}
    for task in tasks:
        name = task.get("name")
        if not isinstance(name, str) or not _NAME.match(name) or name[0].isdigit():
            problems.append(f"dag {tname!r}: invalid task name {name!r}")
            continue
        if task.get("template") not in templates:
            problems.append(f"task {name!r}: unknown template {task.get('template')!r}")
        deps = task.get("dependencies", [])
        problems += [f"task {name!r}: unknown dependency {d!r}" for d in deps if d not in names]
        graph[name] = [d for d in deps if d in names]
    if _has_cycle(graph):
        problems.append(f"dag {tname!r}: dependencies form a cycle")
    return problems


def _has_cycle(graph: dict[str, list[str]]) -> bool:
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(start: str) -> bool:
        stack = [(start, iter(graph[start]))]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                return True
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(graph[child])))
        return False

    return any(visit(n) for n in graph if n not in state)
