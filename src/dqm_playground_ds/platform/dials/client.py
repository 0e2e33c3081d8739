"""Client of the DIALS v1 API (``shared/docs/platform-api.md``, section 2), spoken with ``requests``.

Why not the official ``cmsdials`` client: ``cmsdials`` 2.4.1 requires ``urllib3<2``, and installing
it beside this project's dependencies downgrades urllib3 2.x to 1.26.20 (checked with
``pip install --dry-run cmsdials[pandas]``); its filters can only send the misspelt
``ls_numbet__lte``, its retries apply to the production URL only, and its ``Run`` model requires a
field the v1.12 backend does not send. So this client speaks the same API (same routes, filters,
``Workspace`` header, bearer tokens, cursor pages) on top of the platform client's transport:
retries with backoff, 429/``Retry-After``, per-request and overall deadlines, one retry budget per
download, thread-safe sessions.

Parallelism: cursor pages of one query cannot be fetched concurrently (each ``next_token`` comes
from the page before), so a download is **sharded by run x ME**, each shard following its own
cursor, ``max_workers`` at a time. Shards are sized from the run listing's LS counts to about one
page each (``shards.py``): small runs are grouped into run ranges, big ones split into ME groups
(an ``me__regex`` alternation) and LS ranges, since every request costs the server and the
client more than the rows in it. With ``cache_dir`` every page is kept and the cursor saved after
it, so an interrupted download resumes each shard where it stopped.

Example::

    from dqm_playground_ds.platform.dials import DialsClient

    with DialsClient("https://cmsdials-api.web.cern.ch/api/v1/", workspace="tracker") as dials:
        table = dials.download_histograms(
            1, dataset="/ZeroBias/Run2023C-PromptReco-v1/DQMIO", run_range=(367100, 367200),
            me_regex="PixelPhase1/Tracks/PXBarrel/charge_PXLayer_.*",
        )
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import as_completed, wait
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pandas as pd
from tqdm.auto import tqdm

from dqm_playground_ds.atomic import atomic_write
from dqm_playground_ds.platform.client import PlaygroundClient, _Budget
from dqm_playground_ds.platform.dials.pages import (
    FIELDS,
    gc_paused,
    in_table_order,
    page_columns,
    to_frame,
)
from dqm_playground_ds.platform.dials.shards import me_alternation, plan_shards
from dqm_playground_ds.platform.errors import (
    AuthenticationError,
    NotFoundError,
    PlaygroundError,
    ResponseError,
)
from dqm_playground_ds.platform.records import ID_COLUMN
from dqm_playground_ds.schema import validate_histograms

log = logging.getLogger(__name__)

DIALS_TOKEN_ENV = "DIALS_TOKEN"
DIALS_URL = "https://cmsdials-api.web.cern.ch/api/v1/"
MAX_PAGE_SIZE = 500
_RANGE = ("", "__gte", "__lte")
HIST_FILTERS = frozenset(
    {
        "dataset", "dataset__regex", "dataset_id", "me", "me__regex", "me_id", "entries__gte",
        "file_id", "logical_file_name", "logical_file_name__regex", "fields",
        *(f"run_number{o}" for o in _RANGE), *(f"ls_number{o}" for o in _RANGE),
    }
)  # fmt: skip
RUN_FILTERS = frozenset(
    {"dataset", "dataset__regex", "dataset_id", "fields", *(f"run_number{o}" for o in _RANGE)}
)
ROUTES = {
    "th1": HIST_FILTERS,
    "th2": HIST_FILTERS,
    "run": RUN_FILTERS,
    "lumisection": RUN_FILTERS | {f"ls_number{o}" for o in _RANGE},
    "file-index": RUN_FILTERS | {"logical_file_name", "logical_file_name__regex"},
}
_AUTH_HINTS = {
    "authorization_not_found": "no token was sent: export {env}=... (a CERN SSO access token)",
    "token_not_valid": "the token is invalid or expired: get a new CERN SSO access token",
    "access_token_unexpected_error": "the token is for another audience (not DIALS): request "
    "one for the DIALS API",
    "permission_denied": "the token is valid but may not see workspace {ws!r}",
}


class DialsClient(PlaygroundClient):
    """A session with one DIALS server and workspace. Thread-safe; a context manager.

    ``token``: a CERN SSO access token (argument or ``$DIALS_TOKEN``), sent as ``Bearer``;
    ``workspace``: the ``Workspace`` header (``None``: the server picks the token's default);
    ``page_size``: records per cursor page (DIALS caps it at 500). Transport settings
    (``timeout``, ``retries``, ``request_deadline``, ``deadline``, ``download_retries``,
    ``max_workers``...) are the platform client's.
    """

    def __init__(
        self,
        base_url: str = DIALS_URL,
        token: str | None = None,
        *,
        workspace: str | None = "tracker",
        token_env: str = DIALS_TOKEN_ENV,
        page_size: int = MAX_PAGE_SIZE,
        **kwargs: Any,
    ) -> None:
        if not 1 <= int(page_size) <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be within [1, {MAX_PAGE_SIZE}], got {page_size}")
        self.workspace = workspace
        self.page_size = int(page_size)
        super().__init__(base_url, token, token_env=token_env, **kwargs)

    def __repr__(self) -> str:
        token = "***" if self._token else None
        return (
            f"DialsClient(base_url={self.base_url!r}, workspace={self.workspace!r}, token={token})"
        )

    def _default_headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "dqm-playground-ds"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if self.workspace:
            headers["Workspace"] = self.workspace
        return headers

    def _auth_error(
        self, status: int, url: str, detail: Any, resp: Any = None
    ) -> AuthenticationError:
        """DIALS answers every auth failure with 403 and a ``code``: say which one it was."""
        code = detail.get("code") if isinstance(detail, dict) else None
        if code in _AUTH_HINTS:
            why = _AUTH_HINTS[code].format(env=self._token_env, ws=self.workspace)
            text = detail.get("detail", detail)
            return AuthenticationError(
                f"{url}: {status} {text}: {why}", status=status, url=url, detail=detail
            )
        return super()._auth_error(status, url, detail, resp)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return super().request(method, path, **kwargs)
        except NotFoundError as exc:
            if isinstance(exc.detail, str) and exc.detail.startswith("Workspace"):
                raise NotFoundError(
                    f"{exc}: DIALS workspaces are {', '.join(('csc', 'ecal', 'egamma', 'hcal', 'jetmet', 'muon_staging', 'tracker'))} "
                    "(GET auth/workspaces/ lists yours)",
                    status=404, url=exc.url, detail=exc.detail,
                ) from exc  # fmt: skip
            raise

    # -- listings -------------------------------------------------------------------------------
    def _check(self, route: str, filters: Mapping[str, Any]) -> list[tuple[str, str]]:
        known = ROUTES.get(route)
        if known is None:
            raise ValueError(f"unknown DIALS route {route!r}; known: {sorted(ROUTES)}")
        unknown = sorted(set(filters) - known)
        if unknown:
            hints = {n: difflib.get_close_matches(n, sorted(known), n=1) for n in unknown}
            hint = "; ".join(f"{n!r}: did you mean {h[0]!r}?" for n, h in hints.items() if h)
            raise ValueError(
                f"{route}: unknown filter(s) {unknown} (DIALS would ignore them)"
                f"{'; ' + hint if hint else ''}. Known: {sorted(known)}"
            )
        params = []
        for name in sorted(filters):
            value = filters[name]
            if value is None:
                continue
            base = name.partition("__")[0]
            if base in ("run_number", "ls_number", "dataset_id", "me_id", "file_id"):
                try:
                    value = int(value)
                except (TypeError, ValueError):
                    raise ValueError(
                        f"{route}: {name} takes a whole number, got {value!r}"
                    ) from None
            if name.endswith("__regex"):
                try:
                    re.compile(str(value))
                except re.error as exc:
                    raise ValueError(
                        f"{route}: {name} is not a valid regex ({exc}): {value!r}"
                    ) from None
            params.append((name, str(value)))
        return params

    def iter_pages(
        self,
        route: str,
        filters: Mapping[str, Any] | None = None,
        *,
        resume_from: str | None = None,
        budget: _Budget | None = None,
        until: float | None = None,
    ) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        """``(records, next_token)`` page after page, following the cursor; ``resume_from`` is a
        ``next_token`` a previous, interrupted listing reached."""
        params = [*self._check(route, filters or {}), ("page_size", str(self.page_size))]
        token = resume_from
        budget = budget if budget is not None else _Budget(self.download_retries)
        if until is None and self.deadline is not None:
            until = time.monotonic() + self.deadline
        while True:
            query = params + ([("next_token", token)] if token else [])
            body = self.request("GET", f"{route}/", params=query, budget=budget, until=until)
            if not isinstance(body, dict) or not isinstance(body.get("results"), list):
                raise ResponseError(
                    f"{self.url(route + '/')}: expected a cursor page, got {str(body)[:120]!r}"
                )
            nxt = body.get("next")
            token = None
            if nxt:
                # the server builds ``next`` from its own host name: only its cursor is kept
                token = dict(parse_qsl(urlsplit(str(nxt)).query)).get("next_token")
                if not token:
                    raise ResponseError(f"{route}/: 'next' has no next_token: {nxt!r}")
            yield body["results"], token
            if token is None:
                return

    def list_all(
        self,
        route: str,
        filters: Mapping[str, Any] | None = None,
        *,
        resume_from: str | None = None,
    ) -> list[dict[str, Any]]:
        return [
            r for page, _ in self.iter_pages(route, filters, resume_from=resume_from) for r in page
        ]

    def count(self, route: str, filters: Mapping[str, Any] | None = None) -> int:
        """``run``/``lumisection`` counts through their ``count/`` routes (cursor pages have none)."""
        body = self.request("GET", f"{route}/count/", params=self._check(route, filters or {}))
        try:
            return int(body["count"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ResponseError(f"{route}/count/: unexpected answer {body!r}") from exc

    def mes(self) -> list[dict[str, Any]]:
        """The workspace's MEs (``me_id, me, count, dim``); not paginated."""
        body = self.request("GET", "mes/")
        if not isinstance(body, list):
            raise ResponseError(
                f"{self.url('mes/')}: expected a list of MEs, got {str(body)[:120]!r}"
            )
        return body

    def runs(self, **filters: Any) -> list[dict[str, Any]]:
        return self.list_all("run", filters)

    def lumisections(self, **filters: Any) -> list[dict[str, Any]]:
        return self.list_all("lumisection", filters)

    def workspaces(self) -> Any:
        return self.request("GET", "auth/workspaces/")

    # -- sharded histogram download ---------------------------------------------------------------
    def select_mes(
        self, dim: int, mes: Sequence[str] | None = None, me_regex: str | None = None
    ) -> list[str]:
        """ME names of dimension ``dim`` selected by exact names and/or a regex (``re.search``)."""
        known = sorted({m["me"] for m in self.mes() if int(m.get("dim", 0)) == dim})
        if mes is None and me_regex is None:
            return known
        chosen = set()
        if mes is not None:
            missing = [m for m in mes if m not in known]
            if missing:
                hints = {m: difflib.get_close_matches(m, known, n=1) for m in missing}
                raise PlaygroundError(
                    f"{self.base_url} ({self.workspace}): no {dim}D ME named {missing}"
                    + "".join(f"; {m!r}: did you mean {h[0]!r}?" for m, h in hints.items() if h)
                )
            chosen |= set(mes)
        if me_regex is not None:
            try:
                pattern = re.compile(me_regex)
            except re.error as exc:
                raise ValueError(f"me_regex is not a valid regex ({exc}): {me_regex!r}") from None
            hits = {m for m in known if pattern.search(m)}
            if not hits:
                raise PlaygroundError(
                    f"{self.base_url} ({self.workspace}): me_regex {me_regex!r} matches none of "
                    f"the {len(known)} {dim}D MEs (e.g. {known[:3]})"
                )
            chosen |= hits
        return sorted(chosen)

    def select_runs(
        self,
        dataset: str,
        runs: Sequence[int] | None = None,
        run_range: Sequence[int | None] | None = None,
    ) -> list[int]:
        return self.run_counts(dataset, runs, run_range)[0]

    def run_counts(
        self,
        dataset: str,
        runs: Sequence[int] | None = None,
        run_range: Sequence[int | None] | None = None,
    ) -> tuple[list[int], dict[int, int], list[int]]:
        """``(selected runs, LS per listed run, every listed run in the span)`` from one ``run/``
        listing (its records carry ``ls_count``); explicit ``runs`` are kept even if unlisted."""
        first: int | None
        last: int | None
        if runs is not None:
            wanted = sorted({int(r) for r in runs})
            if not wanted:
                return [], {}, []
            first, last = wanted[0], wanted[-1]
        else:
            first, last = run_range if run_range is not None else (None, None)
        found = self.runs(dataset=dataset, run_number__gte=first, run_number__lte=last)
        counts: dict[int, int] = {}
        for r in found:
            try:
                counts[int(r["run_number"])] = int(r["ls_count"])
            except (KeyError, TypeError, ValueError):
                counts.setdefault(int(r["run_number"]), -1)
        listed = sorted(counts)
        counts = {r: c for r, c in counts.items() if c >= 0}  # no count: queried on its own
        return (wanted if runs is not None else listed), counts, listed

    def shards(
        self,
        dim: int,
        *,
        dataset: str,
        runs: Sequence[int] | None = None,
        run_range: Sequence[int | None] | None = None,
        ls_range: Sequence[int | None] | None = None,
        mes: Sequence[str] | None = None,
        me_regex: str | None = None,
    ) -> list[dict[str, Any]]:
        """Queries covering the selection exactly once, each about one page (``shards.py``);
        the MEs and the runs (with their LS counts) are asked at once."""
        mes_future = self._pool().submit(self.select_mes, dim, mes, me_regex)
        selected, counts, listed = self.run_counts(dataset, runs, run_range)
        names = mes_future.result()
        planned = plan_shards(
            selected, counts, names, all_mes=mes is None and me_regex is None,
            page_size=self.page_size, ls_range=ls_range, listed=listed,
        )  # fmt: skip
        return [{"dataset": dataset, **q} for q in planned]

    def _shard(
        self,
        route: str,
        filters: Mapping[str, Any],
        cache_dir: Path | None,
        on_bad: str,
        budget: _Budget,
        until: float | None,
    ) -> list[dict[str, Any]]:
        """One query's pages as columns, following its cursor (resumed from the cache)."""
        dim = 2 if route == "th2" else 1
        # only the fields the table needs (the same request whether sharded or not)
        filters = {**filters, "fields": ",".join(FIELDS[dim])}
        params = self._check(route, filters)
        query_url = f"{self.url(route + '/')}?{urlencode(params)}"
        # provenance: the route and dataset (the same table whether sharded or not)
        source = f"{self.url(route + '/')}?{urlencode([('dataset', filters.get('dataset'))])}"
        parts: list[dict[str, Any]] = []
        token, number = None, 0
        folder = state = None
        if cache_dir is not None:
            key = hashlib.sha256(f"{self.workspace}|{query_url}".encode()).hexdigest()[:20]
            folder = cache_dir / key
            state = folder / "cursor.json"
            if state.exists():
                saved = json.loads(state.read_text())
                number = int(saved["pages"])
                parts = [_read_part(folder / f"page-{n:05d}.parquet") for n in range(1, number + 1)]
                if saved.get("done"):
                    return parts
                token = saved["next_token"]
        for records, nxt in self.iter_pages(
            route, filters, resume_from=token, budget=budget, until=until
        ):
            columns = page_columns(records, dim=dim, source=source, on_bad=on_bad)
            number += 1
            if folder is not None and state is not None:
                _write_part(folder / f"page-{number:05d}.parquet", columns)
                text = json.dumps(
                    {"source": source, "pages": number, "next_token": nxt, "done": nxt is None}
                )
                atomic_write(state, functools.partial(_write_text, text=text))
            parts.append(columns)
        return parts

    def download_histograms(  # type: ignore[override]  # DIALS selects by dataset and ME
        self,
        dim: int = 1,
        *,
        dataset: str,
        runs: Sequence[int] | None = None,
        run_range: Sequence[int | None] | None = None,
        ls_range: Sequence[int | None] | None = None,
        mes: Sequence[str] | None = None,
        me_regex: str | None = None,
        shard: bool = True,
        cache_dir: str | os.PathLike[str] | None = None,
        on_bad_record: str = "raise",
    ) -> pd.DataFrame:
        """Per-LS ``th1``/``th2`` of one dataset as the histogram table.

        ``shard=True`` (default) runs queries of about one page each (``shards.py``),
        ``max_workers`` at once; ``shard=False`` follows one cursor for the whole selection (for
        comparison). An ME selection that matches nothing is an error; a run without histograms
        gives no rows.
        """
        if dim not in (1, 2):
            raise ValueError(f"dim must be 1 or 2, got {dim!r}")
        if not dataset:
            raise ValueError(
                "dataset is required: DIALS serves the same run/LS/ME for several datasets"
            )
        if me_regex is not None:
            try:
                re.compile(me_regex)
            except re.error as exc:
                raise ValueError(f"me_regex is not a valid regex ({exc}): {me_regex!r}") from None
        started = time.perf_counter()
        plan = self.shards if shard else self._one_cursor
        queries = plan(dim, dataset=dataset, runs=runs, run_range=run_range,
                       ls_range=ls_range, mes=mes, me_regex=me_regex)  # fmt: skip
        cache = Path(cache_dir) if cache_dir is not None else None
        with gc_paused():  # the same for both methods: see pages.py
            parts = self._run_queries(f"th{dim}", queries, cache, on_bad_record, concurrent=shard)
            table = self._assemble(parts)
        log.info(
            "DIALS th%d: %d histograms from %d quer(ies) in %.1f s",
            dim, len(table), len(queries), time.perf_counter() - started,
        )  # fmt: skip
        return validate_histograms(table, name=f"{self.base_url}th{dim}/")

    def _one_cursor(
        self,
        dim: int,
        *,
        dataset: str,
        runs: Sequence[int] | None,
        run_range: Sequence[int | None] | None,
        ls_range: Sequence[int | None] | None,
        mes: Sequence[str] | None,
        me_regex: str | None,
    ) -> list[dict[str, Any]]:
        """The whole selection as one query (one per explicit run: DIALS has no run ``__in``)."""
        names = self.select_mes(dim, mes, me_regex) if (mes or me_regex) else None
        first, last = run_range if run_range is not None else (None, None)
        lo, hi = ls_range if ls_range is not None else (None, None)
        query: dict[str, Any] = {
            "dataset": dataset, "run_number__gte": first, "run_number__lte": last,
            "ls_number__gte": lo, "ls_number__lte": hi,
        }  # fmt: skip
        if names is not None:
            query["me__regex"] = me_alternation(names)
        if runs is not None:
            return [{**query, "run_number": int(r)} for r in sorted(set(runs))]
        return [query]

    def _run_queries(
        self,
        route: str,
        queries: Sequence[Mapping[str, Any]],
        cache: Path | None,
        on_bad: str,
        *,
        concurrent: bool,
    ) -> list[dict[str, Any]]:
        """Every query's pages' columns, in the order of ``queries``; concurrent ones ``max_workers`` at
        once, sharing one retry budget and the overall deadline."""
        budget = _Budget(self.download_retries)
        until = time.monotonic() + self.deadline if self.deadline is not None else None
        bar = tqdm(total=len(queries), desc=f"DIALS {route}", unit="query",
                   disable=not self.progress, leave=False)  # fmt: skip
        results: dict[int, list[dict[str, Any]]] = {}
        try:
            if concurrent and len(queries) > 1:
                pool = self._pool()
                futures = {
                    pool.submit(self._shard, route, q, cache, on_bad, budget, until): i
                    for i, q in enumerate(queries)
                }
                try:
                    for fut in as_completed(futures):
                        results[futures[fut]] = fut.result()
                        bar.update(1)
                finally:  # on a failure, nothing may still write to the cache once we return
                    for fut in futures:
                        fut.cancel()
                    wait(futures)
            else:
                for i, q in enumerate(queries):
                    results[i] = self._shard(route, q, cache, on_bad, budget, until)
                    bar.update(1)
        finally:
            bar.close()
        return [part for i in range(len(queries)) for part in results[i]]

    def _assemble(self, parts: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        """One table in the project reader's order; a histogram served twice is an error."""
        table, dup = in_table_order(to_frame(parts).drop(columns=[ID_COLUMN]))
        if dup is not None:
            row = table.iloc[dup]
            raise ResponseError(
                f"{self.base_url}: run {row['run']} LS {row['lumi']} ME {row['me']!r} was served "
                "twice (a cursor moved while the data changed?); run it again"
            )
        return table


def _write_text(path: str, text: str) -> None:
    Path(path).write_text(text)


def _write_part(path: Path, columns: Mapping[str, Any]) -> None:
    frame = to_frame([columns])
    frame["data"] = [list(map(float, v)) for v in frame["data"]]
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False), suffix=".parquet")


def _read_part(path: Path) -> dict[str, list[Any]]:
    import numpy as np

    frame = pd.read_parquet(path)
    out = {c: frame[c].tolist() for c in frame.columns}
    out["data"] = [np.asarray(v, dtype=np.float64) for v in frame["data"]]
    return out
