"""The extraction pipeline with Kedro's runner on real DQMIO fixtures, good and bad."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from dqm_playground_ds.datasets import (
    HistogramSourceDataset,
    HistogramStoreDataset,
    ParquetTableDataset,
)
from dqm_playground_ds.pipelines.data_extraction import create_pipeline
from dqm_playground_ds.pipelines.data_extraction.nodes import extract_histograms
from dqm_playground_ds.pipelines.data_extraction.params import ExtractionParams
from dqm_playground_ds.readers.dqmio import read_dqmio
from dqm_playground_ds.sources import DQMIOFiles, LegacyCSVFiles


def _extract(*args, **kwargs):
    """The node's outputs, its lazy table read into one frame."""
    table, index = extract_histograms(*args, **kwargs)
    return table.read(), index


FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "dqmio"


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """Two good DQMIO files and four bad ones in one folder."""
    d = tmp_path / "raw"
    d.mkdir()
    shutil.copy(FIXTURES / "all_types.root", d / "a_all_types.root")
    shutil.copy(FIXTURES / "many_baskets.root", d / "b_many_baskets.root")
    (d / "c_empty.root").write_bytes(b"")
    (d / "d_random.root").write_bytes(np.random.default_rng(0).bytes(4096))
    good = (FIXTURES / "many_baskets.root").read_bytes()
    (d / "e_truncated.root").write_bytes(good[: len(good) // 3])
    shutil.copy(FIXTURES / "not_dqmio.root", d / "f_not_dqmio.root")
    return d


def _run(source_path: Path, params: dict, tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    catalog = DataCatalog(
        {
            "raw_histogram_sources": HistogramSourceDataset(
                kind="dqmio", path=str(source_path), pattern="*.root"
            ),
            "histogram_store": HistogramStoreDataset(path=str(tmp_path / "store")),
            "params:data_extraction": MemoryDataset(ExtractionParams.model_validate(params)),
            "histograms": ParquetTableDataset(
                filepath=str(tmp_path / "out" / "histograms.parquet"), schema="histograms"
            ),
            "file_index": ParquetTableDataset(
                filepath=str(tmp_path / "out" / "file_index.parquet")
            ),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog["histograms"].load(), catalog["file_index"].load()


def test_pipeline_reads_good_files_and_records_bad_ones(inputs, tmp_path):
    histograms, index = _run(inputs, {"me": None, "progress": False}, tmp_path)
    status = dict(zip(index["path"].map(lambda p: Path(p).name), index["status"], strict=True))
    assert status == {
        "a_all_types.root": "ok",
        "b_many_baskets.root": "ok",
        "c_empty.root": "bad",
        "d_random.root": "bad",
        "e_truncated.root": "bad",
        "f_not_dqmio.root": "bad",
    }
    errors = dict(zip(index["path"].map(lambda p: Path(p).name), index["error"], strict=True))
    assert "truncated" in errors["e_truncated.root"]
    assert "empty" in errors["c_empty.root"]
    assert "no 'Indices' tree" in errors["f_not_dqmio.root"]
    assert str(inputs / "d_random.root") in errors["d_random.root"]
    ok = index[index["status"] == "ok"]
    ok = ok.set_index(ok["path"].map(lambda p: Path(p).name))
    assert ok.loc["b_many_baskets.root", "n_lumis"] == 200
    assert ok.loc["b_many_baskets.root", "n_mes"] == 3
    assert list(ok.loc["a_all_types.root", "runs"]) == [315257, 315259]
    assert ok.loc["a_all_types.root", "guid"].startswith("00000000-0000-4000-8000-")
    assert ok.loc["a_all_types.root", "size"] == (FIXTURES / "all_types.root").stat().st_size

    expected = pd.concat(
        [read_dqmio(FIXTURES / "all_types.root"), read_dqmio(FIXTURES / "many_baskets.root")]
    )
    assert len(histograms) == len(expected)
    assert histograms["data"].map(len).sum() == expected["data"].map(len).sum()
    assert histograms["source"].map(lambda p: Path(p).name).nunique() == 2


def test_me_selection_from_parameters_and_missing_me(inputs, tmp_path):
    params = {"me": [r".*charge_PXLayer_1"], "progress": False}
    histograms, index = _run(inputs, params, tmp_path)
    assert set(histograms["me"]) == {"PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1"}
    # all_types.root has no such ME: by default the file is bad, with the reason
    row = index[index["path"].str.endswith("a_all_types.root")].iloc[0]
    assert row["status"] == "bad" and "not found" in row["error"]
    histograms, index = _run(inputs, {**params, "missing_me": "ignore"}, tmp_path)
    row = index[index["path"].str.endswith("a_all_types.root")].iloc[0]
    assert row["status"] == "ok"
    assert len(histograms) == 200


def test_duplicate_keys_across_inputs_are_refused_by_default(tmp_path):
    d = tmp_path / "dup"
    d.mkdir()
    shutil.copy(FIXTURES / "all_types.root", d / "one.root")
    shutil.copy(FIXTURES / "all_types.root", d / "two.root")
    source = DQMIOFiles(path=str(d))
    with pytest.raises(Exception, match="share a \\(run, lumi, me\\) key"):
        _extract(source, ExtractionParams(progress=False))
    summed, _ = _extract(source, ExtractionParams(progress=False, duplicates="sum"))
    single = read_dqmio(FIXTURES / "all_types.root")
    np.testing.assert_array_equal(summed["entries"].to_numpy(), 2 * single["entries"].to_numpy())
    first, _ = _extract(source, ExtractionParams(progress=False, duplicates="first"))
    assert len(first) == len(single)


def test_unknown_parameter_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown key\(s\) 'mes' \(did you mean 'me'\?\)"):
        ExtractionParams.model_validate({"mes": ["x"]})
    with pytest.warns(FutureWarning, match="'bad' is now called 'raise'"):
        assert ExtractionParams.model_validate({"missing_me": "bad"}).missing_me == "raise"


def test_no_input_gives_an_empty_table(tmp_path):
    histograms, index = _extract(DQMIOFiles(path=str(tmp_path)), ExtractionParams(progress=False))
    assert histograms.empty and index.empty
    assert next(iter(histograms.columns)) == "run"


def test_legacy_csv_source(shared_real, tmp_path):
    source = LegacyCSVFiles(path=str(shared_real / "legacy-csv"))
    histograms, index = _extract(source, ExtractionParams(progress=False))
    assert (index["status"] == "ok").all()
    assert len(histograms) == 9


def test_pipeline_with_the_legacy_csv_source_from_configuration(tmp_path, memory_store):
    """Swapping the source is a catalog change: the same pipeline reads the bundled CSV files
    (into a store on fsspec's in-memory filesystem: the store's place is a catalog change too)."""
    csv_dir = Path(__file__).resolve().parents[3] / "data" / "01_raw" / "legacy_csv"
    if not list(csv_dir.glob("*.csv")):
        pytest.skip("bundled legacy CSV not generated")
    catalog = DataCatalog(
        {
            "raw_histogram_sources": HistogramSourceDataset(
                kind="legacy_csv", path=str(csv_dir), pattern="*.csv"
            ),
            "histogram_store": HistogramStoreDataset(path=memory_store),
            "params:data_extraction": MemoryDataset(ExtractionParams(me=None, progress=False)),
            "histograms": ParquetTableDataset(
                filepath=str(tmp_path / "h.parquet"), schema="histograms"
            ),
            "file_index": ParquetTableDataset(filepath=str(tmp_path / "i.parquet")),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    histograms = catalog["histograms"].load()
    assert sorted(histograms["dim"].unique()) == [1, 2]
    assert (catalog["file_index"].load()["status"] == "ok").all()
    store = catalog.load("histogram_store")
    assert len(store.partition_ids()) == len(list(csv_dir.glob("*.csv")))
    pd.testing.assert_frame_equal(
        store.read().drop(columns="data"), histograms.drop(columns="data")
    )
