"""Cut a Kedro pipeline into Argo tasks: one task = one pod = one ``kedro run --nodes ...``.

A dataset kept in memory cannot travel between pods, so grouping is where a deployment can lose
data silently. This module refuses instead: an in-memory dataset that would cross a task
boundary is a :class:`GroupingError` naming the dataset, its producer and its consumer.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kedro.pipeline import Pipeline

#: ``memory``: nodes linked by in-memory datasets share a task (fewest pods that keep data);
#: ``namespace``: one task per top-level namespace (un-namespaced nodes alone), as
#: ``Pipeline.group_nodes_by("namespace")``; ``none``: one task per node.
GROUP_BY = ("memory", "namespace", "none")

_NAME_MAX = 63  # Argo names become pod-name parts: keep them DNS-label sized


class GroupingError(ValueError):
    """The pipeline cannot be split into pods as asked; the message says where and why."""


@dataclass(frozen=True)
class Task:
    """One Argo DAG task: the nodes it runs (topological order) and the tasks it waits for."""

    name: str
    nodes: tuple[str, ...]
    dependencies: tuple[str, ...]
    tags: frozenset[str]


def is_parameter(name: str) -> bool:
    """Parameters come from configuration in every pod: they never link tasks."""
    return name == "parameters" or name.startswith("params:")


def group_nodes(
    pipeline: Pipeline, is_memory: Callable[[str], bool], group_by: str = "memory"
) -> list[Task]:
    """Group ``pipeline``'s nodes into tasks in topological order.

    ``is_memory(dataset)`` says whether a dataset lives only in the memory of one process (no
    catalog entry, or a ``MemoryDataset``). Raises :class:`GroupingError` if such a dataset would
    cross tasks, or if tasks would depend on each other in a cycle (``memory`` grouping merges
    such cycles instead, since it has no user intent to keep).
    """
    if group_by not in GROUP_BY:
        raise ValueError(f"group_by must be one of {GROUP_BY}, got {group_by!r}")
    nodes = pipeline.nodes
    if group_by == "memory":
        key = _memory_components(pipeline, is_memory)
    elif group_by == "namespace":
        key = {n.name: n.namespace.split(".")[0] if n.namespace else n.name for n in nodes}
    else:
        key = {n.name: n.name for n in nodes}
    _check_memory_boundaries(pipeline, key, is_memory)

    cycles = [c for c in _strongly_connected(_group_edges(pipeline, key)) if len(c) > 1]
    if cycles and group_by != "memory":
        shown = "; ".join(" <-> ".join(sorted(c)) for c in cycles)
        raise GroupingError(
            f"grouping by {group_by} makes tasks that depend on each other in a cycle ({shown}): "
            "put the nodes involved in one namespace, or use --group-by memory"
        )
    for cycle in cycles:  # memory grouping: a cycle's groups become one task
        target = min(cycle, key=lambda k: _first_index(nodes, key, k))
        key = {n: target if k in cycle else k for n, k in key.items()}

    members: dict[str, list[str]] = {}
    for node in nodes:
        members.setdefault(key[node.name], []).append(node.name)
    edges = _group_edges(pipeline, key)
    order = _toposort(members, edges)
    names = _task_names(order, members, pipeline)
    tags: dict[str, frozenset[str]] = {k: frozenset() for k in members}
    for node in nodes:
        tags[key[node.name]] |= node.tags
    return [
        Task(
            name=names[k],
            nodes=tuple(members[k]),
            dependencies=tuple(sorted(names[d] for d in edges[k])),
            tags=tags[k],
        )
        for k in order
    ]


def _memory_components(pipeline: Pipeline, is_memory: Callable[[str], bool]) -> dict[str, str]:
    """Union-find over nodes linked by in-memory datasets; key = the component's first node."""
    index = {n.name: i for i, n in enumerate(pipeline.nodes)}
    parent = {n.name: n.name for n in pipeline.nodes}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for dataset, linked in _users(pipeline).items():
        if is_parameter(dataset) or not is_memory(dataset):
            continue
        first, *rest = linked
        for other in rest:
            a, b = find(first), find(other)
            if a != b:  # keep the topologically first node as the root: stable task names
                a, b = sorted((a, b), key=index.__getitem__)
                parent[b] = a
    return {name: find(name) for name in parent}


