"""Playground records to histogram-table rows: mapping, 2D order, flow bins and bad records."""

from __future__ import annotations

import numpy as np
import pytest

from dqm_playground_ds.platform import RecordError
from dqm_playground_ds.platform.records import records_to_frame
from dqm_playground_ds.schema import validate_histograms

R1 = {
    "id": 41,
    "run": 315267,
    "lumisection": 12,
    "title": "Summary_ClusterStoNCorr__OnTrack__TEC",
    "entries": 6.0,
    "data": [0.0, 3.0, 2.0, 1.0],
    "x_min": 0.0,
    "x_max": 100.0,
    "x_bin": 4,
    "source_data_file": 7,
}
R2 = {
    **R1,
    "id": 42,
    "title": "map",
    "data": [[1, 2, 3], [4, 5, 6]],
    "x_bin": 3,
    "y_min": -1.0,
    "y_max": 1.0,
    "y_bin": 2,
}


def test_1d_record_maps_to_the_schema():
    df = validate_histograms(records_to_frame([R1], dim=1, source="u"))
    row = df.iloc[0]
    assert (row["run"], row["lumi"], row["me"], row["dim"], row["x_bins"], row["y_bins"]) == (
        315267,
        12,
        R1["title"],
        1,
        4,
        0,
    )
    assert np.isnan(row["y_min"]) and row["source"] == "u"
    np.testing.assert_array_equal(row["data"], R1["data"])


def test_2d_rows_are_flattened_y_outer_x_inner():
    df = validate_histograms(records_to_frame([R2], dim=2, source="u"))
    np.testing.assert_array_equal(df["data"].iloc[0], [1, 2, 3, 4, 5, 6])
    assert df["y_bins"].iloc[0] == 2 and df["x_bins"].iloc[0] == 3


def test_flow_bins_are_dropped_and_missing_entries_summed():
    flow = {**R1, "data": [9.0, 0.0, 3.0, 2.0, 1.0, 9.0], "entries": None}
    df = records_to_frame([flow], dim=1, source="u")
    np.testing.assert_array_equal(df["data"].iloc[0], R1["data"])
    assert df["entries"].iloc[0] == 6.0
    flow2 = {**R2, "data": np.pad(np.array(R2["data"]), 1).tolist()}
    np.testing.assert_array_equal(
        records_to_frame([flow2], dim=2, source="u")["data"].iloc[0], [1, 2, 3, 4, 5, 6]
    )


@pytest.mark.parametrize(
    ("record", "dim", "message"),
    [
        ({k: v for k, v in R1.items() if k != "title"}, 1, r"id=41 .*lacks field\(s\) \['title'\]"),
        ({**R2, "y_bin": None}, 2, r"lacks field\(s\) \['y_bin'\]"),
        ({**R1, "data": [1.0, 2.0]}, 1, "2 values, x_bin=4"),
        ({**R2, "data": [1, 2, 3, 4, 5, 6]}, 2, "list of y rows"),
        ({**R1, "data": ["a"] * 4}, 1, "not numeric"),
        ({**R1, "x_bin": "many"}, 1, "wrong type"),
        ("not a record", 1, "not an object"),
    ],
)
def test_bad_records_are_named(record, dim, message):
    with pytest.raises(RecordError, match=message):
        records_to_frame([record], dim=dim, source="u")


def test_skip_mode_drops_bad_records(caplog):
    df = records_to_frame([R1, {**R1, "id": 2, "x_max": None}], dim=1, source="u", on_bad="skip")
    assert len(df) == 1 and "skipped a bad record" in caplog.text
