"""Playground records to histogram-table rows: mapping, 2D order, flow bins and bad records."""

from __future__ import annotations

import numpy as np
import pytest

from dqm_playground_ds.platform import RecordError
from dqm_playground_ds.platform.records import record_to_row, records_to_columns, records_to_frame
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


@pytest.mark.parametrize("base", [R1, R2])
def test_a_uniform_page_gives_what_the_per_record_path_gives(base):
    """Pages of one binning take a vectorised path; it must equal converting record by record."""
    dim = 2 if "y_bin" in base else 1
    page = [
        {**base, "id": i, "lumisection": i, "entries": None if i % 2 else 3.0} for i in range(6)
    ]
    fast = records_to_columns(page, dim=dim, source="s")
    slow = {k: [v for r in page for v in [record_to_row(r, dim, "s")[k]]] for k in fast}
    assert fast.keys() == slow.keys()
    for key in fast:
        if key == "data":
            for a, b in zip(fast[key], slow[key], strict=True):
                np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_array_equal(np.asarray(fast[key]), np.asarray(slow[key]))
    mixed = [*page, {**base, "id": 99, "run": None}]  # one bad record: the per-record path names it
    with pytest.raises(RecordError, match="id=99"):
        records_to_columns(mixed, dim=dim, source="s")
