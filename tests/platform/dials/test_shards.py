"""Shard planning: every histogram of the selection in exactly one shard, shards of about a page."""

from __future__ import annotations

import re

import pytest

from dqm_playground_ds.platform.dials.shards import me_alternation, plan_shards


def matches(query, run, ls, me):
    """The DIALS filters of a shard applied to one histogram (as the server applies them)."""
    checks = {
        "run_number": lambda v: run == v,
        "run_number__gte": lambda v: run >= v,
        "run_number__lte": lambda v: run <= v,
        "ls_number__gte": lambda v: ls >= v,
        "ls_number__lte": lambda v: ls <= v,
        "me": lambda v: me == v,
        "me__regex": lambda v: re.search(v, me) is not None,
    }
    return all(v is None or checks[k](v) for k, v in query.items())


def coverage(shards, universe):
    return [sum(matches(q, *h) for q in shards) for h in universe]


@pytest.mark.parametrize(
    ("n_runs", "n_ls", "n_mes", "want"),
    [(10, 100, 10, 20), (10, 200, 10, 40), (10, 20, 10, 5), (1, 1200, 1, 3), (30, 5, 2, 1)],
)
def test_uniform_runs_give_full_pages(n_runs, n_ls, n_mes, want):
    runs = list(range(1, n_runs + 1))
    mes = [f"A/me_{i}" for i in range(n_mes)]
    shards = plan_shards(runs, dict.fromkeys(runs, n_ls), mes, all_mes=True, page_size=500)
    assert len(shards) == want  # whole small runs are grouped, so 10 x 200 rows take 5
    universe = [(r, ls, m) for r in runs for ls in range(1, n_ls + 1) for m in mes]
    assert set(coverage(shards, universe)) == {1}


def test_wrong_counts_unlisted_runs_and_selections_still_cover_exactly_once():
    mes = [f"B/me.{i}+x" for i in range(7)]  # regex metacharacters in the names
    runs = [5, 6, 7, 9, 12]
    listed = [5, 6, 7, 8, 9]  # 8 is not selected, 12 is not listed
    counts = {5: 300, 6: 3, 7: 2, 9: 50}  # run 5 really has LS up to 400, run 6 none at all
    universe = [
        (r, ls, m)
        for r, top in ((5, 400), (6, 0), (7, 2), (8, 9), (9, 50), (12, 30), (13, 4))
        for ls in range(1, top + 1)
        for m in [*mes, "other"]
    ]
    for ls_range in [(None, None), (20, None), (None, 40), (10, 250)]:
        shards = plan_shards(
            runs, counts, mes[:5], all_mes=False, page_size=100, ls_range=ls_range, listed=listed
        )
        lo, hi = (v if v is not None else d for v, d in zip(ls_range, (1, 10**6), strict=True))
        for hist, n in zip(universe, coverage(shards, universe), strict=True):
            run, ls, me = hist
            wanted = run in runs and me in mes[:5] and lo <= ls <= hi
            assert n == int(wanted), (hist, ls_range)
        assert not any("run_number__gte" in q and q["run_number__gte"] <= 8 <= q["run_number__lte"]
                       for q in shards)  # fmt: skip


def test_long_alternations_are_split_and_nothing_is_asked_without_runs_or_mes():
    mes = [f"Very/Long/Monitor/Element/Path/number_{i:04d}" for i in range(200)]
    shards = plan_shards([1], {1: 1}, mes, all_mes=False, page_size=500)
    assert len(shards) > 1 and all(len(q.get("me__regex", "")) <= 2000 for q in shards)
    assert set(coverage(shards, [(1, 1, m) for m in mes])) == {1}
    assert plan_shards([], {}, mes, all_mes=False, page_size=500) == []
    assert plan_shards([1], {1: 9}, [], all_mes=True, page_size=500) == []
    assert re.fullmatch(me_alternation(["a+b", "c"]), "a+b") and not re.search(
        me_alternation(["a+b"]), "aab"
    )
