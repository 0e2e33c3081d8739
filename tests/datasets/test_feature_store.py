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
    with pytest.raises(DatasetError, match=r"needs a local path .*s3://"):
        FeatureStoreDataset(path="s3://bucket/features")


def test_the_catalog_entry_of_conf_base(tmp_path):
    entry = yaml.safe_load((ROOT_DIR / "conf/base/catalog_data_processing.yml").read_text())
    catalog = DataCatalog.from_config({"me_features": entry["me_features"]})
    assert isinstance(catalog.get("me_features"), FeatureStoreDataset)
