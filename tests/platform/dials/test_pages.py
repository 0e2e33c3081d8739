"""DIALS pages -> table columns: the column-wise path gives exactly what the per-record path does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dqm_playground_ds.platform.dials.pages import (
    DIALS_NAMES,
    FIELDS,
    gc_paused,
    in_table_order,
    page_columns,
    to_frame,
)
from dqm_playground_ds.platform.errors import RecordError
from dqm_playground_ds.platform.records import records_to_columns


def _page(dim: int, n: int = 7, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    page = []
    for i in range(n):
        rec = {"run_number": 315000 + i // 3, "ls_number": 1 + i, "me": f"A/me_{i % 2}",
               "x_min": -1.5, "x_max": 2.25, "x_bin": 4, "entries": int(rng.integers(0, 99))}  # fmt: skip
        values = rng.normal(size=(3, 4) if dim == 2 else 4)  # arbitrary doubles, not integers
        if dim == 2:
            rec.update(y_min=0.0, y_max=3.0, y_bin=3)
        rec["data"] = values.tolist()
        page.append(rec)
    return page


def _frame(parts: list[dict]) -> pd.DataFrame:
    return to_frame(parts)


@pytest.mark.parametrize("dim", [1, 2])
def test_column_wise_page_equals_record_by_record(dim):
    page = _page(dim)
    fast = page_columns(page, dim=dim, source="s")
    assert isinstance(fast["run"], np.ndarray)  # the column-wise path was taken
    slow = records_to_columns(page, dim=dim, source="s", names=DIALS_NAMES, on_bad="skip")
    pd.testing.assert_frame_equal(_frame([fast]), _frame([slow]))
    flat = np.asarray(page[2]["data"], dtype=np.float64).reshape(-1)
    assert np.array_equal(_frame([fast])["data"][2], flat)  # bit for bit, row-major for 2D


@pytest.mark.parametrize("dim", [1, 2])
def test_pages_with_other_shapes_go_record_by_record(dim):
    page = _page(dim)
    flow = _page(dim, seed=1)
    for rec in flow:  # a platform export that kept the flow bins
        if dim == 1:
            rec["data"] = [0.0, *rec["data"], 0.0]
        else:
            rec["data"] = [[0.0] * 6] + [[0.0, *row, 0.0] for row in rec["data"]] + [[0.0] * 6]
    other = _page(dim, seed=2)
    other[0]["x_bin"], other[0]["data"] = 2, (np.ones((3, 2)) if dim == 2 else np.ones(2)).tolist()
    no_entries = _page(dim, seed=3)
    no_entries[1]["entries"] = None
    for variant in (flow, other, no_entries):
        cols = page_columns(variant, dim=dim, source="s")
        assert isinstance(cols["run"], list)  # per-record path
        assert len(cols["run"]) == len(variant)
    assert _frame([page_columns(no_entries, dim=dim, source="s")])["entries"][1] == pytest.approx(
        float(np.sum(no_entries[1]["data"]))
    )
    both = _frame(
        [page_columns(page, dim=dim, source="s"), page_columns(flow, dim=dim, source="s")]
    )
    assert len(both) == 2 * len(page) and all(
        len(d) == (12 if dim == 2 else 4) for d in both["data"]
    )


def test_a_bad_record_is_named_or_skipped():
    page = _page(1)
    page[3]["data"] = page[3]["data"][:-1]
    with pytest.raises(RecordError, match=r"lumisection=4 .*data has 3 values"):
        page_columns(page, dim=1, source="s")
    kept = page_columns(page, dim=1, source="s", on_bad="skip")
    assert len(kept["run"]) == len(page) - 1
    page = _page(1)
    page[2]["data"] = "1234"  # as long as x_bin, but not an array
    with pytest.raises(RecordError, match=r"lumisection=3 .*data has 1 values"):
        page_columns(page, dim=1, source="s")
    page = _page(1)
    page[3] = "not a record"
    with pytest.raises(RecordError, match="not an object"):
        page_columns(page, dim=1, source="s")


def test_empty_page_and_fields():
    assert len(_frame([page_columns([], dim=1, source="s")])) == 0
    assert len(to_frame([])) == 0
    assert set(FIELDS[1]) < set(FIELDS[2]) and "data" in FIELDS[1] and "dataset" not in FIELDS[2]


def test_table_order_and_the_first_repeated_histogram():
    rng = np.random.default_rng(4)
    page = _page(1, n=40)
    for rec in page:
        rec["run_number"], rec["ls_number"] = int(rng.integers(1, 4)), int(rng.integers(1, 6))
        rec["me"] = f"B/{'éab'[int(rng.integers(0, 3))]}"  # non-ASCII names sort by code point
    table = to_frame([page_columns(page, dim=1, source="s")])
    ordered, dup = in_table_order(table)
    expected = table.sort_values(["run", "lumi", "me"], kind="stable", ignore_index=True)
    pd.testing.assert_frame_equal(ordered, expected)
    repeated = expected.duplicated(["run", "lumi", "me"])
    assert repeated.any() and dup == int(np.flatnonzero(repeated)[0])
    unique = table.drop_duplicates(["run", "lumi", "me"])
    assert in_table_order(unique)[1] is None
    assert in_table_order(table.head(0))[1] is None


def test_gc_is_paused_while_any_thread_is_inside_and_restored_after():
    import gc
    import threading

    entered, release = threading.Barrier(3), threading.Event()

    def worker():
        with gc_paused():
            entered.wait()
            release.wait()

    assert gc.isenabled()
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    entered.wait()
    with gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()  # the workers are still inside
    release.set()
    for t in threads:
        t.join()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # left as it was found
    finally:
        gc.enable()
