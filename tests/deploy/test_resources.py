"""Kubernetes quantities and per-task resources from node tags."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dqm_playground_ds.deploy.resources import check_profiles, quantity, task_resources

PROFILES = {
    "__default__": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    "extraction": {"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
    "gpu": {"limits": {"nvidia.com/gpu": "1"}},
    "big_node": {"requests": {"memory": "3000M"}},
}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", "0.5"),
        ("2", "2"),
        ("1Gi", str(2**30)),
        ("1.5G", "1.5e9"),
        ("1e3", "1000"),
        (4, "4"),
    ],
)
def test_quantity(text, value):
    assert quantity(text) == Decimal(value)


@pytest.mark.parametrize("bad", ["", "1 Gi", "1GB", "abc", "--1"])
def test_bad_quantity(bad):
    with pytest.raises(ValueError, match="is not a Kubernetes quantity"):
        quantity(bad)


def test_task_takes_the_largest_need_of_its_nodes():
    assert task_resources([("a", set())], PROFILES) == PROFILES["__default__"]
    merged = task_resources([("a", {"extraction"}), ("b", {"gpu"}), ("big_node", set())], PROFILES)
    assert merged == {
        "limits": {"memory": "4Gi", "nvidia.com/gpu": "1"},
        "requests": {"cpu": "2", "memory": "3000M"},
    }
    assert task_resources([("a", set())], {}) == {}


def test_limit_raised_to_the_largest_request():
    profiles = {"__default__": {"limits": {"memory": "1Gi"}}, "x": {"requests": {"memory": "3Gi"}}}
    assert task_resources([("a", set()), ("b", {"x"})], profiles)["limits"] == {"memory": "3Gi"}


def test_check_profiles_names_the_culprit():
    check_profiles(PROFILES)
    with pytest.raises(ValueError, match=r"resources\.x\.requests\.cpu"):
        check_profiles({"x": {"requests": {"cpu": "two"}}})
    with pytest.raises(ValueError, match="exceeds its limit"):
        check_profiles({"x": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}})
    with pytest.raises(ValueError, match="requests and/or limits"):
        check_profiles({"x": {"cpu": "1"}})
