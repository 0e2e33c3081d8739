"""The histogram table read one ME at a time: in memory and from Parquet, whole or streamed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dqm_playground_ds.datasets import ParquetTableDataset
from dqm_playground_ds.histogram_tables import (
    FrameTable,
    ParquetHistograms,
    iter_batches,
    lumisections,
    run_batches,
)
from dqm_playground_ds.readers.dqmio import DQMIOError
from tests.detection_data import ME_1D, ME_2D, make_histograms


@pytest.fixture(scope="module")
def hist() -> pd.DataFrame:
    return make_histograms({1: 7, 2: 5, 3: 9, 4: 3})


@pytest.fixture
def parquet(hist, tmp_path) -> ParquetHistograms:
    path = tmp_path / "histograms.parquet"
    ParquetTableDataset(filepath=str(path), schema="histograms", row_group_rows=4).save(hist)
    return ParquetTableDataset(filepath=str(path), schema="histograms", lazy=True).load()


def same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    key = [c for c in ("run", "lumi", "me") if c in a.columns]
    a = a.sort_values(key, ignore_index=True)
    b = b.sort_values(key, ignore_index=True)
    assert list(a.columns) == list(b.columns)
    for c in a.columns:
        if c == "data":
            assert all(np.array_equal(x, y) for x, y in zip(a[c], b[c], strict=True))
        else:
            np.testing.assert_array_equal(a[c].to_numpy(), b[c].to_numpy())


def test_parquet_and_frame_tables_read_the_same(hist, parquet):
    frame = FrameTable(hist)
    assert parquet.mes() == frame.mes() == sorted(hist["me"].unique())
    same(parquet.read(me=ME_2D, runs=[2, 4]), frame.read(me=ME_2D, runs=[2, 4]))
    assert set(parquet.read(me=ME_2D, runs=[2, 4])["run"]) == {2, 4}
    same(parquet.read(columns=["run", "lumi"]), frame.read(columns=["run", "lumi"]))
    pd.testing.assert_frame_equal(lumisections(parquet), lumisections(frame))
    assert parquet.read(me="No/such/me").empty
    with pytest.raises(ValueError, match=r"unknown column\(s\) \['bins'\]"):
        parquet.read(columns=["bins"])


def test_streamed_batches_cover_an_me_once_and_stay_small(hist, parquet):
    batches = list(iter_batches(parquet, ME_1D, batch_rows=3))
    assert len(batches) > 3 and max(len(b) for b in batches) <= 3
    same(pd.concat(batches, ignore_index=True), FrameTable(hist).read(me=ME_1D))
    runs = list(iter_batches(parquet, ME_1D, runs=[3], columns=["run", "lumi", "data"]))
    assert sum(map(len, runs)) == 9 and list(runs[0].columns) == ["run", "lumi", "data"]
    # a table that cannot stream gives its whole read as one batch
    assert [len(b) for b in iter_batches(hist, ME_1D)] == [24]


def test_with_a_duplicates_policy_a_key_and_its_duplicates_meet_in_one_batch(hist, tmp_path):
    one = hist[hist["me"] == ME_1D]
    paths = []
    for name in ("a", "b"):  # the same histograms in two files
        paths.append(tmp_path / f"{name}.parquet")
        ParquetTableDataset(filepath=str(paths[-1]), schema="histograms").save(one)
    summed = ParquetHistograms(paths, duplicates="sum")
    batches = list(summed.iter_read(ME_1D, batch_rows=8))
    assert len(batches) > 1
    got = pd.concat(batches, ignore_index=True)
    assert len(got) == len(one)
    np.testing.assert_allclose(np.stack(got["data"]), 2 * np.stack(one["data"]))
    with pytest.raises(DQMIOError, match=r"rows share a \(run, lumi, me\) key"):
        list(ParquetHistograms(paths, duplicates="raise").iter_read(ME_1D, batch_rows=8))


def test_run_batches_group_consecutive_runs_up_to_a_size():
    runs = np.repeat([1, 2, 3, 4, 5], [3, 3, 10, 1, 1])
    assert run_batches(runs, 6) == [[1, 2], [3], [4, 5]]
    assert run_batches(runs, 100) == [[1, 2, 3, 4, 5]]
    assert run_batches(np.array([], dtype=int), 5) == []
