"""Page cache that makes a bulk download resumable: one Parquet part per fetched page.

Each query gets a folder named by a hash of its URL, holding ``query.json`` (URL, total, page size)
and ``page-000001.parquet`` ... written atomically (temporary file, then rename), so a part on disk is
always complete. A re-run fetches page 1 (to learn the current total) and only the pages that have
no part yet. If the total changed, the platform's data changed: the old parts are discarded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dqm_playground_ds.atomic import atomic_write
from dqm_playground_ds.platform.errors import PlaygroundError
from dqm_playground_ds.platform.pagination import Page
from dqm_playground_ds.platform.records import ID_COLUMN
from dqm_playground_ds.schema import COLUMNS, HISTOGRAM_SCHEMA

log = logging.getLogger(__name__)

PART_SCHEMA = HISTOGRAM_SCHEMA.append(pa.field(ID_COLUMN, pa.int64()))
MANIFEST = "query.json"


class PageCache:
    """The cached pages of one query URL under ``root``."""

    def __init__(self, root: str | os.PathLike[str], url: str, *, refresh: bool = False) -> None:
        self.url = url
        self.dir = Path(root) / hashlib.sha256(url.encode()).hexdigest()[:20]
        self.refresh = refresh
        self.n_pages = 0

    def _part(self, number: int) -> Path:
        return self.dir / f"page-{number:06d}.parquet"

    def cached(self) -> set[int]:
        if not self.dir.is_dir():
            return set()
        return {int(p.stem.split("-")[1]) for p in self.dir.glob("page-*.parquet")}

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def plan(self, first: Page) -> set[int]:
        """Pages already on disk for the result set page 1 describes; reset the cache if it changed."""
        manifest = {"url": self.url, "total": first.total, "per_page": first.per_page}
        try:
            old = json.loads((self.dir / MANIFEST).read_text())
        except (OSError, ValueError):
            old = None
        if self.refresh or (old is not None and old != manifest):
            if old is not None and old != manifest:
                log.warning(
                    "download cache %s: the result set changed (total %s -> %s); fetching again",
                    self.dir,
                    old.get("total"),
                    first.total,
                )
            self.clear()
        self.n_pages = first.n_pages
        atomic_write(self.dir / MANIFEST, lambda tmp: Path(tmp).write_text(json.dumps(manifest)))
        have = {n for n in self.cached() if n <= self.n_pages}
        if have - {1}:
            log.info(
                "download cache %s: %d of %d page(s) already fetched; fetching the rest",
                self.dir,
                len(have - {1}),
                self.n_pages,
            )
        return have

    def write(self, number: int, columns: Mapping[str, list[Any]]) -> None:
        """Store one page's columns (see ``records.records_to_columns``)."""
        table = pa.Table.from_pydict(dict(columns), schema=PART_SCHEMA)
        atomic_write(self._part(number), lambda tmp: pq.write_table(table, tmp))

    def read(self) -> pd.DataFrame:
        """Every page of the query, in page order; all must be present."""
        missing = [n for n in range(1, self.n_pages + 1) if not self._part(n).exists()]
        if missing:
            raise PlaygroundError(f"download cache {self.dir} lacks page(s) {missing[:10]}")
        tables = []
        for number in range(1, self.n_pages + 1):
            try:
                tables.append(pq.read_table(self._part(number), schema=PART_SCHEMA))
            except (OSError, pa.ArrowException) as exc:
                self._part(number).unlink(missing_ok=True)
                raise PlaygroundError(
                    f"download cache {self._part(number)} is unreadable ({exc}); it was removed, "
                    "run the download again"
                ) from exc
        out = pa.concat_tables(tables).to_pandas()
        return out.astype({c: t for c, t in COLUMNS.items() if c != "data"})
