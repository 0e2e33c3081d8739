"""The me_features catalog entry: a folder of memory-mapped arrays at a local path."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from kedro.io import DataCatalog, DatasetError

from dqm_playground_ds.datasets import FeatureStoreDataset
from dqm_playground_ds.processing.preprocessing import HistogramPreprocessor
from tests.conftest import ROOT_DIR
from tests.detection_data import make_histograms


def test_save_load_exists_and_errors(tmp_path):
    hist = make_histograms({1: 8, 2: 4})
    pre = HistogramPreprocessor({"v": {}}).fit(hist, hist[["run", "lumi"]].drop_duplicates())
    ds = FeatureStoreDataset(path=str(tmp_path / "f"))
    assert not ds.exists()
    with pytest.raises(DatasetError, match="not a feature store"):
        ds.load()
    ds.save(pre.transform(hist, lazy=True))
    assert ds.exists()
    back = ds.load()["v"]
    assert len(back) == 12
    me = back.me_names[0]
    np.testing.assert_array_equal(back.mes[me].counts, pre.transform(hist)["v"].mes[me].counts)
    with pytest.raises(DatasetError, match=r"expected \{variant: FeatureSet\}"):
        ds.save([])


def test_a_remote_store_is_uploaded_meta_last_and_mapped_from_a_local_copy(tmp_path):
    import fsspec

    hist = make_histograms({1: 8, 2: 4})
    pre = HistogramPreprocessor({"v": {}}).fit(hist, hist[["run", "lumi"]].drop_duplicates())
    url = f"memory://features-{tmp_path.name}/me_features"
    ds = FeatureStoreDataset(path=url, cache_dir=str(tmp_path / "cache"))
    assert not ds.exists()
    with pytest.raises(DatasetError, match="not a feature store"):
        ds.load()
    ds.save(pre.transform(hist, lazy=True))
    fs = fsspec.filesystem("memory")
    assert ds.exists() and fs.exists(f"{url}/counts/0.npy")
    back = ds.load()["v"]
    me = back.me_names[0]
    assert isinstance(back.mes[me].counts, np.memmap)
    assert str(tmp_path / "cache") in back.mes[me].source.path  # mapped from the local copy
    np.testing.assert_array_equal(back.mes[me].counts, pre.transform(hist)["v"].mes[me].counts)
    assert ds.load()["v"].mes[me].source.path == back.mes[me].source.path  # downloaded once
    # a new save replaces the store; the next load downloads the new one
    ds.save(pre.transform(hist, keys=hist[hist["run"] == 1][["run", "lumi"]].drop_duplicates()))
    assert len(ds.load()["v"]) == 8
    fs.rm(f"memory://features-{tmp_path.name}", recursive=True)


def test_the_catalog_entry_of_conf_base(tmp_path):
    entry = yaml.safe_load((ROOT_DIR / "conf/base/catalog_data_processing.yml").read_text())
    catalog = DataCatalog.from_config({"me_features": entry["me_features"]})
    assert isinstance(catalog.get("me_features"), FeatureStoreDataset)
