"""Many-file extraction: parallel processes, resume after interruption, incremental runs, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dqm_playground_ds.extraction import (
    DONE_DIR,
    Request,
    extract_many,
    extract_table,
    partition_id,
    read_partitions,
)
from dqm_playground_ds.extraction import store as extraction
from dqm_playground_ds.readers.dqmio import read_dqmio
from dqm_playground_ds.sources import DQMIOFiles

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dqmio"
SAMPLE = Path(__file__).resolve().parents[2] / "data" / "01_raw" / "dqmio"


def _same_tables(a: pd.DataFrame, b: pd.DataFrame) -> None:
    a = a.sort_values(["run", "lumi", "me"], ignore_index=True)
    b = b.sort_values(["run", "lumi", "me"], ignore_index=True)
    pd.testing.assert_frame_equal(a.drop(columns="data"), b.drop(columns="data"))
    for x, y in zip(a["data"], b["data"], strict=True):
        np.testing.assert_array_equal(x, y)


def test_parallel_equals_sequential_and_equals_reader(inputs, tmp_path):
    source = DQMIOFiles(path=str(inputs))
    seq_index = extract_many(source, tmp_path / "seq", workers=1, progress=False)
    par_index = extract_many(source, tmp_path / "par", workers=2, progress=False)
    assert seq_index["status"].tolist() == par_index["status"].tolist() == ["ok", "ok", "bad"]
    seq, par = read_partitions(tmp_path / "seq"), read_partitions(tmp_path / "par")
    _same_tables(seq, par)
    direct = pd.concat([read_dqmio(inputs / "a.root"), read_dqmio(inputs / "b.root")])
    _same_tables(seq, direct)
    assert par_index.loc[0, "n_rows"] == len(read_dqmio(inputs / "a.root"))


def test_resume_reads_only_unfinished_inputs(inputs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    source = DQMIOFiles(path=str(inputs))
    calls: list[str] = []
    real = extraction.extract_one

    def interrupted(src, item, request, out_dir):
        if len(calls) == 1:
            raise KeyboardInterrupt  # the user pressed Ctrl-C while the second file was read
        calls.append(item)
        return real(src, item, request, out_dir)

    monkeypatch.setattr(extraction, "extract_one", interrupted)
    with pytest.raises(KeyboardInterrupt):
        extract_many(source, out, workers=1, progress=False)
    assert len(list((out / DONE_DIR).glob("*.json"))) == 1
    assert not list(out.glob(".tmp-*")) and not list((out / DONE_DIR).glob(".tmp-*"))

    resumed: list[str] = []
    monkeypatch.setattr(extraction, "extract_one", lambda *a: resumed.append(a[1]) or real(*a))
    index = extract_many(source, out, workers=1, progress=False)
    assert [Path(p).name for p in resumed] == ["b.root", "c_broken.root"]  # a.root not read again
    assert index["status"].tolist() == ["ok", "ok", "bad"]

    resumed.clear()
    extract_many(source, out, workers=1, progress=False)  # nothing new: nothing read
    assert resumed == []
    shutil.copy(FIXTURES / "merged.root", inputs / "d_new.root")
    index = extract_many(source, out, workers=1, progress=False)
    assert [Path(p).name for p in resumed] == ["d_new.root"]  # incremental: only the new file
    assert len(index) == 4


def test_changed_selection_or_file_is_read_again(inputs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    source = DQMIOFiles(path=str(inputs))
    extract_many(source, out, progress=False)
    read: list[str] = []
    real = extraction.extract_one
    monkeypatch.setattr(extraction, "extract_one", lambda *a: read.append(a[1]) or real(*a))
    extract_many(source, out, Request(me=(".*PXLayer_1",), missing="ignore"), progress=False)
    assert len(read) == 3
    read.clear()
    shutil.copy(FIXTURES / "merged.root", inputs / "a.root")  # the file changed on disk
    extract_many(source, out, Request(me=(".*PXLayer_1",), missing="ignore"), progress=False)
    assert [Path(p).name for p in read] == ["a.root"]
    read.clear()
    extract_many(
        source, out, Request(me=(".*PXLayer_1",), missing="ignore"), retry_bad=True, progress=False
    )
    assert [Path(p).name for p in read] == ["c_broken.root"]


def test_bad_input_marker_and_no_partition(inputs, tmp_path):
    out = tmp_path / "out"
    extract_many(DQMIOFiles(path=str(inputs)), out, progress=False)
    pid = partition_id(str(inputs / "c_broken.root"))
    marker = json.loads((out / DONE_DIR / f"{pid}.json").read_text())
    assert marker["row"]["status"] == "bad"
    assert "c_broken.root" in marker["row"]["error"]
    assert not (out / f"part-{pid}.parquet").exists()


def test_extract_table_prunes_removed_inputs(inputs, tmp_path):
    parts = tmp_path / "parts"
    source = DQMIOFiles(path=str(inputs))
    table, _ = extract_table(source, Request(), partitions_dir=parts, progress=False)
    (inputs / "b.root").unlink()
    table2, index2 = extract_table(source, Request(), partitions_dir=parts, progress=False)
    assert len(index2) == 2
    assert len(table2) == len(read_dqmio(FIXTURES / "all_types.root"))
    assert len(list(parts.glob("part-*.parquet"))) == 1
    assert len(table) > len(table2)


def test_partition_folder_is_a_plain_parquet_dataset(inputs, tmp_path):
    out = tmp_path / "out"
    extract_many(DQMIOFiles(path=str(inputs)), out, progress=False)
    df = pd.read_parquet(out)
    assert len(df) == len(read_partitions(out))


def test_command_line(inputs, tmp_path, capsys):
    out = tmp_path / "cli"
    code = extraction.main(
        [
            str(inputs),
            "--out",
            str(out),
            "--me",
            r".*charge_PXLayer_\d",
            "--ignore-missing",
            "--workers",
            "2",
            "--index",
            str(tmp_path / "index.parquet"),
        ]
    )
    assert code == 0
    text = capsys.readouterr()
    assert "2 file(s) ok, 1 bad" in text.out and "c_broken.root" in text.err
    table = read_partitions(out)
    assert set(table["me"]) == {f"PixelPhase1/Tracks/PXBarrel/charge_PXLayer_{i}" for i in (1, 2)}
    assert len(pd.read_parquet(tmp_path / "index.parquet")) == 3


def test_bundled_sample_in_parallel(tmp_path):
    if not list(SAMPLE.glob("*.root")):
        pytest.skip("bundled sample not generated")
    source = DQMIOFiles(path=str(SAMPLE))
    table, index = extract_table(
        source, Request(me=(r".*charge_PXLayer_1",)), workers=2, progress=False
    )
    assert (index["status"] == "ok").all()
    assert len(table) == index["n_lumis"].sum() - 1  # one LS of the CI test run holds no ME
