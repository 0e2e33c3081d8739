"""The one histogram schema: coercion, and errors that name the bad column or row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dqm_playground_ds.schema import (
    COLUMNS,
    HistogramSchemaError,
    data_matrix,
    empty_histograms,
    validate_histograms,
)


def _table(n: int = 3, **overrides) -> pd.DataFrame:
    base = {
        "run": [315257] * n,
        "lumi": list(range(1, n + 1)),
        "me": ["a/h"] * n,
        "dim": [1] * n,
        "entries": [10.0] * n,
        "x_min": [0.0] * n,
        "x_max": [1.0] * n,
        "x_bins": [4] * n,
        "y_min": [np.nan] * n,
        "y_max": [np.nan] * n,
        "y_bins": [0] * n,
        "data": [[1, 2, 3, 4]] * n,
        "source": ["f.root"] * n,
    }
    base.update(overrides)
    return pd.DataFrame(base)


def test_valid_table_is_coerced_to_schema_dtypes():
    out = validate_histograms(_table())
    assert list(out.columns) == list(COLUMNS)
    assert out["run"].dtype == np.int64 and out["dim"].dtype == np.int8
    assert out["x_bins"].dtype == np.int32 and str(out["me"].dtype) == "string"
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float64 for v in out["data"])
    np.testing.assert_array_equal(data_matrix(out), np.tile([1.0, 2, 3, 4], (3, 1)))


def test_2d_rows_and_empty_table():
    t = _table(1, dim=[2], y_min=[0.0], y_max=[2.0], y_bins=[2], data=[list(range(8))])
    assert validate_histograms(t)["y_bins"].iloc[0] == 2
    assert validate_histograms(empty_histograms()).empty


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"data": [[1, 2, 3, 4], [1, 2, 3], [1, 2, 3, 4]]}, r"row 1 .*lumi=2.*data has 3 values"),
        ({"dim": [1, 3, 1]}, r"row 1 .*dim must be 1 or 2"),
        ({"lumi": [1, -1, 2]}, r"row 1 .*lumi must be >= 0"),
        ({"run": [1, 2, 0]}, r"row 2 .*run must be positive"),
        ({"x_max": [1.0, 0.0, 1.0]}, r"row 1 .*x_max must be greater"),
        ({"lumi": [1, 1, 2]}, r"row 0 .*duplicate \(run, lumi, me\)"),
        ({"x_bins": [4, 4.5, 4]}, r"row 1 .*x_bins=4.5 is not an integer"),
        ({"me": ["a", None, "b"]}, r"row 1 .*me is missing"),
        ({"data": [[1, 2, 3, 4], "abc", [1, 2, 3, 4]]}, r"row 1 .*data is not a sequence"),
        ({"y_bins": [0, 2, 0]}, r"row 1 .*1D histogram must have y_bins = 0"),
    ],
)
def test_bad_rows_are_named(overrides, message):
    with pytest.raises(HistogramSchemaError, match=message):
        validate_histograms(_table(**overrides))


def test_missing_column_is_named():
    with pytest.raises(HistogramSchemaError, match=r"missing column\(s\) \['entries'\]"):
        validate_histograms(_table().drop(columns="entries"))


def test_data_matrix_refuses_mixed_binning():
    t = validate_histograms(_table(2, x_bins=[4, 2], data=[[1, 2, 3, 4], [1, 2]]))
    with pytest.raises(HistogramSchemaError, match="different bin counts"):
        data_matrix(t)
