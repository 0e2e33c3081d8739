"""Shards of a DIALS histogram query, sized from the run listing's LS counts to about one page.

Cursor pages of one query cannot be fetched concurrently, so a download is split into queries
that can. Each costs a request (and the server's per-request work), so the best split gives each
shard about one full page: many small runs are grouped into a run range, a run with more
histograms than a page is split into groups of MEs (one ``me__regex`` alternation each) and, when
one ME alone fills more than a page, into LS ranges. The LS count per run (``ls_count`` of
``run/``, the same number ``lumisection/count/`` gives) and the number of selected MEs give an
estimate of each run's rows (an upper bound when every LS holds every ME). The estimate decides
only how the work is split, never what is fetched: shards cover the selection exactly once
whatever the counts (the last LS range of a run is open-ended, an unlisted run is its own shard),
and a shard with more rows than estimated simply follows its cursor further.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

MAX_REGEX = 2000  # characters of one ME alternation (the query string stays far below URL limits)


def me_alternation(names: Sequence[str]) -> str:
    """A regex matching exactly these ME names (``re.escape`` output is also POSIX-ARE safe)."""
    return "^(" + "|".join(re.escape(n) for n in names) + ")$"


def _me_filters(names: Sequence[str], n_groups: int, all_mes: bool) -> list[dict[str, Any]]:
    """Filters covering ``names`` exactly once in ``n_groups`` balanced groups (more if a group's
    regex would be too long); no filter at all for every ME of the route in one group."""
    if all_mes and n_groups <= 1:
        return [{}]
    n_groups = max(1, min(n_groups, len(names)))
    size = math.ceil(len(names) / n_groups)
    groups = [list(names[i : i + size]) for i in range(0, len(names), size)]
    out: list[dict[str, Any]] = []
    while groups:
        group = groups.pop(0)
        if len(group) == 1:
            out.append({"me": group[0]})
        elif len(me_alternation(group)) > MAX_REGEX:
            half = len(group) // 2
            groups[:0] = [group[:half], group[half:]]
        else:
            out.append({"me__regex": me_alternation(group)})
    return out


def _ls_ranges(
    n_chunks: int, n_ls: int, ls_range: Sequence[int | None]
) -> list[dict[str, int | None]]:
    """``n_chunks`` consecutive LS ranges of about ``n_ls / n_chunks`` LS; the first starts at the
    selection's lower bound and the last ends at its upper one (open-ended when there is none)."""
    lo, hi = ls_range
    if n_chunks <= 1:
        return [{"ls_number__gte": lo, "ls_number__lte": hi}]
    width = math.ceil(n_ls / n_chunks)
    start = max(1, lo) if lo is not None else 1
    out = []
    for k in range(n_chunks):
        out.append(
            {
                "ls_number__gte": lo if k == 0 else start + k * width,
                "ls_number__lte": hi if k == n_chunks - 1 else start + (k + 1) * width - 1,
            }
        )
    return out


def _split(n_ls: int, n_mes: int, page_size: int) -> tuple[int, int]:
    """(ME groups, LS ranges) of a run, fewest shards of at most a page; ties: fewer LS ranges."""
    options = []
    for per_group in range(1, n_mes + 1):
        per_range = max(1, page_size // per_group)
        groups, ranges = math.ceil(n_mes / per_group), math.ceil(n_ls / per_range)
        options.append((groups * ranges, ranges, groups))
    _, ranges, groups = min(options)
    return groups, ranges


def _estimate(ls_count: int | None, ls_range: Sequence[int | None]) -> int | None:
    """LS of a run inside the LS selection, assuming LS numbers 1..ls_count."""
    if ls_count is None:
        return None
    lo, hi = ls_range
    first = max(1, lo) if lo is not None else 1
    last = ls_count if hi is None else min(ls_count, hi)
    return max(0, last - first + 1)


def _run_filter(first: int, last: int) -> dict[str, int]:
    if first == last:
        return {"run_number": first}
    return {"run_number__gte": first, "run_number__lte": last}


def plan_shards(
    runs: Sequence[int],
    ls_counts: Mapping[int, int],
    mes: Sequence[str],
    *,
    all_mes: bool,
    page_size: int,
    ls_range: Sequence[int | None] | None = None,
    listed: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """The queries (filters besides ``dataset``) covering ``runs`` x ``mes`` exactly once.

    ``ls_counts``: LS per run from the run listing (a run missing there is queried on its own);
    ``all_mes``: ``mes`` are every ME of the route, so a shard of all of them needs no ME filter;
    ``listed``: every run the listing has in the selection's span (default ``runs``): runs are
    grouped into a range only when no listed run between them is left out of the selection.
    """
    if not mes or not runs:
        return []
    ls_range = tuple(ls_range) if ls_range is not None else (None, None)
    position = {r: i for i, r in enumerate(sorted(listed if listed is not None else runs))}
    base = {"ls_number__gte": ls_range[0], "ls_number__lte": ls_range[1]}
    shards: list[dict[str, Any]] = []
    group: list[int] = []
    group_rows = 0

    def flush() -> None:
        nonlocal group, group_rows
        if group:
            rf = _run_filter(group[0], group[-1])
            shards.extend({**rf, **base, **mf} for mf in _me_filters(mes, 1, all_mes))
        group, group_rows = [], 0

    for run in sorted(set(runs)):
        n_ls = _estimate(ls_counts.get(run), ls_range)
        if n_ls is None or n_ls * len(mes) > page_size:
            flush()
            groups, ranges = (1, 1) if n_ls is None else _split(n_ls, len(mes), page_size)
            for mf in _me_filters(mes, groups, all_mes):
                for lf in _ls_ranges(ranges, n_ls or 0, ls_range):
                    shards.append({"run_number": run, **lf, **mf})
            continue
        rows = n_ls * len(mes)
        adjacent = bool(group) and position.get(run, -2) == position.get(group[-1], -9) + 1
        if group and (not adjacent or group_rows + rows > page_size):
            flush()
        group.append(run)
        group_rows += rows
    flush()
    return shards