def _users(pipeline: Pipeline) -> dict[str, list[str]]:
    """Dataset -> names of the nodes that produce or consume it (producer first)."""
    users: dict[str, list[str]] = {}
    for node in pipeline.nodes:
        for ds in node.outputs:
            users.setdefault(ds, []).insert(0, node.name)
        for ds in node.inputs:
            users.setdefault(ds, []).append(node.name)
    return users


def _check_memory_boundaries(
    pipeline: Pipeline, key: dict[str, str], is_memory: Callable[[str], bool]
) -> None:
    producer = {ds: n.name for n in pipeline.nodes for ds in n.outputs}
    problems: list[str] = []
    for node in pipeline.nodes:
        for ds in node.inputs:
            if is_parameter(ds) or not is_memory(ds):
                continue
            if ds in producer and key[producer[ds]] != key[node.name]:
                problems.append(
                    f"{ds!r} is kept in memory but goes from node {producer[ds]!r} (task "
                    f"{key[producer[ds]]!r}) to node {node.name!r} (task {key[node.name]!r})"
                )
    if problems:
        raise GroupingError(
            "in-memory data would be lost between pods:\n  - "
            + "\n  - ".join(problems)
            + "\nDeclare these datasets in the catalog on shared storage (conf/<env>/catalog.yml), "
            "or keep producer and consumer in one task (same namespace, or --group-by memory)."
        )


def _group_edges(pipeline: Pipeline, key: dict[str, str]) -> dict[str, set[str]]:
    """Group -> groups it waits for, from Kedro's own node dependencies."""
    edges: dict[str, set[str]] = {k: set() for k in key.values()}
    for node, parents in pipeline.node_dependencies.items():
        for parent in parents:
            if key[parent.name] != key[node.name]:
                edges[key[node.name]].add(key[parent.name])
    return edges


def _strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iteratively (pipelines can be deep)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[v] = min(low[v], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.add(w)
                    if w == v:
                        break
                out.append(component)
    return out


def _first_index(nodes: Iterable, key: dict[str, str], group: str) -> int:
    return next(i for i, n in enumerate(nodes) if key[n.name] == group)


def _toposort(members: dict[str, list[str]], edges: dict[str, set[str]]) -> list[str]:
    """Groups in dependency order, ties broken by where their first node sits in the pipeline."""
    rank = {k: i for i, k in enumerate(members)}  # members is filled in node order
    waiting = {k: set(edges[k]) for k in members}
    order: list[str] = []
    while waiting:
        ready = sorted((k for k, deps in waiting.items() if not deps), key=rank.__getitem__)
        if not ready:  # guarded by the cycle check above; kept as a last line of defence
            raise GroupingError(f"task dependency cycle among {sorted(waiting)}")
        for k in ready:
            order.append(k)
            del waiting[k]
        for deps in waiting.values():
            deps.difference_update(ready)
    return order


def argo_name(text: str, max_len: int = _NAME_MAX) -> str:
    """A valid Argo task/template name: lowercase alphanumerics and '-', not starting with a digit."""
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "task"
    if name[0].isdigit():
        name = f"t-{name}"
    if len(name) > max_len:
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        name = f"{name[: max_len - 9].rstrip('-')}-{digest}"
    return name


def _task_names(
    order: list[str], members: dict[str, list[str]], pipeline: Pipeline
) -> dict[str, str]:
    """Readable unique names: a whole top-level namespace is named after it, else the group key."""
    namespace = {n.name: n.namespace.split(".")[0] if n.namespace else None for n in pipeline.nodes}
    size: dict[str | None, int] = {}
    for space in namespace.values():
        size[space] = size.get(space, 0) + 1
    names: dict[str, str] = {}
    taken: set[str] = set()
    for k in order:
        spaces = {namespace[n] for n in members[k]}
        space = spaces.pop() if len(spaces) == 1 else None
        label = space if space is not None and size[space] == len(members[k]) else k
        base = name = argo_name(label)
        i = 2
        while name in taken:
            suffix = f"-{i}"
            name = f"{base[: _NAME_MAX - len(suffix)]}{suffix}"
            i += 1
        taken.add(name)
        names[k] = name
    return names
