"""Synthetic Kedro pipelines and catalogs for the deployment tools, and task/edge bookkeeping."""

from __future__ import annotations

from typing import Any

import pytest
from kedro.pipeline import Node, Pipeline

from dqm_playground_ds.deploy.storage import Catalog


def step(*inputs: Any) -> Any:
    return inputs[0] if inputs else None


def node(inputs: str | list[str], outputs: str | list[str] | None, name: str, **kw: Any) -> Node:
    return Node(step, inputs, outputs, name=name, **kw)


@pytest.fixture
def chain() -> Pipeline:
    """extract -> prep =mem=> feat -> ds.train -> ds.score -> upload (also reads feat's output)."""
    return Pipeline(
        [
            node(["raw", "params:x"], "table", "extract", tags=["extraction"]),
            node("table", "mem", "prep"),
            node("mem", "features", "feat"),
            node("features", "model", "train", namespace="ds"),
            node("model", "scores", "score", namespace="ds"),
            node(["scores", "features"], "receipt", "upload", tags=["upload"]),
        ]
    )


@pytest.fixture
def catalog() -> Catalog:
    """``raw`` and everything matching the catch-all are Parquet on data/; ``mem`` is memory."""
    return Catalog(
        {
            "raw": {"type": "pandas.CSVDataset", "filepath": "data/01_raw/raw.csv"},
            "{name}": {
                "type": "pandas.ParquetDataset",
                "filepath": "data/02_intermediate/{name}.pq",
            },
            "mem": {"type": "MemoryDataset"},
        }
    )


def expected_edges(pipeline: Pipeline, task_of: dict[str, str]) -> set[tuple[str, str]]:
    """(upstream task, downstream task) pairs implied by Kedro's node dependencies."""
    return {
        (task_of[parent.name], task_of[child.name])
        for child, parents in pipeline.node_dependencies.items()
        for parent in parents
        if task_of[parent.name] != task_of[child.name]
    }
