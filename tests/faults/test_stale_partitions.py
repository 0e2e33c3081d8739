"""Item 1: an input that is bad, removed or re-selected contributes nothing; nothing matches = error."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pandas as pd
import pytest

from dqm_playground_ds.extraction import (
    ExtractionError,
    Request,
    extract_many,
    extract_table,
    partition_id,
)
from dqm_playground_ds.pipelines.data_extraction.nodes import extract_histograms
from dqm_playground_ds.pipelines.data_extraction.params import ExtractionParams
from dqm_playground_ds.sources import DQMIOFiles
from tests.faults.conftest import FIXTURES, ME, SMALL, truncate


def _extract(*args, **kwargs):
    """The node's outputs, its lazy table read into one frame."""
    table, index = extract_histograms(*args, **kwargs)
    return table.read(), index


def _params(**kw):
    return ExtractionParams.model_validate({"me": list(ME), "progress": False, **kw})


def test_input_truncated_after_a_good_extraction_contributes_nothing(sample_dir, tmp_path):
    parts = tmp_path / "parts"
    source = DQMIOFiles(path=str(sample_dir), partitions_dir=str(parts))
    first, index = _extract(source, _params(missing_me="ignore"))
    assert (index["status"] == "ok").all() and first["source"].nunique() == 2
    bad_file = sample_dir / SMALL[0]
    truncate(bad_file)
    second, index = _extract(source, _params(missing_me="ignore"))
    assert index.set_index("path").loc[str(bad_file), "status"] == "bad"
    assert "truncated" in index.set_index("path").loc[str(bad_file), "error"]
    assert set(second["source"]) == {str(sample_dir / SMALL[1])}  # not the old rows
    assert not (parts / f"part-{partition_id(str(bad_file))}.parquet").exists()
    assert len(pd.read_parquet(parts)) == len(second)  # the folder itself holds no stale rows


def test_all_inputs_bad_is_an_error_not_yesterdays_table(sample_dir, tmp_path):
    source = DQMIOFiles(path=str(sample_dir), partitions_dir=str(tmp_path / "parts"))
    _extract(source, _params())
    for name in SMALL:
        truncate(sample_dir / name)
    with pytest.raises(ValueError, match=r"no histogram from 2 input\(s\) \(2 bad"):
        _extract(source, _params())


def test_reselection_drops_the_previous_selection(sample_dir, tmp_path):
    source = DQMIOFiles(path=str(sample_dir), partitions_dir=str(tmp_path / "parts"))
    wide, _ = _extract(source, _params(me=[".*PXLayer_.*"], missing_me="ignore"))
    narrow, _ = _extract(source, _params(me=[".*charge_PXLayer_1"], missing_me="ignore"))
    assert wide["me"].nunique() > 1
    assert set(narrow["me"]) == {"PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1"}


def test_selection_matching_nothing_anywhere_is_an_error(sample_dir, tmp_path):
    source = DQMIOFiles(path=str(sample_dir), partitions_dir=str(tmp_path / "parts"))
    _extract(source, _params(missing_me="ignore"))
    params = _params(me=[*ME, "No/Such/ME"], missing_me="ignore")
    with pytest.raises(ValueError, match=r"data_extraction.me: .*'No/Such/ME'.* matches no"):
        _extract(source, params)
    with pytest.raises(ExtractionError, match="matches no histogram"):
        extract_many(
            DQMIOFiles(path=str(sample_dir)),
            tmp_path / "other",
            Request(me=("No/Such/.*",), missing="ignore"),
            progress=False,
        )


def test_invalid_regex_is_refused_naming_the_parameter(sample_dir, tmp_path):
    source = DQMIOFiles(path=str(sample_dir), partitions_dir=str(tmp_path / "parts"))
    with pytest.raises(ValueError, match=r"data_extraction.me: 'charge_\[1-4' is not a valid"):
        _extract(source, _params(me=["charge_[1-4"], missing_me="ignore"))


def test_removed_input_is_pruned_from_pipeline_and_cli(sample_dir, tmp_path):
    parts = tmp_path / "parts"
    source = DQMIOFiles(path=str(sample_dir), partitions_dir=str(parts))
    histograms, _ = extract_table(source, Request(me=ME), partitions_dir=parts, progress=False)
    assert histograms["source"].nunique() == 2
    (sample_dir / SMALL[0]).unlink()
    histograms, index = extract_table(source, Request(me=ME), partitions_dir=parts, progress=False)
    assert set(histograms["source"]) == {str(sample_dir / SMALL[1])} and len(index) == 1
    # the command line: its output folder is read as a whole by pandas, so it must mirror too
    out = tmp_path / "cli"
    shutil.copy(sample_dir / SMALL[1], sample_dir / "again.root")
    cli = [sys.executable, "-m", "dqm_playground_ds.extraction", str(sample_dir), "--out", str(out)]
    cli += ["--workers", "1", *(a for m in ME for a in ("--me", m))]
    subprocess.run(cli, check=True, capture_output=True, timeout=120)
    assert pd.read_parquet(out)["source"].nunique() == 2
    (sample_dir / "again.root").unlink()
    subprocess.run(cli, check=True, capture_output=True, timeout=120)
    assert set(pd.read_parquet(out)["source"]) == {str(sample_dir / SMALL[1])}


def test_cli_refuses_an_invalid_regex_and_an_empty_selection(sample_dir, tmp_path):
    base = [sys.executable, "-m", "dqm_playground_ds.extraction", str(sample_dir)]
    base += ["--out", str(tmp_path / "o"), "--workers", "1"]
    bad = subprocess.run(
        [*base, "--me", "a[b"], capture_output=True, text=True, timeout=120, check=False
    )
    assert bad.returncode == 2 and "--me: 'a[b' is not a valid regular expression" in bad.stderr
    none = subprocess.run(
        [*base, "--me", "No/Such", "--ignore-missing"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert none.returncode == 2 and "matches no histogram" in none.stderr


def test_an_input_replaced_by_one_without_the_selection_drops_its_rows(sample_dir, tmp_path):
    out = tmp_path / "parts"
    source = DQMIOFiles(path=str(sample_dir))
    request = Request(me=ME, missing="ignore")
    extract_many(source, out, request, progress=False)
    replaced = sample_dir / SMALL[0]
    shutil.copy(FIXTURES / "all_types.root", replaced)  # a valid file without those MEs
    index = extract_many(source, out, request, progress=False)
    assert index.set_index("path").loc[str(replaced), "n_rows"] == 0
    assert set(pd.read_parquet(out)["source"]) == {str(sample_dir / SMALL[1])}
