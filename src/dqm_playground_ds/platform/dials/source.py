"""DIALS as a :class:`~dqm_playground_ds.sources.HistogramSource` (``kind: dials``).

Items are queries written as URLs (``.../th1/?dataset=...&run_number__gte=...#workspace=tracker``),
one per dimension and run chunk (``runs_per_item``), so the extraction's file index shows what was
asked and an interrupted extraction redoes only the unfinished chunks. Inside an item the client
shards by run x ME and fetches the shards concurrently, each following its own cursor; with
``cache_dir`` an interrupted item resumes page by page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pandas as pd

from dqm_playground_ds.platform.dials.client import DialsClient
from dqm_playground_ds.platform.errors import PlaygroundError
from dqm_playground_ds.readers.dqmio.selection import MESpec, as_patterns, match_names
from dqm_playground_ds.schema import empty_histograms
from dqm_playground_ds.sources import SourceError

log = logging.getLogger(__name__)


@dataclass
class DialsSource:
    """Per-LS histograms of one dataset on DIALS, selected by runs, LS range and MEs."""

    client: DialsClient
    dataset: str
    dims: tuple[int, ...] = (1, 2)
    runs: list[int] | None = None
    run_range: tuple[int | None, int | None] | None = None
    ls_range: tuple[int | None, int | None] | None = None
    mes: list[str] | None = None
    me_regex: str | None = None
    runs_per_item: int | None = None
    cache_dir: str | None = None
    on_bad_record: str = "raise"
    partitions_dir: str | None = None
    kind: str = "dials"
    _memo: tuple[str, pd.DataFrame] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.dataset:
            raise ValueError(
                "dataset is required (e.g. /ZeroBias/Run2018A-12Nov2019_UL2018-v2/DQMIO)"
            )
        self.dims = tuple(int(d) for d in self.dims)
        if not self.dims or any(d not in (1, 2) for d in self.dims):
            raise ValueError(f"dims must be a non-empty subset of [1, 2], got {list(self.dims)}")
        if self.runs is not None and self.run_range is not None:
            raise ValueError("give runs or run_range, not both")
        if self.runs_per_item is not None and int(self.runs_per_item) < 1:
            raise ValueError(f"runs_per_item must be >= 1, got {self.runs_per_item}")
        if self.on_bad_record not in ("raise", "skip"):
            raise ValueError(f"on_bad_record must be 'raise' or 'skip', got {self.on_bad_record!r}")

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_memo": None}

    @property
    def path(self) -> str:
        return self.client.base_url

    def _chunks(self) -> list[dict[str, Any]]:
        if self.runs is not None:
            runs = sorted({int(r) for r in self.runs})
            size = self.runs_per_item or len(runs) or 1
            return [{"runs": runs[i : i + size]} for i in range(0, len(runs), size)] or [
                {"runs": []}
            ]
        if self.runs_per_item and self.run_range is not None:
            first, last = self.run_range
            if first is None or last is None:
                raise ValueError("runs_per_item needs a closed run_range [first, last]")
            size = int(self.runs_per_item)
            return [
                {"run_range": (s, min(s + size - 1, int(last)))}
                for s in range(int(first), int(last) + 1, size)
            ]
        return [{"run_range": self.run_range}]

    def items(self) -> list[str]:
        out = []
        for dim in self.dims:
            for chunk in self._chunks():
                query: list[tuple[str, Any]] = [("dataset", self.dataset)]
                if "runs" in chunk:
                    query.append(("run_number__in", ",".join(map(str, chunk["runs"]))))
                else:
                    first, last = chunk["run_range"] or (None, None)
                    query += [("run_number__gte", first), ("run_number__lte", last)]
                lo, hi = self.ls_range or (None, None)
                query += [("ls_number__gte", lo), ("ls_number__lte", hi)]
                query += [("me", m) for m in self.mes or []]
                query.append(("me__regex", self.me_regex))
                text = urlencode([(k, v) for k, v in query if v is not None])
                out.append(
                    f"{self.client.url(f'th{dim}/')}?{text}#workspace={self.client.workspace}"
                )
        return out

    def _download(self, item: str) -> pd.DataFrame:
        if self._memo is not None and self._memo[0] == item:
            return self._memo[1]
        parts = urlsplit(item)
        dim = 2 if parts.path.rstrip("/").endswith("th2") else 1
        q = parse_qsl(parts.query)
        get = dict(q)
        runs = (
            [int(r) for r in get["run_number__in"].split(",") if r]
            if "run_number__in" in get
            else None
        )
        as_int = lambda k: int(get[k]) if k in get else None  # noqa: E731
        run_range = (
            None if runs is not None else (as_int("run_number__gte"), as_int("run_number__lte"))
        )
        mes = [v for k, v in q if k == "me"] or None
        try:
            if not self._has_mes(dim, mes, get.get("me__regex")):
                table = empty_histograms()
            else:
                table = self.client.download_histograms(
                    dim, dataset=get["dataset"], runs=runs, run_range=run_range,
                    ls_range=(as_int("ls_number__gte"), as_int("ls_number__lte")),
                    mes=mes, me_regex=get.get("me__regex"), cache_dir=self.cache_dir,
                    on_bad_record=self.on_bad_record,
                )  # fmt: skip
        except (PlaygroundError, ValueError) as exc:
            raise SourceError(f"{item}: {exc}") from exc
        self._memo = (item, table)
        return table

    def _has_mes(self, dim: int, mes: list[str] | None, regex: str | None) -> bool:
        """Whether this dimension has MEs in the selection; none in any dimension is an error."""
        if mes is None and regex is None:
            return True
        found = {}
        for d in (1, 2):
            try:
                found[d] = bool(self.client.select_mes(d, mes, regex))
            except PlaygroundError as exc:
                found[d], error = False, exc
        if not any(found.values()):
            raise error
        if not found[dim]:
            log.info("DIALS: no %dD ME in the selection; the th%d item is empty", dim, dim)
        return found[dim]

    def describe(self, item: str) -> dict[str, Any]:
        table = self._download(item)
        return {
            "path": item,
            "size": None,
            "runs": sorted(int(r) for r in table["run"].unique()),
            "n_lumis": len(table[["run", "lumi"]].drop_duplicates()),
            "n_mes": int(table["me"].nunique()),
            "n_histograms": len(table),
        }

    def read(
        self, item: str, me: MESpec, include_run_level: bool, missing: str = "raise"
    ) -> pd.DataFrame:
        if include_run_level:
            log.warning("DIALS serves per-LS histograms only: no run-level histograms read")
        table = self._download(item)
        patterns = as_patterns(me)
        if patterns is None or table.empty:
            return table
        mask, _ = match_names(table["me"].astype(str).tolist(), patterns)
        return table[mask].reset_index(drop=True)
