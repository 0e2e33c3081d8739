"""Items 10, 11 and 12: messages that say what is wrong and which parameter to change; values that
are invalid are refused, not silently accepted; outputs get the mode the umask says."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from dqm_playground_ds.atomic import atomic_write
from dqm_playground_ds.datasets import ParquetTableDataset
from dqm_playground_ds.extraction import Request, extract_many
from dqm_playground_ds.pipelines.data_extraction.params import ExtractionParams
from dqm_playground_ds.pipelines.data_processing import create_pipeline
from dqm_playground_ds.pipelines.data_processing.params import DataProcessingParams
from dqm_playground_ds.processing.labels import LabelError
from dqm_playground_ds.readers.dqmio import DQMIOError, MissingMEError, read_dqmio
from dqm_playground_ds.sources import DQMIOFiles
from tests.detection_data import ME_1D, golden_for, make_histograms, replace
from tests.faults.conftest import ME, SAMPLE, SMALL

PROCESSING = {
    "split": {"name": "t", "train": {"runs": [1, 2]}, "apply": {"runs": [3]}},
    "labels": {"use_dcs": True, "bad_runs": [], "overlapping_ranges": "raise"},
    "quality": {"min_entries": 100, "min_entries_per_bin": 0.0},
    "min_train_lumisections": 5,
    "preprocessing": {"default": {"2d": {"shape": [4, 5]}}, "fine": {}},
}


def _process(hist, golden, params) -> DataCatalog:
    catalog = DataCatalog(
        {
            "histograms": MemoryDataset(hist),
            "golden_json": MemoryDataset(golden),
            "dcs_json": MemoryDataset({}),
            "split_definition": MemoryDataset({}),
            "bad_runs": MemoryDataset([]),
            "params:data_processing": MemoryDataset(DataProcessingParams.model_validate(params)),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog


@pytest.fixture(scope="module")
def hist() -> pd.DataFrame:
    return make_histograms({1: 12, 2: 12, 3: 10})


# -- item 10: messages --------------------------------------------------------------------------
def test_a_truncated_file_is_called_truncated(tmp_path):
    data = (SAMPLE / SMALL[0]).read_bytes()
    for keep in (0.3, 0.6, 0.9, 0.99):
        path = tmp_path / f"t{keep}.root"
        path.write_bytes(data[: int(len(data) * keep)])
        with pytest.raises(DQMIOError, match="truncated") as err:
            read_dqmio(path, me=list(ME))
        assert "expected Chunk" not in str(err.value) and str(path) in str(err.value)


def test_an_invalid_regex_is_not_reported_as_just_missing():
    with pytest.raises(MissingMEError, match=r"not a valid regular expression"):
        read_dqmio(SAMPLE / SMALL[0], me=["charge_PXLayer_[1-4"])


def test_the_overlap_hint_names_the_parameter(hist):
    with pytest.raises(LabelError, match=r"set data_processing.labels.overlapping_ranges: merge"):
        _process(hist, {"1": [[1, 5], [3, 12]], "2": [[1, 12]]}, PROCESSING)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"workers": "two"}, r"workers\s+Input should be a valid integer.*'two'"),
        ({"workers": 0}, r"workers\s+Input should be greater than or equal to 1"),
        ({"me": 5}, r"me\s+Value error, must be a list of ME names.*5"),
        ({"me": ["ok", 5]}, r"data_extraction.me: expected ME names or patterns.*5"),
        ({"include_run_level": "yes"}, r"include_run_level\s+Input should be a valid boolean"),
        ({"retry_bad": 1}, r"retry_bad\s+Input should be a valid boolean"),
        ({"duplicates": "keep"}, r"duplicates\s+Input should be 'raise', 'sum' or 'first'"),
    ],
)
def test_extraction_parameters_are_named_with_the_expected_type(params, message):
    with pytest.raises(ValueError, match=message):
        ExtractionParams.model_validate(params)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"quality": {"min_entries": "abc"}},
            r"quality\.min_entries\s+Input should be a valid number",
        ),
        (
            {"quality": {"per_me": {"x.*": {"min_entries": "n"}}}},
            r"quality\.per_me\.`x\.\*`\.min_entries\s+Input should be a valid number",
        ),
        (
            {"quality": {"min_entries_per_bin": -1}},
            r"quality\.min_entries_per_bin\s+Input should be greater than or equal to 0",
        ),
        (
            {"min_train_lumisections": "ten"},
            r"min_train_lumisections\s+Input should be a valid integer",
        ),
        ({"labels": {"use_dcs": "maybe"}}, r"labels\.use_dcs\s+Input should be a valid boolean"),
        (
            {"labels": {"overlapping_ranges": "x"}},
            r"labels\.overlapping_ranges\s+Input should be 'raise' or 'merge'",
        ),
        ({"quality": {"per_me": {"(": {}}}}, r"per_me\['\('\]: not a valid regular expression"),
        ({"qualty": {}}, r"unknown key\(s\) 'qualty' \(did you mean 'quality'\?\)"),
    ],
)
def test_processing_parameters_are_named_with_the_expected_type(hist, change, message):
    with pytest.raises(ValueError, match=message):
        _process(hist, golden_for(hist), {**PROCESSING, **change})


def test_quality_detail_says_why_a_histogram_is_invalid(hist):
    bad = replace(hist, 3, 1, ME_1D, np.r_[np.nan, np.full(39, 100.0)])
    bad = replace(bad, 3, 2, ME_1D, np.r_[-1.0, np.inf, np.full(38, 100.0)])
    ls = _process(bad, golden_for(bad), PROCESSING)["lumisections"].load()
    ls = ls.set_index(["run", "lumi"])
    assert f"{ME_1D}: invalid (1 NaN bin(s))" in ls.loc[(3, 1), "quality_detail"]
    assert (
        f"{ME_1D}: invalid (1 infinite bin(s), 1 negative bin(s))"
        in ls.loc[(3, 2), "quality_detail"]
    )


# -- item 12: invalid values refused ------------------------------------------------------------
@pytest.mark.parametrize("workers", [0, -3, True, 2.5])
def test_invalid_worker_counts_are_refused(workers, sample_dir, tmp_path):
    with pytest.raises(ValueError, match=r"workers\s+Input should be"):
        ExtractionParams.model_validate({"workers": workers})
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        extract_many(DQMIOFiles(path=str(sample_dir)), tmp_path / "o", workers=workers)


@pytest.mark.parametrize("workers", ["0", "-3", "two"])
def test_the_cli_refuses_invalid_worker_counts(workers, sample_dir, tmp_path):
    cli = [sys.executable, "-m", "dqm_playground_ds.extraction", str(sample_dir)]
    done = subprocess.run(
        [*cli, "--out", str(tmp_path / "o"), "--workers", workers],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and "--workers: expected a positive integer" in done.stderr


# -- item 11: the umask decides the mode ----------------------------------------------------------
UMASK_CHILD = """
import os, sys
os.umask(int(sys.argv[2], 8))
from pathlib import Path
from dqm_playground_ds.atomic import atomic_write
atomic_write(Path(sys.argv[1]), lambda tmp: Path(tmp).write_text("x"))
"""


@pytest.mark.parametrize(("umask", "mode"), [("022", 0o644), ("002", 0o664), ("077", 0o600)])
def test_atomic_outputs_follow_the_umask(tmp_path, umask, mode):
    target = tmp_path / "out.txt"
    subprocess.run([sys.executable, "-c", UMASK_CHILD, str(target), umask], check=True, timeout=60)
    assert stat.S_IMODE(target.stat().st_mode) == mode


def test_extraction_partitions_and_kedro_tables_are_0644_by_default(sample_dir, tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "o"
        extract_many(DQMIOFiles(path=str(sample_dir)), out, Request(me=ME), progress=False)
        table = tmp_path / "t.parquet"
        ParquetTableDataset(filepath=str(table)).save(pd.DataFrame({"a": [1]}))
        atomic_write(tmp_path / "plain", lambda tmp: open(tmp, "w").close())
    finally:
        os.umask(old)
    files = [*out.glob("part-*.parquet"), *(out / "_done").glob("*.json"), table]
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o644 for f in files)
