"""ParquetTableDataset: histogram schema round trip, validation before writing, atomic writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from kedro.io import DatasetError

from dqm_playground_ds.datasets import HistogramSourceDataset, ParquetTableDataset
from dqm_playground_ds.schema import HistogramSchemaError
from dqm_playground_ds.sources import DQMIOFiles


def _hist(n: int = 2) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run": [1] * n,
            "lumi": list(range(1, n + 1)),
            "me": ["m"] * n,
            "dim": [2] * n,
            "entries": [3.0] * n,
            "x_min": [0.0] * n,
            "x_max": [1.0] * n,
            "x_bins": [2] * n,
            "y_min": [0.0] * n,
            "y_max": [1.0] * n,
            "y_bins": [1] * n,
            "data": [np.array([1.0, 2.0])] * n,
            "source": ["s"] * n,
        }
    )


def test_histogram_round_trip_keeps_schema(tmp_path):
    ds = ParquetTableDataset(filepath=str(tmp_path / "h.parquet"), schema="histograms")
    ds.save(_hist())
    schema = pq.read_schema(tmp_path / "h.parquet")
    assert schema.field("data").type.value_type == "double"
    assert str(schema.field("dim").type) == "int8"
    back = ds.load()
    assert back["dim"].dtype == np.int8 and str(back["me"].dtype) == "string"
    np.testing.assert_array_equal(back["data"].iloc[1], [1.0, 2.0])


def test_invalid_table_leaves_previous_file_untouched(tmp_path):
    target = tmp_path / "h.parquet"
    ds = ParquetTableDataset(filepath=str(target), schema="histograms")
    ds.save(_hist())
    before = target.read_bytes()
    bad = _hist()
    bad.loc[1, "data"] = np.array([1.0])
    with pytest.raises(Exception, match="row 1"):
        ds.save(bad)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["h.parquet"]  # no temporary left behind


def test_failed_write_leaves_no_partial_file(tmp_path):
    ds = ParquetTableDataset(filepath=str(tmp_path / "x.parquet"))
    with pytest.raises(DatasetError, match="Failed while saving"):  # pyarrow cannot convert it
        ds.save(pd.DataFrame({"a": [object(), object()]}))
    assert list(tmp_path.iterdir()) == []


def test_unknown_schema_is_refused(tmp_path):
    with pytest.raises(Exception, match="unknown table schema"):
        ParquetTableDataset(filepath=str(tmp_path / "x.parquet"), schema="nope")
    assert HistogramSchemaError


def test_histogram_source_dataset(tmp_path):
    ds = HistogramSourceDataset(kind="dqmio", path=str(tmp_path), pattern="*.root")
    assert not ds.exists()
    (tmp_path / "a.root").write_bytes(b"x")
    assert ds.exists()
    source = ds.load()
    assert isinstance(source, DQMIOFiles)
    assert source.items() == [str(tmp_path / "a.root")]
    with pytest.raises(Exception, match="unknown histogram source kind"):
        HistogramSourceDataset(kind="ftp", path=str(tmp_path))


def test_frame_parts_are_written_part_by_part_and_load_as_their_frame(tmp_path):
    from dqm_playground_ds.frame_parts import FrameParts

    def part(k: int):
        return lambda: pd.DataFrame(
            {"run": np.arange(3) + 10 * k, "strategy": pd.array([f"s{k}"] * 3, "string"),
             "top": [["a"], [], ["b", "c"]], "score": [0.1 * k, np.nan, 1.0]}
        )  # fmt: skip

    parts = FrameParts([part(k) for k in range(3)])
    ds = ParquetTableDataset(filepath=str(tmp_path / "t.parquet"))
    ds.save(parts)
    assert pq.ParquetFile(tmp_path / "t.parquet").metadata.num_row_groups == 3  # one per part
    loaded = ds.load()
    expected = parts.to_frame()
    assert loaded.drop(columns="top").equals(expected.drop(columns="top"))
    assert [list(t) for t in loaded["top"]] == [list(t) for t in expected["top"]]
    pd.testing.assert_frame_equal(loaded, pd.read_parquet(tmp_path / "t.parquet"))

    def bad():
        return pd.DataFrame({"run": ["x"], "strategy": pd.array(["s"], "string"),
                             "top": [[]], "score": [1.0]})  # fmt: skip

    broken = ParquetTableDataset(filepath=str(tmp_path / "broken.parquet"))
    with pytest.raises(DatasetError, match=r"broken\.parquet: part 1 does not fit"):
        broken.save(FrameParts([part(0), bad]))
    assert list(tmp_path.iterdir()) == [tmp_path / "t.parquet"]  # no half-written file


def test_tables_on_an_object_store_are_written_and_read_through_local_files(memory_url):
    """Arrow never holds an fsspec file object (its reader threads could abort the interpreter
    at exit): the table is uploaded whole, and downloaded whole to be read."""
    from dqm_playground_ds.frame_parts import FrameParts

    frame = pd.DataFrame({"run": [1, 2], "strategy": pd.array(["a", "b"], "string")})
    for name, data in (("frame", frame), ("parts", FrameParts([lambda: frame, lambda: frame]))):
        ds = ParquetTableDataset(filepath=f"{memory_url}/{name}.parquet")
        ds.save(data)
        expected = data if isinstance(data, pd.DataFrame) else data.to_frame()
        pd.testing.assert_frame_equal(ds.load(), expected)
