"""Features computed ME by ME from the table (lazy) and stored as one memory-mapped file per ME."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from dqm_playground_ds.histogram_tables import FrameTable
from dqm_playground_ds.processing.feature_store import (
    META,
    FeatureStoreError,
    NpyCounts,
    read_features,
    write_features,
)
from dqm_playground_ds.processing.preprocessing import HistogramPreprocessor, TableCounts
from tests.detection_data import ME_1D, ME_2D, make_histograms, replace

TRAIN = pd.DataFrame({"run": [1] * 10, "lumi": list(range(1, 11))})
VARIANTS = {"coarse": {"2d": {"shape": [4, 5]}}, "fine": {"2d": {"normalisation": "max"}}}


class CountingTable(FrameTable):
    """A frame table that counts which MEs are read."""

    def __init__(self, frame: pd.DataFrame) -> None:
        super().__init__(frame)
        self.reads: list[object] = []

    def read(self, me=None, runs=None, columns=None):
        self.reads.append(me)
        return super().read(me=me, runs=runs, columns=columns)


@pytest.fixture(scope="module")
def hist() -> pd.DataFrame:
    h = make_histograms({1: 10, 2: 6, 3: 4})
    return replace(h, 2, 3, ME_1D, np.r_[np.nan, np.ones(39) * 100])  # one invalid LS


@pytest.fixture(scope="module")
def pre(hist) -> HistogramPreprocessor:
    return HistogramPreprocessor(VARIANTS, {"min_entries": 10}).fit(hist, TRAIN)


def assert_same(a, b):
    assert list(a) == list(b)
    for v in a:
        pd.testing.assert_frame_equal(a[v].keys, b[v].keys)
        np.testing.assert_array_equal(a[v].quality, b[v].quality)
        np.testing.assert_array_equal(a[v].integral, b[v].integral)
        assert list(a[v].mes) == list(b[v].mes)
        for me, f in a[v].mes.items():
            g = b[v].mes[me]
            assert (f.dim, f.shape, f.normalisation) == (g.dim, g.shape, g.normalisation)
            np.testing.assert_array_equal(f.counts, g.counts)
            assert f.counts.dtype == np.float32


def test_lazy_features_equal_the_eager_ones_and_read_each_me_only_when_asked(hist, pre):
    table = CountingTable(hist)
    lazy = pre.transform(table, lazy=True)
    assert sorted(table.reads[1:]) == sorted(pre.mes_)  # keys, then quality: one read per ME
    table.reads.clear()
    f = lazy["coarse"].mes[ME_2D]
    assert isinstance(f.source, TableCounts)
    assert f.counts.shape[0] == len(lazy["coarse"])
    assert table.reads == [ME_2D]  # only that ME
    # variants that preprocess an ME alike share one source; the others have their own
    assert lazy["coarse"].mes[ME_1D].source is lazy["fine"].mes[ME_1D].source
    assert lazy["coarse"].mes[ME_2D].source is not lazy["fine"].mes[ME_2D].source
    assert_same(lazy, pre.transform(hist))


def test_a_lazy_me_pickles_as_its_counts(hist, pre):
    lazy = pre.transform(hist, lazy=True)
    f = lazy["fine"].mes[ME_2D]
    copy = pickle.loads(pickle.dumps(f))
    assert isinstance(copy.source, np.ndarray)
    np.testing.assert_array_equal(copy.counts, f.counts)


def test_store_round_trip_maps_each_me_and_shares_identical_arrays(hist, pre, tmp_path):
    path = tmp_path / "features"
    lazy = pre.transform(hist, lazy=True)
    write_features(path, lazy)
    back = read_features(path)
    assert_same(back, pre.transform(hist))
    f = back["fine"].mes[ME_2D]
    assert isinstance(f.source, NpyCounts)
    assert isinstance(f.counts, np.memmap) and not f.counts.flags.writeable
    n_mes = len(pre.mes_)
    assert len(list((path / "counts").glob("*.npy"))) == n_mes + 1  # the 1D MEs are shared
    # a worker process gets the path, not the array
    assert len(pickle.dumps(f)) < 1000
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(f)).counts, f.counts)
    # a subset is an array in memory, the rows asked for
    sub = back["fine"].subset(np.array([0, 5, 7]))
    np.testing.assert_array_equal(sub.mes[ME_2D].counts, f.counts[[0, 5, 7]])
    assert sub.quality.shape == (3, n_mes)


class Broken:
    portable = False

    def compute(self):
        raise RuntimeError("disk full")

    def load(self):
        return self.compute()


def test_a_failed_write_leaves_the_old_store_and_no_temporary(hist, pre, tmp_path):
    path = tmp_path / "features"
    write_features(path, pre.transform(hist))
    before = sorted(p.relative_to(path) for p in path.rglob("*"))
    features = pre.transform(hist, lazy=True)
    features["fine"].mes[ME_2D]._counts = Broken()
    with pytest.raises(RuntimeError, match="disk full"):
        write_features(path, features)
    assert sorted(p.relative_to(path) for p in path.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["features"]  # no temporary left
    assert_same(read_features(path), pre.transform(hist))


def test_a_second_write_replaces_the_store_while_old_maps_stay_valid(hist, pre, tmp_path):
    path = tmp_path / "features"
    write_features(path, pre.transform(hist))
    old = read_features(path)["fine"].mes[ME_2D].counts
    expected = np.array(old)
    smaller = pre.transform(hist, keys=TRAIN)
    write_features(path, smaller)
    assert len(read_features(path)["fine"]) == len(TRAIN)
    np.testing.assert_array_equal(old, expected)  # the unlinked file stays mapped
    assert [p.name for p in tmp_path.iterdir()] == ["features"]


def test_missing_incomplete_or_foreign_stores_are_named(hist, pre, tmp_path):
    with pytest.raises(FeatureStoreError, match=r"nowhere: not a feature store .*_meta.json"):
        read_features(tmp_path / "nowhere")
    path = tmp_path / "features"
    write_features(path, pre.transform(hist))
    (path / META).write_text('{"format": "something-else/9"}')
    with pytest.raises(FeatureStoreError, match="something-else/9"):
        read_features(path)
    write_features(path, pre.transform(hist))
    next((path / "counts").glob("*.npy")).unlink()
    with pytest.raises(FeatureStoreError, match=r"counts of .* missing"):
        read_features(path)
    with pytest.raises(FeatureStoreError, match="cannot name a folder"):
        write_features(tmp_path / "x", {"../up": pre.transform(hist)["fine"]})
