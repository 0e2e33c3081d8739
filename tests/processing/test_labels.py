"""Certification labels from Run Registry JSON masks: ranges, validation, good/bad/unknown."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from dqm_playground_ds.processing.labels import (
    LabelError,
    LumiMask,
    label_lumisections,
    parse_bad_runs,
)

LABELS = Path(__file__).resolve().parents[2] / "data" / "01_raw" / "labels"


def test_ranges_are_one_based_and_inclusive():
    mask = LumiMask.from_json({"100": [[4, 6], [10, 10]]})
    lumis = np.arange(1, 13)
    inside = mask.contains(np.full(lumis.size, 100), lumis)
    assert lumis[inside].tolist() == [4, 5, 6, 10]
    assert not mask.contains([101], [5]).any()  # a run absent from the mask
    assert len(mask) == 4


def test_touching_ranges_merge_silently_and_order_does_not_matter():
    mask = LumiMask.from_json({"100": [[6, 9], [1, 5]]})
    assert mask.ranges[100] == ((1, 9),)
    assert mask.to_json() == {"100": [[1, 9]]}


def test_overlapping_ranges_raise_by_default_naming_the_run():
    with pytest.raises(LabelError, match=r"run 100: ranges \[1, 5\] and \[4, 8\] overlap"):
        LumiMask.from_json({"100": [[1, 5], [4, 8]]}, name="golden")


def test_overlapping_ranges_merge_on_request(caplog):
    with caplog.at_level(logging.WARNING):
        mask = LumiMask.from_json({"100": [[1, 5], [4, 8], [20, 21]]}, overlap="merge")
    assert mask.ranges[100] == ((1, 8), (20, 21))
    assert "merging overlapping" in caplog.text


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"abc": [[1, 2]]}, "not an integer"),
        ({"-5": [[1, 2]]}, "must be positive"),
        ({"100": [[1, 2, 3]]}, "is not \\[first, last\\]"),
        ({"100": [[5, 2]]}, "ends before it starts"),
        ({"100": [[0, 2]]}, "starts below LS 1"),
        ({"100": [[1.5, 2]]}, "not an integer"),
        ({"100": "1-5"}, "expected a list"),
        ({"100": [7]}, "is not \\[first, last\\]"),
        ([[1, 2]], "expected a mapping"),
    ],
)
def test_malformed_masks_raise_a_clear_error(mapping, message):
    with pytest.raises(LabelError, match=message):
        LumiMask.from_json(mapping)


def test_duplicate_run_keys_are_refused():
    with pytest.raises(LabelError, match="appears twice"):
        LumiMask.from_json({"100": [[1, 2]], 100: [[5, 6]]})


def test_bad_runs_list():
    assert parse_bad_runs(None) == frozenset()
    assert parse_bad_runs(["100", 101]) == {100, 101}
    with pytest.raises(LabelError):
        parse_bad_runs("100")
    with pytest.raises(LabelError):
        parse_bad_runs([1.5])


def test_labels_with_dcs_and_bad_runs():
    golden = LumiMask.from_json({"1": [[3, 5]], "2": [[1, 4]]})
    dcs = LumiMask.from_json({"1": [[2, 6]], "2": [[1, 4]]})
    runs = [1, 1, 1, 1, 1, 2, 3]
    lumis = [1, 2, 4, 6, 7, 2, 1]
    out = label_lumisections(runs, lumis, golden, dcs, bad_runs=[2])
    assert out["label"].tolist() == ["unknown", "bad", "good", "bad", "unknown", "bad", "unknown"]
    assert out["label_reason"].tolist() == [
        "dcs_off",
        "dcs_on_not_golden",
        "golden",
        "dcs_on_not_golden",
        "dcs_off",
        "bad_run",  # the bad-runs list overrides golden
        "run_not_certified",
    ]


def test_labels_without_dcs_not_golden_is_bad():
    golden = LumiMask.from_json({"1": [[3, 5]]})
    out = label_lumisections([1, 1, 9], [2, 3, 1], golden)
    assert out["label"].tolist() == ["bad", "good", "unknown"]
    assert out["label_reason"].tolist() == ["not_golden", "golden", "run_not_certified"]


def test_bundled_sample_labels_agree_with_its_readme():
    golden = LumiMask.from_json(json.loads((LABELS / "golden.json").read_text()))
    dcs = LumiMask.from_json(json.loads((LABELS / "dcs_on.json").read_text()))
    assert (len(golden), len(dcs)) == (490, 561)
    lumis = np.arange(1, 41)
    out = label_lumisections(np.full(40, 315420), lumis, golden, dcs)
    bad = lumis[(out["label"] == "bad").to_numpy()].tolist()
    assert bad == [*range(9, 15), *range(18, 26), *range(29, 37)]  # the injected problems
    assert lumis[(out["label"] == "unknown").to_numpy()].tolist() == [1, 2, 3, 40]


def test_certified_runs_from_the_dcs_json():
    """A golden JSON that omits all-bad runs: with certified_runs=dcs their DCS-on LS are bad."""
    golden = LumiMask.from_json({"1": [[1, 3]]}, name="golden")
    dcs = LumiMask.from_json({"1": [[1, 3]], "2": [[1, 2]]}, name="dcs")
    runs, lumis = [1, 2, 2, 2], [1, 1, 2, 3]
    default = label_lumisections(runs, lumis, golden, dcs)
    assert default["label"].tolist() == ["good", "unknown", "unknown", "unknown"]
    out = label_lumisections(runs, lumis, golden, dcs, certified_runs="dcs")
    assert out["label"].tolist() == ["good", "bad", "bad", "unknown"]  # LS 3: DCS off
    with pytest.raises(LabelError, match="needs a DCS JSON"):
        label_lumisections(runs, lumis, golden, None, certified_runs="dcs")
    with pytest.raises(LabelError, match="golden or dcs"):
        label_lumisections(runs, lumis, golden, dcs, certified_runs="all")
