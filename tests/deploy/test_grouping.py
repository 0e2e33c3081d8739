"""Grouping nodes into pods: every node once, edges from Kedro, in-memory data never crosses pods."""

from __future__ import annotations

import pytest
from kedro.pipeline import Pipeline

from dqm_playground_ds.deploy.grouping import GroupingError, argo_name, group_nodes
from tests.deploy.conftest import expected_edges, node


def _task_of(tasks):
    return {n: t.name for t in tasks for n in t.nodes}


@pytest.mark.parametrize("group_by", ["memory", "none"])
def test_every_node_once_and_edges_match(chain, catalog, group_by):
    is_memory = catalog.is_memory if group_by == "memory" else (lambda ds: False)
    tasks = group_nodes(chain, is_memory, group_by)
    nodes = [n for t in tasks for n in t.nodes]
    assert sorted(nodes) == sorted(n.name for n in chain.nodes)
    assert len(nodes) == len(set(nodes))
    task_of = _task_of(tasks)
    edges = {(d, t.name) for t in tasks for d in t.dependencies}
    assert edges == expected_edges(chain, task_of)
    seen: set[str] = set()
    for task in tasks:  # topological order
        assert set(task.dependencies) <= seen
        seen.add(task.name)


def test_memory_grouping_keeps_memory_links_in_one_task(chain, catalog):
    tasks = group_nodes(chain, catalog.is_memory, "memory")
    assert [t.nodes for t in tasks] == [
        ("extract",),
        ("prep", "feat"),
        ("ds.train",),
        ("ds.score",),
        ("upload",),
    ]
    assert [t.name for t in tasks] == ["extract", "prep", "ds-train", "ds-score", "upload"]
    assert tasks[-1].dependencies == ("ds-score", "prep")
    assert tasks[0].tags == frozenset({"extraction"})


def test_one_task_per_node_refuses_a_memory_crossing(chain, catalog):
    with pytest.raises(GroupingError) as err:
        group_nodes(chain, catalog.is_memory, "none")
    message = str(err.value)
    assert "'mem'" in message and "'prep'" in message and "'feat'" in message


def test_namespace_grouping(catalog):
    pipe = Pipeline(
        [
            node("raw", "a", "load"),
            node("a", "m", "fit", namespace="ds"),  # m stays in memory inside the namespace
            node("m", "b", "predict", namespace="ds"),
            node("b", "c", "report"),
        ]
    )
    tasks = group_nodes(pipe, catalog.is_memory, "namespace")
    assert [(t.name, t.nodes, t.dependencies) for t in tasks] == [
        ("load", ("load",), ()),
        ("ds", ("ds.fit", "ds.predict"), ("load",)),
        ("report", ("report",), ("ds",)),
    ]
    crossing = Pipeline([node("raw", "m", "a", namespace="x"), node("m", "b", "b", namespace="y")])
    with pytest.raises(GroupingError, match="'m' is kept in memory"):
        group_nodes(crossing, lambda ds: ds == "m", "namespace")


@pytest.mark.filterwarnings("ignore:Namespace 'ns' is interrupted")
def test_namespace_cycle_is_an_error_memory_cycle_is_merged(catalog):
    # ns.a -> mid -> ns.b: namespace tasks {ns} and {mid} would wait for each other
    pipe = Pipeline(
        [
            node("raw", "x", "a", namespace="ns"),
            node("x", "y", "mid"),
            node("y", "z", "b", namespace="ns"),
        ]
    )
    with pytest.raises(GroupingError, match="cycle"):
        group_nodes(pipe, catalog.is_memory, "namespace")
    # memory links first and last node; persisted data goes through the middle one
    looped = Pipeline(
        [node("raw", ["m", "x"], "first"), node("x", "y", "mid"), node(["m", "y"], "z", "last")]
    )
    tasks = group_nodes(looped, lambda ds: ds == "m", "memory")
    assert [t.nodes for t in tasks] == [("first", "mid", "last")]


def test_parameters_never_link_tasks(catalog):
    pipe = Pipeline(
        [node(["raw", "params:p"], "a", "one"), node(["a", "params:p", "parameters"], "b", "two")]
    )
    tasks = group_nodes(pipe, lambda ds: ds.startswith("param"), "none")
    assert [t.dependencies for t in tasks] == [(), ("one",)]


def test_argo_names():
    assert argo_name("data_science.Train_Model") == "data-science-train-model"
    assert argo_name("2fast") == "t-2fast"
    assert argo_name("___") == "task"
    long = argo_name("x" * 200)
    assert len(long) == 63 and long != argo_name("x" * 199)
