"""The bundled sample data says what data/README.md says: runs, MEs, labels and injected problems."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dqm_playground_ds.readers.dqmio import DQMIOFile, read_dqmio
from dqm_playground_ds.readers.legacy_csv import read_legacy_csv

RAW = Path(__file__).resolve().parents[1] / "data" / "01_raw"
FILES = sorted((RAW / "dqmio").glob("*.root"))
pytestmark = pytest.mark.skipif(not FILES, reason="bundled sample not generated")


def _ranges(mask: dict) -> dict[int, set[int]]:
    return {int(r): {ls for a, b in rs for ls in range(a, b + 1)} for r, rs in mask.items()}


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return pd.concat([read_dqmio(f) for f in FILES], ignore_index=True)


@pytest.fixture(scope="module")
def problems() -> list[dict]:
    return json.loads((RAW / "injected_problems.json").read_text())


def test_runs_lumis_and_mes(table):
    lumis = table.groupby("run")["lumi"].agg(["min", "max", "nunique"])
    assert lumis.to_dict("index") == {
        315257: {"min": 1, "max": 160, "nunique": 160},
        315264: {"min": 1, "max": 150, "nunique": 150},
        315322: {"min": 1, "max": 190, "nunique": 190},
        315357: {"min": 1, "max": 36, "nunique": 36},
        315420: {"min": 1, "max": 39, "nunique": 39},  # LS 40 holds no ME (Type 1000)
    }
    assert table["me"].nunique() == 8
    assert set(table.loc[table["dim"] == 2, "me"].str.rsplit("_", n=1).str[-1]) == {"1", "2"}
    assert sum(f.stat().st_size for f in RAW.rglob("*") if f.is_file()) < 10e6
    with DQMIOFile(FILES[0]) as f:
        assert set(f.list_mes()["type"]) == {"TH1F", "TH1D", "TH2F"}


def test_labels_agree_with_the_injected_problems(problems):
    golden = _ranges(json.loads((RAW / "labels" / "golden.json").read_text()))
    dcs = _ranges(json.loads((RAW / "labels" / "dcs_on.json").read_text()))
    for run, lumis in golden.items():
        assert lumis <= dcs[run]
    for p in problems:
        bad = set(range(p["lumis"][0], p["lumis"][1] + 1))
        assert not bad & golden[p["run"]], p
        if p["kind"] == "low_stats":
            assert not bad & dcs[p["run"]], p  # ramp-up: DCS off
        else:
            assert bad <= dcs[p["run"]], p  # DCS on but not golden: a weak "bad" label


def _rows(table, run, lumis, me):
    sel = (table["run"] == run) & table["lumi"].between(*lumis) & (table["me"] == me)
    return table[sel]


def test_injected_problems_are_in_the_data(table, problems):
    golden = _ranges(json.loads((RAW / "labels" / "golden.json").read_text()))
    for p in problems:
        if p["kind"] == "low_stats":
            low = table[(table["run"] == p["run"]) & table["lumi"].between(*p["lumis"])]
            normal = table[(table["run"] == p["run"]) & (table["lumi"] > p["lumis"][1] + 5)]
            assert low["entries"].median() < 0.1 * normal["entries"].median(), p
            continue
        bad = _rows(table, p["run"], p["lumis"], p["me"])
        run_rows = _rows(table, p["run"], (1, 10_000), p["me"])
        good = run_rows[run_rows["lumi"].isin(golden[p["run"]])]
        assert len(bad) == p["lumis"][1] - p["lumis"][0] + 1 and len(good) > 3, p
        b = np.mean(np.stack(bad["data"]), axis=0)
        g = np.mean(np.stack(good["data"]), axis=0)
        b, g = b / b.sum(), g / g.sum()
        if p["kind"] == "dead_region":
            dead = (b == 0) & (g > 0)
            assert dead.sum() >= 20, p
        elif p["kind"] == "hot_spot":
            assert (b / np.where(g > 0, g, np.inf)).max() > 2.5, p
        else:  # shift, sn_shift: the mean bin moves by several bins
            centres = np.arange(len(b))
            assert abs((b * centres).sum() - (g * centres).sum()) > 1.5, p


def test_legacy_csv_matches_the_dqmio_files(table):
    csv = read_legacy_csv(RAW / "legacy_csv" / "ZeroBias_2018A_DataFrame_1D_sample.csv")
    assert len(csv) == 50
    me = "SiStrip/MechanicalView/TIB/Summary_ClusterStoNCorr__OnTrack__TIB"
    for _, row in csv.iterrows():
        ref = _rows(table, row["run"], (row["lumi"], row["lumi"]), me).iloc[0]
        np.testing.assert_array_equal(row["data"], ref["data"])
        assert row["entries"] == ref["entries"]
    two_d = read_legacy_csv(RAW / "legacy_csv" / "ZeroBias_2018A_DataFrame_2D_sample.csv")
    ref = _rows(
        table,
        two_d["run"].iloc[0],
        (two_d["lumi"].iloc[0],) * 2,
        "PixelPhase1/Tracks/PXBarrel/clusterposition_zphi_ontrack_PXLayer_1",
    ).iloc[0]
    np.testing.assert_array_equal(two_d["data"].iloc[0], ref["data"])
