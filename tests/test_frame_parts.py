"""A table in parts: built one part at a time, with the columns pd.concat would give them."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pytest

from dqm_playground_ds.datasets import ParquetTableDataset
from dqm_playground_ds.frame_parts import FrameParts, ParquetFrame, as_frame, distinct, rows_where


def _parts(built: list[str]) -> list:
    def make(name: str, extra: str | None):
        def build() -> pd.DataFrame:
            built.append(name)
            frame = pd.DataFrame({"run": [1, 2], "strategy": pd.array([name] * 2, "string")})
            if extra:
                frame[extra] = [0.5, 1.5]
            return frame

        return build

    return [make("a", "raw_x"), make("b", None), make("c", "raw_y")]


def test_parts_are_built_one_at_a_time_and_concat_like():
    built: list[str] = []
    parts = FrameParts(_parts(built), ["run", "strategy", "raw_x", "raw_y"])
    assert built == []  # nothing is computed before it is asked for
    first = next(iter(parts))
    assert built == ["a"] and list(first.columns) == parts.columns
    assert np.isnan(first["raw_y"]).all()
    expected = pd.concat([make() for make in _parts([])], ignore_index=True)
    pd.testing.assert_frame_equal(parts.to_frame(), expected)


def test_columns_default_to_the_first_parts_and_extra_columns_are_refused():
    parts = FrameParts(_parts([]))
    with pytest.raises(ValueError, match=r"columns \['raw_y'\] outside"):
        parts.to_frame()
    assert FrameParts([]).to_frame().empty


def _scores(strategy: str) -> pd.DataFrame:
    rng = np.random.default_rng(len(strategy))
    n = 60
    return pd.DataFrame(
        {
            "run": np.repeat([100, 101, 102], n // 3),
            "lumi": np.tile(np.arange(1, n // 3 + 1), 3),
            "me": pd.array(["A", "B"] * (n // 2), "string"),
            "strategy": pd.array([strategy] * n, "string"),
            "score": rng.normal(size=n),
        }
    )


def _written(tmp_path, strategies=("lof", "pca", "two_level")) -> tuple[ParquetFrame, pd.DataFrame]:
    """A table written part by part (one row group per strategy), as the scoring node's."""
    ds = ParquetTableDataset(filepath=str(tmp_path / "me_scores.parquet"), lazy=True)
    parts = FrameParts([lambda s=s: _scores(s) for s in strategies])
    ds.save(parts)
    loaded = ds.load()
    assert isinstance(loaded, ParquetFrame)
    return loaded, parts.to_frame()


def test_parquet_frame_reads_only_the_rows_asked_for(tmp_path):
    lazy, whole = _written(tmp_path)
    pd.testing.assert_frame_equal(lazy.read(), whole)
    pd.testing.assert_frame_equal(as_frame(lazy), whole)
    want = whole[whole["strategy"].isin(["pca"]) & whole["run"].isin([100, 102])]
    got = lazy.read(where={"strategy": ["pca"], "run": [102, 100]})
    pd.testing.assert_frame_equal(got, want.reset_index(drop=True))
    assert lazy.read(where={"strategy": ["absent"]}).empty
    # the filter reaches the row groups: one of the three (one per strategy) is read
    dataset = pads.dataset(lazy.path, format="parquet")
    (fragment,) = dataset.get_fragments()
    wanted = pc.field("strategy").isin(["pca"])
    assert fragment.num_row_groups == 3
    assert len(fragment.split_by_row_group(filter=wanted, schema=dataset.schema)) == 1
    with pytest.raises(KeyError, match=r"no column\(s\) \['strategi'\]"):
        lazy.read(where={"strategi": ["pca"]})


def test_rows_where_is_the_same_on_a_frame_parts_and_a_parquet_frame(tmp_path):
    lazy, whole = _written(tmp_path)
    parts = FrameParts([lambda s=s: _scores(s) for s in ("lof", "pca", "two_level")])
    where = {"strategy": {"two_level", "lof"}, "run": {101}}
    expected = whole[whole["strategy"].isin(["lof", "two_level"]) & (whole["run"] == 101)]
    expected = expected.reset_index(drop=True)
    for table in (whole, parts, lazy):
        pd.testing.assert_frame_equal(
            rows_where(table, **where), expected, obj=type(table).__name__
        )
    assert rows_where(FrameParts([], ["run", "strategy"]), strategy=["lof"]).empty
    for table in (whole, parts, lazy):
        got = rows_where(table, ["lumi", "score"], strategy=["pca"])
        expected = whole.loc[whole["strategy"] == "pca", ["lumi", "score"]].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected, obj=type(table).__name__)
    with pytest.raises(KeyError, match="scor"):
        rows_where(lazy, ["scor"])
    with pytest.raises(KeyError, match="strategi"):
        rows_where(whole, strategi=["lof"])


def test_a_parquet_frame_on_an_object_store_reads_a_local_copy(memory_url):
    import gc
    import os

    ds = ParquetTableDataset(filepath=f"{memory_url}/me_scores.parquet", lazy=True)
    ds.save(FrameParts([lambda: _scores("lof"), lambda: _scores("pca")]))
    lazy = ds.load()
    got = lazy.read(where={"strategy": ["pca"]})
    pd.testing.assert_frame_equal(got, _scores("pca"))
    copy = lazy._copy
    assert copy is not None and os.path.exists(copy)
    assert pickle.loads(pickle.dumps(lazy)).read(where={"strategy": ["lof"]}).equals(_scores("lof"))
    del lazy
    gc.collect()
    assert not os.path.exists(os.path.dirname(copy))  # the copy goes with the object


def test_distinct_values_in_order_of_appearance(tmp_path, monkeypatch):
    lazy, whole = _written(tmp_path)
    parts = FrameParts([lambda s=s: _scores(s) for s in ("lof", "pca", "two_level")])
    for table in (whole, parts, lazy):
        assert distinct(table, "strategy") == ["lof", "pca", "two_level"]
    assert distinct(lazy, "run") == [100, 101, 102]  # several values per row group: read
    # one strategy per row group: the statistics answer, no column is read
    monkeypatch.setattr(pc, "unique", lambda *a, **k: 1 / 0)  # the column-reading path
    assert distinct(lazy, "strategy") == ["lof", "pca", "two_level"]
    with pytest.raises(KeyError, match="strategi"):
        distinct(lazy, "strategi")
