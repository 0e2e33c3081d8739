"""Legacy ML4DQM DataFrame CSV: real sample (shared), generated 1D/2D files, malformed rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dqm_playground_ds.readers.legacy_csv import LegacyCSVError, read_legacy_csv
from dqm_playground_ds.schema import validate_histograms

HEADER = "fromrun,fromlumi,hname,fromrun,fromlumi,metype,hname,histo,entries,Xmax,Xmin,Xbins,Ymax,Ymin,Ybins\n"
BUNDLED = Path(__file__).resolve().parents[2] / "data" / "01_raw" / "legacy_csv"


def _row(run, lumi, name, metype, values, entries, xmax, xmin, xb, ymax, ymin, yb) -> str:
    histo = "[" + ", ".join(str(int(v)) for v in values) + "]"
    return (
        f'{run},{lumi},{name},{run},{lumi},{metype},{name},"{histo}",{entries},{xmax},{xmin},'
        f"{xb},{ymax},{ymin},{yb}\n"
    )


def test_real_sample(shared_real):
    path = shared_real / "legacy-csv" / "ZeroBias_2018A_DataFrame_1D_2.csv"
    table = validate_histograms(read_legacy_csv(path))
    assert len(table) == 9 and set(table["run"]) == {315488} and set(table["lumi"]) == {229}
    assert (table["x_bins"] == 100).all() and (table["dim"] == 1).all()
    raw = pd.read_csv(path)
    first = raw.iloc[0]
    row = table[table["me"] == first["hname"]].iloc[0]
    values = np.array(first["histo"].strip("[]").split(","), dtype=float)
    np.testing.assert_array_equal(row["data"], values[1:-1])  # flow bins dropped
    assert row["entries"] == first["entries"]  # fEntries kept, not the bin sum
    assert (row["x_min"], row["x_max"]) == (-0.5, 99.5)
    assert np.isnan(row["y_min"]) and row["y_bins"] == 0


def test_2d_is_converted_from_y_major_with_flow(tmp_path):
    nx, ny = 3, 2
    grid = np.arange((ny + 2) * (nx + 2)).reshape(ny + 2, nx + 2)  # y-major with flow
    path = tmp_path / "f_2D.csv"
    path.write_text(HEADER + _row(1, 5, "map", 6, grid.ravel(), 99, 3.0, 0.0, nx, 1.0, -1.0, ny))
    row = read_legacy_csv(path).iloc[0]
    assert (row["dim"], row["x_bins"], row["y_bins"]) == (2, 3, 2)
    np.testing.assert_array_equal(row["data"], grid[1:-1, 1:-1].ravel())
    assert (row["y_min"], row["y_max"]) == (-1.0, 1.0)


def test_selection_and_run_level(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text(
        HEADER
        + _row(1, 0, "h1", 3, range(6), 4, 4.0, 0.0, 4, 1, 0, 1)
        + _row(1, 1, "h1", 3, range(6), 4, 4.0, 0.0, 4, 1, 0, 1)
        + _row(1, 1, "h2", 3, range(6), 4, 4.0, 0.0, 4, 1, 0, 1)
    )
    assert len(read_legacy_csv(path)) == 2
    assert len(read_legacy_csv(path, include_run_level=True)) == 3
    assert read_legacy_csv(path, me=["h2"])["me"].tolist() == ["h2"]
    assert len(read_legacy_csv(path, me=[r"h\d"], chunksize=1)) == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_row(1, 1, "h", 3, range(5), 4, 4.0, 0.0, 4, 1, 0, 1), r"line 2: histo has 5 values"),
        ('1,1,h,1,1,3,h,"[0, x, 1]",4,4.0,0.0,1,1,0,1\n', r"line 2: histo holds a non-number"),
        ("1,1,h,1,1,3,h,,4,4.0,0.0,1,1,0,1\n", r"line 2: empty value in \['histo'\]"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, body, message):
    path = tmp_path / "bad.csv"
    path.write_text(
        HEADER
        + _row(1, 2, "ok", 3, range(6), 4, 4.0, 0.0, 4, 1, 0, 1).replace("1,2,ok", "1,2,ok")
        + body
    )
    with pytest.raises(LegacyCSVError, match=message.replace("line 2", "line 3")) as err:
        read_legacy_csv(path)
    assert str(path) in str(err.value)


def test_not_a_legacy_csv(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(LegacyCSVError, match="missing column"):
        read_legacy_csv(path)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(LegacyCSVError, match="file is empty"):
        read_legacy_csv(empty)


def test_bundled_csv_files():
    files = sorted(BUNDLED.glob("*.csv"))
    if not files:
        pytest.skip("bundled legacy CSV not generated")
    dims = set()
    for f in files:
        table = validate_histograms(read_legacy_csv(f))
        assert len(table) > 0
        dims.update(table["dim"].tolist())
    assert dims == {1, 2}
