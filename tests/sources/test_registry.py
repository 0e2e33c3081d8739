"""The source registry: built-in kinds, a project's own kind (the docs/sources.md example, run for
real), the dqmiotools exports as a source, clear errors for unknown kinds and bad keys."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError

from dqm_playground_ds.datasets import HistogramSourceDataset
from dqm_playground_ds.extraction import Request, extract_many, read_partitions
from dqm_playground_ds.readers.dqmio.selection import MESpec, as_patterns, match_names
from dqm_playground_ds.schema import COLUMNS, validate_histograms
from dqm_playground_ds.sources import (
    DQMIOToolsFiles,
    HistogramSource,
    SourceError,
    expand,
    file_size,
    make_source,
    register_source,
    source_kinds,
)


@dataclass
class JSONLinesFiles:
    """The docs/sources.md example: one JSON object per line and per (run, lumi, me)."""

    path: str
    pattern: str | None = "*.jsonl"
    partitions_dir: str | None = None
    kind: str = "jsonl"

    def items(self) -> list[str]:
        return expand(self.path, self.pattern)

    def describe(self, item: str) -> dict[str, Any]:
        return {"path": item, "size": file_size(item)}

    def read(self, item: str, me: MESpec, include_run_level: bool, missing: str = "raise"):
        try:
            with open(item) as f:
                rows = [json.loads(line) for line in f if line.strip()]
        except (OSError, json.JSONDecodeError) as exc:
            raise SourceError(f"{item}: {exc}") from exc
        table = pd.DataFrame(rows, columns=list(COLUMNS))
        if (patterns := as_patterns(me)) is not None:
            table = table[match_names(table["me"].astype(str), patterns)[0]]
        if not include_run_level:
            table = table[table["lumi"] > 0]
        return validate_histograms(table, name=item)


@pytest.fixture
def jsonl_kind():
    register_source("jsonl", JSONLinesFiles, replace=True)
    yield "jsonl"
    from dqm_playground_ds import sources

    sources._SOURCES.pop("jsonl", None)


def _write_jsonl(folder, runs=(1, 2), lumis=3) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for run in runs:
        with open(folder / f"run{run}.jsonl", "w") as f:
            for lumi in range(1, lumis + 1):
                row = {"run": run, "lumi": lumi, "me": "A/h", "dim": 1, "x_min": 0.0, "x_max": 1.0,
                       "x_bins": 4, "y_min": None, "y_max": None, "y_bins": 0,
                       "entries": 10.0, "data": [1.0, 2.0, 3.0, 4.0], "source": f"run{run}"}  # fmt: skip
                f.write(json.dumps(row) + "\n")
        (folder / "broken.jsonl").write_text("{not json\n")


def test_builtin_kinds():
    assert {"dqmio", "legacy_csv", "dqmiotools", "playground_api", "dials"} <= set(source_kinds())


def test_a_project_source_is_configured_and_extracted_like_any_other(jsonl_kind, tmp_path):
    _write_jsonl(tmp_path / "in")
    ds = HistogramSourceDataset(kind=jsonl_kind, path=str(tmp_path / "in"))
    source = ds.load()
    assert isinstance(source, HistogramSource) and len(source.items()) == 3
    index = extract_many(source, tmp_path / "parts", Request(me="A/h"), progress=False)
    status = dict(zip(index["path"].str.rsplit("/", n=1).str[-1], index["status"], strict=True))
    assert status == {"broken.jsonl": "bad", "run1.jsonl": "ok", "run2.jsonl": "ok"}
    table = read_partitions(tmp_path / "parts")
    assert sorted(set(table["run"])) == [1, 2] and len(table) == 6
    np.testing.assert_array_equal(table["data"].iloc[0], [1.0, 2.0, 3.0, 4.0])


def test_unknown_kind_and_bad_keys_are_named():
    with pytest.raises(
        DatasetError, match=r"unknown histogram source kind 'dqmoi'; expected one of"
    ):
        HistogramSourceDataset(kind="dqmoi", path=".")
    with pytest.raises(DatasetError, match="unexpected keyword argument 'patern'"):
        HistogramSourceDataset(kind="dqmio", path=".", patern="*.root")
    with pytest.raises(ValueError, match="already registered"):
        register_source("dqmio", JSONLinesFiles)


def test_dqmiotools_exports_are_a_source(shared_real, tmp_path):
    source = make_source("dqmiotools", path=str(shared_real / "dqmiotools-2023C"))
    assert isinstance(source, DQMIOToolsFiles) and len(source.items()) == 3
    index = extract_many(
        source, tmp_path / "parts", Request(me=r".*charge_PXLayer_1"), progress=False
    )
    assert set(index["status"]) == {"ok"}
    table = read_partitions(tmp_path / "parts")
    assert len(table) == 45 and set(table["run"]) == {367094}
