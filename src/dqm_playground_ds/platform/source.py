"""The platform as a :class:`~dqm_playground_ds.sources.HistogramSource` for the extraction pipeline.

Items are API queries, written as the URL of the query (one per ME title and run chunk, or one per
dimension when no titles are given), so the extraction's file index shows exactly what was asked.
The playground serves 1D and 2D histograms from two endpoints; a title is looked up in the 1D one
first and, when that endpoint does not know it (400), in the 2D one.

``describe`` downloads the item (through the resumable page cache when ``cache_dir`` is set) and
``read`` returns the same table, so one item costs one download. The ME selection handed to
``read`` filters the downloaded rows (exact names or regular expressions); which titles are fetched
is the source's own configuration. Run-level histograms are not extracted: the platform keeps only
their statistics, not their bins.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pandas as pd

from dqm_playground_ds.platform.client import PlaygroundClient, histogram_filters
from dqm_playground_ds.platform.endpoints import encode_filters, histogram_endpoint
from dqm_playground_ds.platform.errors import BadRequestError, PlaygroundError
from dqm_playground_ds.readers.dqmio.selection import MESpec, as_patterns, match_names
from dqm_playground_ds.schema import empty_histograms
from dqm_playground_ds.sources import SourceError

log = logging.getLogger(__name__)


def _chunks(values: Sequence[int], size: int) -> list[list[int]]:
    return [list(values[i : i + size]) for i in range(0, len(values), size)]


def _unknown_title(exc: BadRequestError) -> bool:
    return isinstance(exc.detail, dict) and "title" in exc.detail


@dataclass
class PlaygroundAPI:
    """Histograms selected on the platform by title, runs, LS range and data file.

    ``runs_per_item`` splits the run selection (a list or an inclusive range) into items of that
    many runs, so a long selection is extracted, and resumed, piece by piece.
    """

    client: PlaygroundClient
    titles: list[str] | None = None
    dims: tuple[int, ...] = (1, 2)
    runs: list[int] | None = None
    run_range: tuple[int | None, int | None] | None = None
    ls_range: tuple[int | None, int | None] | None = None
    data_file: str | None = None
    source_data_file: int | None = None
    runs_per_item: int | None = None
    cache_dir: str | None = None
    on_bad_record: str = "raise"
    partitions_dir: str | None = None
    kind: str = "playground_api"
    _memo: tuple[str, str, pd.DataFrame | None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.dims = tuple(int(d) for d in self.dims)
        if not self.dims or any(d not in (1, 2) for d in self.dims):
            raise ValueError(f"dims must be a non-empty subset of [1, 2], got {list(self.dims)}")
        if self.runs is not None and self.run_range is not None:
            raise ValueError("give runs or run_range, not both")
        if self.titles is not None:
            self.titles = as_patterns(self.titles)
        if self.runs_per_item is not None and self.runs_per_item < 1:
            raise ValueError(f"runs_per_item must be >= 1, got {self.runs_per_item}")

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_memo": None}

    @property
    def path(self) -> str:
        return self.client.base_url

    def _run_selections(self) -> list[dict[str, Any]]:
        size = self.runs_per_item
        if self.runs is not None:
            runs = sorted({int(r) for r in self.runs})
            return [{"runs": c} for c in _chunks(runs, size)] if size else [{"runs": runs}]
        if self.run_range is not None and size:
            first, last = self.run_range
            if first is None or last is None:
                raise ValueError("runs_per_item needs a closed run_range [first, last]")
            starts = range(int(first), int(last) + 1, size)
            return [{"run_range": (s, min(s + size - 1, int(last)))} for s in starts]
        return [{"run_range": self.run_range}]

    def _url(self, dim: int, title: str | None, runs: dict[str, Any]) -> str:
        filters = histogram_filters(
            titles=[title] if title is not None else None,
            ls_range=self.ls_range,
            data_file=self.data_file,
            source_data_file=self.source_data_file,
            **runs,
        )
        ep = histogram_endpoint(dim)
        query = urlencode(encode_filters(ep, filters))
        return self.client.url(ep.path) + (f"?{query}" if query else "")

    def items(self) -> list[str]:
        out: list[str] = []
        titles: list[str | None] = [*self.titles] if self.titles else [None]
        for title in titles:
            for runs in self._run_selections():
                dims = self.dims if title is None else self.dims[:1]
                out.extend(self._url(dim, title, runs) for dim in dims)
        return out

    def _download(self, item: str) -> tuple[str, pd.DataFrame | None]:
        """``(URL used, table)``; the table is ``None`` when no endpoint knows the title."""
        if self._memo is not None and self._memo[0] == item:
            return self._memo[1], self._memo[2]
        parts = urlsplit(item)
        dim = 2 if parts.path.rstrip("/").endswith("_2d") else 1
        params = parse_qsl(parts.query)
        filters: dict[str, Any] = {}
        for key, value in params:
            if key == "title":
                filters.setdefault("title", []).append(value)
            else:
                filters[key] = value
        tries = [dim] + [d for d in self.dims if d != dim] if "title" in filters else [dim]
        url, table = item, None
        for d in tries:
            url = urlunsplit(parts._replace(path=histogram_endpoint(d).path))
            try:
                table = self.client.download_histograms(
                    d, cache_dir=self.cache_dir, on_bad_record=self.on_bad_record, **filters
                )
                break
            except BadRequestError as exc:
                if not _unknown_title(exc):
                    raise SourceError(f"{url}: {exc}") from exc
            except (PlaygroundError, ValueError) as exc:
                raise SourceError(f"{url}: {exc}") from exc
        self._memo = (item, url, table)
        return url, table

    def describe(self, item: str) -> dict[str, Any]:
        url, table = self._download(item)
        info: dict[str, Any] = {"path": url, "size": None}
        if table is None:
            return {**info, "n_histograms": 0}
        return {
            **info,
            "runs": sorted(int(r) for r in table["run"].unique()),
            "n_lumis": len(table[["run", "lumi"]].drop_duplicates()),
            "n_mes": int(table["me"].nunique()),
            "n_histograms": len(table),
        }

    def read(
        self, item: str, me: MESpec, include_run_level: bool, missing: str = "raise"
    ) -> pd.DataFrame:
        if include_run_level:
            log.warning("the platform keeps run-level histograms as statistics only: none read")
        url, table = self._download(item)
        if table is None:
            titles = [v for k, v in parse_qsl(urlsplit(item).query) if k == "title"]
            dims = ", ".join(f"{d}D" for d in self.dims)
            msg = f"{item}: no {dims} histograms titled {titles} on {self.client.base_url}"
            if missing == "raise":
                raise SourceError(msg)
            log.warning("%s; skipped", msg)
            return empty_histograms()
        if table.empty:
            log.warning("%s matched no histograms", url)
        patterns = as_patterns(me)
        if patterns is None or table.empty:
            return table
        mask, _ = match_names(table["me"].astype(str).tolist(), patterns)
        return table[mask].reset_index(drop=True)
