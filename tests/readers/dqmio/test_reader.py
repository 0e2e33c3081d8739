"""The DQMIO reader against what ROOT itself reads from the committed fixtures."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dqm_playground_ds.readers.dqmio import (
    DQMIOError,
    DQMIOFile,
    MissingMEError,
    iter_dqmio,
    read_dqmio,
)
from dqm_playground_ds.schema import COLUMNS, validate_histograms


def _expected_frame(expected: dict, include_run_level: bool = True) -> pd.DataFrame:
    rows = [r for r in expected["histograms"] if include_run_level or r["lumi"] > 0]
    return pd.DataFrame(rows).sort_values(["run", "lumi", "me"], ignore_index=True)


def _assert_matches_root(table: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert len(table) == len(expected)
    table = table.sort_values(["run", "lumi", "me"], ignore_index=True)
    expected = expected.sort_values(["run", "lumi", "me"], ignore_index=True)
    for col in ("run", "lumi", "me", "dim", "x_bins", "y_bins"):
        assert table[col].tolist() == expected[col].tolist(), col
    for col in ("entries", "x_min", "x_max"):
        np.testing.assert_array_equal(table[col].to_numpy(), expected[col].to_numpy(float))
    two_d = expected["dim"] == 2
    np.testing.assert_array_equal(table.loc[two_d, "y_min"], expected.loc[two_d, "y_min"])
    assert table.loc[~two_d, "y_min"].isna().all()
    for got, want, me in zip(table["data"], expected["data"], table["me"], strict=True):
        np.testing.assert_array_equal(got, np.asarray(want, dtype=np.float64), err_msg=me)


@pytest.mark.parametrize("name", ["all_types", "many_baskets"])
def test_every_bin_equals_root(dqmio_fixture, name):
    path, expected = dqmio_fixture(name)
    table = read_dqmio(path, include_run_level=True)
    _assert_matches_root(table, _expected_frame(expected))
    assert list(table.columns) == list(COLUMNS)
    assert set(table["source"]) == {str(path)}
    validate_histograms(table)  # the reader's output already is in the schema


def test_every_histogram_type_is_read(dqmio_fixture):
    path, expected = dqmio_fixture("all_types")
    classes = {r["class"] for r in expected["histograms"]}
    assert classes == {"TH1F", "TH1S", "TH1D", "TH1I", "TH2F", "TH2S", "TH2D", "TH2I"}
    table = read_dqmio(path, me=r"Tracker/Types/.*")
    assert set(table["me"]) == {
        f"Tracker/Types/{c.lower()}_{'map' if c.startswith('TH2') else 'hist'}" for c in classes
    }


def test_2d_is_y_outer_x_inner(dqmio_fixture):
    path, expected = dqmio_fixture("all_types")
    table = read_dqmio(path, me="Tracker/Types/th2i_map")
    row = table.iloc[0]
    assert (row["x_bins"], row["y_bins"]) == (6, 9)
    ref = next(
        r
        for r in expected["histograms"]
        if r["me"] == "Tracker/Types/th2i_map" and (r["run"], r["lumi"]) == (row.run, row.lumi)
    )
    grid = np.asarray(ref["data"]).reshape(9, 6)  # rows are y bins
    np.testing.assert_array_equal(row["data"].reshape(row["y_bins"], row["x_bins"]), grid)


def test_run_level_rows_only_on_request(dqmio_fixture):
    path, _ = dqmio_fixture("all_types")
    without = read_dqmio(path)
    with_run = read_dqmio(path, include_run_level=True)
    assert (without["lumi"] > 0).all()
    run_level = with_run[with_run["lumi"] == 0]
    assert set(run_level["me"]) == {"Tracker/Types/th1f_hist", "Tracker/RunOnly/summary_map"}
    assert sorted(set(run_level["run"])) == [315257, 315259]
    assert "Tracker/RunOnly/summary_map" not in set(without["me"])


def test_empty_lumi_is_indexed_but_has_no_rows(dqmio_fixture):
    path, _ = dqmio_fixture("all_types")
    with DQMIOFile(path) as f:
        summary = f.summary()
        assert 1000 in set(f.indices["Type"].tolist())
    assert summary.n_lumis == 5 + 3  # lumi 2 of run 315259 holds no ME but is in the index
    assert summary.runs == [315257, 315259]
    table = read_dqmio(path)
    assert not ((table["run"] == 315259) & (table["lumi"] == 2)).any()
    assert (
        summary.guid
        == "00000000-0000-4000-8000-" + f"{__import__('zlib').crc32(b'all_types'):012d}"
    )


def test_selection_exact_regex_and_list(dqmio_fixture):
    path, _ = dqmio_fixture("all_types")
    exact = read_dqmio(path, me="PixelPhase1/Tracks/PXForward/charge_PXDisk_+1")
    assert set(exact["me"]) == {"PixelPhase1/Tracks/PXForward/charge_PXDisk_+1"}
    assert len(exact) == 7
    regex = read_dqmio(path, me=r"Tracker/Types/th1[fd]_hist")
    assert set(regex["me"]) == {"Tracker/Types/th1f_hist", "Tracker/Types/th1d_hist"}
    both = read_dqmio(path, me=["Tracker/Types/th2s_map", r".*_PXDisk_\+1"])
    assert set(both["me"]) == {
        "Tracker/Types/th2s_map",
        "PixelPhase1/Tracks/PXForward/charge_PXDisk_+1",
    }
    assert len(read_dqmio(path)["me"].unique()) == 10


def test_fentries_is_root_fentries_not_the_bin_sum(dqmio_fixture):
    path, _ = dqmio_fixture("all_types")
    table = read_dqmio(path, me="PixelPhase1/Tracks/PXForward/charge_PXDisk_+1")
    assert (table["entries"] == 1234.0 + table["lumi"]).all()


def test_missing_me_names_the_file_and_suggests(dqmio_fixture):
    path, _ = dqmio_fixture("all_types")
    with pytest.raises(MissingMEError) as err:
        read_dqmio(path, me=["Tracker/Types/th1f_hist", "Tracker/Types/th1f_hst"])
    assert str(path) in str(err.value)
    assert err.value.missing == ["Tracker/Types/th1f_hst"]
    assert "Tracker/Types/th1f_hist" in str(err.value)  # close match offered
    ignored = read_dqmio(path, me=["Tracker/Types/th1f_hist", "nope"], missing="ignore")
    assert set(ignored["me"]) == {"Tracker/Types/th1f_hist"}


def test_binning_change_between_lumis(dqmio_fixture):
    path, expected = dqmio_fixture("all_types")
    table = read_dqmio(path, me="Tracker/Changing/rebinned")
    assert sorted(set(table["x_bins"])) == [10, 20]
    assert sorted(set(table["x_max"])) == [10.0, 20.0]
    exp = _expected_frame(expected, include_run_level=False)
    _assert_matches_root(table, exp[exp["me"] == "Tracker/Changing/rebinned"])


def test_streaming_in_small_chunks_gives_the_same_table(dqmio_fixture):
    path, _ = dqmio_fixture("many_baskets")
    whole = read_dqmio(path)
    parts = list(iter_dqmio(path, chunk_bytes=1))
    assert len(parts) >= 7  # one piece per basket: 3 TH1F + 4 TH2F baskets
    streamed = pd.concat(parts, ignore_index=True).sort_values(
        ["run", "lumi", "me"], ignore_index=True
    )
    pd.testing.assert_frame_equal(streamed.drop(columns="data"), whole.drop(columns="data"))
    for a, b in zip(streamed["data"], whole["data"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_entries_differing_from_the_prototype_are_decoded_one_by_one(dqmio_fixture, monkeypatch):
    """Force the per-entry fallback and check it gives the same values as the vector path."""
    from dqm_playground_ds.readers.dqmio import reader

    path, expected = dqmio_fixture("many_baskets")
    original = reader.parse_entry
    calls = []

    def spoiled(buf, type_code):
        layout = original(buf, type_code)
        calls.append(1)
        if len(calls) == 1:  # the first prototype claims a wrong header: every check fails
            return type(layout)(**{**layout.__dict__, "th1_head": b"\0" * 6})
        return layout

    monkeypatch.setattr(reader, "parse_entry", spoiled)
    table = read_dqmio(path, me=r".*PXLayer_1")
    assert len(calls) > 2
    exp = _expected_frame(expected, include_run_level=False)
    _assert_matches_root(table, exp[exp["me"].str.endswith("PXLayer_1")])


def test_duplicate_keys_from_merged_files_are_summed(dqmio_fixture):
    path, expected = dqmio_fixture("merged")
    table = read_dqmio(path)
    assert len(table) == 2
    for lumi in (1, 2):
        rows = [r for r in expected["histograms"] if r["lumi"] == lumi]
        got = table[table["lumi"] == lumi].iloc[0]
        np.testing.assert_array_equal(got["data"], np.sum([r["data"] for r in rows], axis=0))
        assert got["entries"] == sum(r["entries"] for r in rows)
    with pytest.raises(DQMIOError, match="share a \\(run, lumi, me\\) key"):
        read_dqmio(path, duplicates="raise")
    first = read_dqmio(path, duplicates="first")
    assert len(first) == 2 and not first.duplicated(["run", "lumi", "me"]).any()


def test_local_file_url(dqmio_fixture):
    path, _ = dqmio_fixture("all_types")
    by_url = read_dqmio(Path(path).resolve().as_uri(), me="Tracker/Types/th1d_hist")
    by_path = read_dqmio(path, me="Tracker/Types/th1d_hist")
    for a, b in zip(by_url["data"], by_path["data"], strict=True):
        np.testing.assert_array_equal(a, b)


# -- bad files ---------------------------------------------------------------------------------


def _bad(tmp_path: Path, name: str, content: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(content)
    return p


@pytest.mark.parametrize(
    ("maker", "message"),
    [
        (lambda d, src: _bad(d, "empty.root", b""), "file is empty"),
        (lambda d, src: _bad(d, "random.root", os.urandom(5000)), "not a readable ROOT file"),
        (lambda d, src: _bad(d, "text.root", b"run,lumi\n1,2\n" * 100), "not a readable ROOT file"),
        (
            lambda d, src: _bad(d, "half.root", src.read_bytes()[: src.stat().st_size // 2]),
            "truncated",
        ),
        (lambda d, src: _bad(d, "tail.root", src.read_bytes()[:-100]), "truncated"),
        (
            lambda d, src: shutil.copy(src.parent / "not_dqmio.root", d / "h.root"),
            "no 'Indices' tree",
        ),
        (lambda d, src: d / "does_not_exist.root", "file not found"),
    ],
    ids=[
        "empty",
        "random-bytes",
        "text",
        "truncated-half",
        "truncated-tail",
        "no-indices",
        "missing",
    ],
)
def test_bad_files_raise_dqmio_error_naming_the_file(tmp_path, dqmio_fixture, maker, message):
    src, _ = dqmio_fixture("many_baskets")
    path = Path(maker(tmp_path, src))
    with pytest.raises(DQMIOError, match=message) as err:
        read_dqmio(path)
    assert str(path) in str(err.value)


def test_corrupt_basket_is_reported_with_tree_and_basket(tmp_path, dqmio_fixture):
    src, _ = dqmio_fixture("many_baskets")
    with DQMIOFile(src) as f:
        branch = f._tree(3)["Value"]
        seek = int(branch.member("fBasketSeek")[1])
        nbytes = int(branch.member("fBasketBytes")[1])
    raw = bytearray(src.read_bytes())
    for i in range(seek + 120, seek + nbytes - 20, 7):  # scribble over the compressed payload
        raw[i] ^= 0x5A
    bad = tmp_path / "corrupt_basket.root"
    bad.write_bytes(bytes(raw))
    with pytest.raises(DQMIOError, match=r"TH1Fs/Value basket 1") as err:
        read_dqmio(bad)
    assert str(bad) in str(err.value)
    # the other trees are intact: what does not touch the broken basket still reads
    assert len(read_dqmio(bad, me=r".*clusterposition.*")) == 200


def test_each_me_alone_equals_root(dqmio_fixture):
    """Reading one ME keeps only its entries' bytes from each basket; values stay exact."""
    path, expected = dqmio_fixture("all_types")
    exp = _expected_frame(expected, include_run_level=True)
    for me in sorted(set(exp["me"])):
        table = read_dqmio(path, me=me, include_run_level=True)
        _assert_matches_root(table, exp[exp["me"] == me])
