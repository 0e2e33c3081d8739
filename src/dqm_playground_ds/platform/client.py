"""Client of the ML4DQM playground REST API (contract: ``shared/docs/platform-api.md``).

What it adds to plain ``requests`` calls, because that is what the platform's users ask for:

- token auth from an argument or ``DQM_PLAYGROUND_TOKEN``; the token is never logged or repeated in
  an error (``repr`` shows ``***``);
- every list endpoint with its filters checked (the server ignores unknown filters silently);
- pagination as the server really does it, with every page after the first fetched concurrently;
- retries with exponential backoff on connection errors, timeouts, broken bodies, malformed JSON,
  429 (honouring ``Retry-After``, which pauses every worker) and 5xx; immediate errors on 400/401/403;
- histograms as the project's histogram table, optionally through a page cache that makes an
  interrupted bulk download resume where it stopped;
- a progress bar per listing.

Example::

    from dqm_playground_ds.platform import PlaygroundClient

    with PlaygroundClient("http://127.0.0.1:8000") as client:  # token from DQM_PLAYGROUND_TOKEN
        table = client.download_histograms(
            1, titles=["charge_PXLayer_1"], run_range=(315257, 315420), cache_dir="cache/"
        )
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin, urlsplit

import pandas as pd
import requests
from requests.adapters import HTTPAdapter
from tqdm.auto import tqdm

from dqm_playground_ds.platform.cache import PageCache
from dqm_playground_ds.platform.endpoints import (
    ENDPOINTS,
    Endpoint,
    encode_filters,
    histogram_endpoint,
)
from dqm_playground_ds.platform.errors import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PaginationError,
    PlaygroundError,
    PlaygroundHTTPError,
    ResponseError,
    RetryError,
)
from dqm_playground_ds.platform.pagination import (
    Page,
    check_page,
    check_unique_ids,
    page_number,
    parse_page,
    with_page,
    without_page,
)
from dqm_playground_ds.platform.records import ID_COLUMN, columns_to_frame, records_to_columns
from dqm_playground_ds.schema import validate_histograms

if TYPE_CHECKING:
    from dqm_playground_ds.platform.upload import UploadReport

log = logging.getLogger(__name__)

TOKEN_ENV = "DQM_PLAYGROUND_TOKEN"
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def _is_loopback(host: str | None) -> bool:
    if host in (None, "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback  # type: ignore[arg-type]
    except ValueError:
        return False


def histogram_filters(
    *,
    titles: str | Sequence[str] | None = None,
    runs: Sequence[int] | None = None,
    run_range: Sequence[int] | None = None,
    ls_range: Sequence[int] | None = None,
    data_file: str | None = None,
    source_data_file: int | None = None,
    entries_min: float | None = None,
) -> dict[str, Any]:
    """Friendly selection -> the LS-histogram endpoints' filter names.

    ``run_range``/``ls_range`` are inclusive ``[first, last]`` (either may be ``None``); ``data_file``
    selects histograms parsed from files whose path contains it.
    """
    out: dict[str, Any] = {}
    if titles is not None:
        out["title"] = [titles] if isinstance(titles, str) else list(titles)
    if runs is not None:
        out["lumisection__run__run_number__in"] = [int(r) for r in runs]
    for name, rng in (
        ("lumisection__run__run_number", run_range),
        ("lumisection__ls_number", ls_range),
    ):
        if rng is not None:
            first, last = rng
            if first is not None:
                out[f"{name}__gte"] = int(first)
            if last is not None:
                out[f"{name}__lte"] = int(last)
    if data_file is not None:
        out["source_data_file__filepath__contains"] = data_file
    if source_data_file is not None:
        out["source_data_file"] = int(source_data_file)
    if entries_min is not None:
        out["entries__gte"] = entries_min
    return out


def _detail(resp: requests.Response) -> Any:
    try:
        body = json.loads(resp.content)
    except ValueError:
        return resp.text[:200]
    if isinstance(body, dict) and set(body) == {"detail"}:
        return body["detail"]
    return body


class PlaygroundClient:
    """A session with one playground server. Thread-safe; use as a context manager or ``close()``.

    ``retries`` counts retries after the first attempt; ``backoff`` is the first delay in seconds,
    doubled per retry up to ``max_backoff`` (with jitter); a ``Retry-After`` is honoured up to
    ``max_retry_after`` seconds. ``max_workers`` pages are fetched at once.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        token_env: str = TOKEN_ENV,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 120.0,
        max_workers: int = 8,
        concurrent: bool = True,
        progress: bool = True,
        verify: bool | str | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/") + "/"
        self._token = token or os.environ.get(token_env) or None
        self._token_env = token_env
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.max_retry_after = float(max_retry_after)
        self.max_workers = max(1, int(max_workers))
        self.concurrent = concurrent
        self.progress = progress
        self.verify = (
            verify if verify is not None else (os.environ.get("REQUESTS_CA_BUNDLE") or True)
        )
        self.stats = {"requests": 0, "retries": 0}
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            log.warning("%s is plain http: the token would cross the network unencrypted", base_url)
        self._init_runtime()

    # -- plumbing -----------------------------------------------------------------------------
    def _init_runtime(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sessions: list[requests.Session] = []
        self._executor: ThreadPoolExecutor | None = None
        self._pause_until = 0.0

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (extraction may run in worker processes): sessions and threads are rebuilt."""
        state = self.__dict__.copy()
        for key in ("_local", "_lock", "_sessions", "_executor", "_pause_until"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    def __repr__(self) -> str:
        token = "***" if self._token else None
        return f"PlaygroundClient(base_url={self.base_url!r}, token={token})"

    def __enter__(self) -> PlaygroundClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
            sessions, self._sessions = self._sessions, []
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        for session in sessions:
            session.close()

    @property
    def has_token(self) -> bool:
        return self._token is not None

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            # no .netrc (it would replace the Authorization header) and no implicit proxies
            session.trust_env = False
            if not _is_loopback(urlsplit(self.base_url).hostname):
                session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
            session.headers["Accept"] = "application/json"
            session.headers["User-Agent"] = "dqm-playground-ds"
            if self._token:
                session.headers["Authorization"] = f"Token {self._token}"
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=2, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    self.max_workers, thread_name_prefix="playground"
                )
            return self._executor

    def url(self, path: str) -> str:
        """Absolute URL of a path on the server (``next`` links are relative to the host)."""
        if path.startswith(("http://", "https://")):
            return path
        return urljoin(self.base_url, path)

    def _pause(self, seconds: float) -> None:
        with self._lock:
            self._pause_until = max(self._pause_until, time.monotonic() + seconds)

    def _wait_pause(self) -> None:
        while True:
            with self._lock:
                remaining = self._pause_until - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(remaining)

    def _retry_after(self, resp: requests.Response) -> float | None:
        value = resp.headers.get("Retry-After")
        if value is None:
            return None
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            seconds = (when - datetime.now(UTC)).total_seconds()
        return min(max(seconds, 0.0), self.max_retry_after)

    def _backoff_delay(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)

    def _auth_error(self, status: int, url: str, detail: Any) -> AuthenticationError:
        if self._token is None:
            why = f"no token was sent: export {self._token_env}=... or pass credentials"
        else:
            why = "the token was refused (expired, revoked or for another host?)"
        return AuthenticationError(
            f"{url}: {status} {detail!s}: {why}", status=status, url=url, detail=detail
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] | Mapping[str, Any] | None = None,
        json_body: Any = None,
        idempotent: bool | None = None,
        headers: Mapping[str, str] | None = None,
        expect_json: bool = True,
    ) -> Any:
        """One API call with retries; returns the decoded JSON body (``None`` when empty).

        Non-idempotent calls are retried only when the server certainly did not act on them
        (429/503, or the connection could not be opened).
        """
        method = method.upper()
        url = self.url(path)
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params, doseq=True)
        idempotent = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        attempt = 0
        while True:
            self._wait_pause()
            delay: float | None = None
            error: BaseException | None = None
            malformed = False
            with self._lock:
                self.stats["requests"] += 1
            try:
                resp = self._session().request(
                    method,
                    url,
                    json=json_body,
                    headers=headers,
                    timeout=self.timeout,
                    verify=self.verify,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                not_sent = isinstance(exc, requests.ConnectTimeout) or (
                    "NewConnectionError" in repr(exc) or "Connection refused" in repr(exc)
                )
                if not (idempotent or not_sent):
                    raise PlaygroundError(
                        f"{method} {url}: connection lost ({type(exc).__name__}); the server may "
                        "or may not have acted on it, so it is not repeated"
                    ) from exc
                error, reason = exc, f"{type(exc).__name__}: {exc}"
            except requests.RequestException as exc:  # broken/truncated body, decoding errors
                if not idempotent:
                    raise PlaygroundError(f"{method} {url}: response broken: {exc}") from exc
                error, reason = exc, f"broken response ({type(exc).__name__}: {exc})"
            else:
                status = resp.status_code
                if status == 429 or status >= 500:
                    detail = _detail(resp)
                    if not idempotent and status not in (429, 503):
                        raise PlaygroundHTTPError(
                            f"{method} {url}: {status} {detail}",
                            status=status,
                            url=url,
                            detail=detail,
                        )
                    reason = f"HTTP {status} {str(detail)[:120]}"
                    if status in (429, 503):
                        delay = self._retry_after(resp)
                        if delay is not None:
                            self._pause(delay)
                elif status in (401, 403):
                    raise self._auth_error(status, url, _detail(resp))
                elif status == 400:
                    detail = _detail(resp)
                    raise BadRequestError(
                        f"{method} {url}: 400 Bad Request: {detail}",
                        status=400,
                        url=url,
                        detail=detail,
                    )
                elif status == 404:
                    detail = _detail(resp)
                    raise NotFoundError(
                        f"{method} {url}: 404 {detail}", status=404, url=url, detail=detail
                    )
                elif status >= 400:
                    detail = _detail(resp)
                    raise PlaygroundHTTPError(
                        f"{method} {url}: {status} {detail}", status=status, url=url, detail=detail
                    )
                elif not resp.content or not expect_json:
                    return None
                else:
                    try:
                        return json.loads(resp.content)
                    except ValueError as exc:
                        error, malformed = exc, True
                        reason = f"malformed JSON ({exc}; starts {resp.content[:60]!r})"
            attempt += 1
            if attempt > self.retries:
                cls = ResponseError if malformed else RetryError
                raise cls(
                    f"{method} {url}: {reason}; gave up after {attempt} attempt(s)"
                ) from error
            wait = delay if delay is not None else self._backoff_delay(attempt)
            with self._lock:
                self.stats["retries"] += 1
            log.info(
                "%s %s: %s; retry %d/%d in %.2f s", method, url, reason, attempt, self.retries, wait
            )
            time.sleep(wait)

    # -- pagination ---------------------------------------------------------------------------
    def _get_page(self, url: str, number: int, first: Page | None) -> Page:
        page_url = with_page(url, number)
        try:
            body = self.request("GET", page_url)
        except NotFoundError as exc:
            if first is None:
                raise
            raise PaginationError(
                f"{page_url}: page {number} of {first.n_pages} vanished ({exc.detail}): the "
                "result set shrank during the download; run it again"
            ) from exc
        page = parse_page(body, url=page_url, number=number)
        if first is not None:
            check_page(page, first, page_url)
        return page

    def fetch_pages(
        self,
        path: str,
        params: Sequence[tuple[str, str]] | None = None,
        *,
        concurrent: bool | None = None,
        plan: Callable[[Page], set[int]] | None = None,
        on_page: Callable[[Page], None] | None = None,
        desc: str | None = None,
    ) -> Iterator[Page]:
        """Every page of a listing, page 1 first, the others in completion order.

        Concurrent mode computes the page count from page 1's ``total`` and fetches pages 2..N with
        ``max_workers`` threads; sequential mode follows ``next`` links. ``plan(page1)`` returns
        page numbers to skip (already cached); ``on_page`` runs in the worker for each fetched page.
        """
        url = self.url(path)
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params, doseq=True)
        concurrent = self.concurrent if concurrent is None else concurrent
        first = self._get_page(url, 1, None)
        skip = plan(first) if plan is not None else set()
        if on_page is not None:
            on_page(first)
        if not concurrent:
            skip = set()  # following next links visits every page anyway
        todo = [n for n in range(2, first.n_pages + 1) if n not in skip]
        bar = tqdm(
            total=first.n_pages,
            initial=first.n_pages - len(todo),
            desc=desc or urlsplit(url).path.strip("/").rsplit("/", 1)[-1],
            unit="page",
            disable=not self.progress,
            leave=False,
        )
        try:
            yield first
            if concurrent:
                yield from self._concurrent_pages(url, todo, first, on_page, bar)
            else:
                yield from self._sequential_pages(first, on_page, bar)
        finally:
            bar.close()

    def _concurrent_pages(
        self,
        url: str,
        todo: list[int],
        first: Page,
        on_page: Callable[[Page], None] | None,
        bar: Any,
    ) -> Iterator[Page]:
        def task(number: int) -> Page:
            page = self._get_page(url, number, first)
            if on_page is not None:
                on_page(page)
            return page

        pool = self._pool()
        futures: list[Future[Page]] = [pool.submit(task, n) for n in todo]
        try:
            for fut in as_completed(futures):
                page = fut.result()
                bar.update(1)
                yield page
        finally:
            for fut in futures:
                fut.cancel()

    def _sequential_pages(
        self, first: Page, on_page: Callable[[Page], None] | None, bar: Any
    ) -> Iterator[Page]:
        """Follow ``next`` links (every page is fetched, cached or not)."""
        page = first
        while page.next:
            next_url = self.url(page.next)
            number = page_number(next_url)
            if number != page.number + 1:
                raise PaginationError(f"page {page.number}'s next link {page.next!r} skips pages")
            page = self._get_page(next_url, number, first)
            if on_page is not None:
                on_page(page)
            bar.update(1)
            yield page

    def list(
        self, endpoint: str, *, concurrent: bool | None = None, **filters: Any
    ) -> list[dict[str, Any]]:
        """Every record of a list endpoint matching ``filters``, in the server's order."""
        ep = self._endpoint(endpoint)
        pages = sorted(
            self.fetch_pages(ep.path, encode_filters(ep, filters), concurrent=concurrent),
            key=lambda p: p.number,
        )
        check_unique_ids(pages, self.url(ep.path))
        return [record for page in pages for record in page.results]

    def _endpoint(self, name: str) -> Endpoint:
        try:
            return ENDPOINTS[name.strip("/")]
        except KeyError:
            raise ValueError(f"unknown endpoint {name!r}; known: {sorted(ENDPOINTS)}") from None

    def get(self, endpoint: str, key: int | str) -> dict[str, Any]:
        """One object by its key (``run_number`` for runs, ``id`` elsewhere)."""
        return self.request("GET", f"{self._endpoint(endpoint).path}{key}/")

    # -- named listings -----------------------------------------------------------------------
    def runs(self, **filters: Any) -> list[dict[str, Any]]:
        return self.list("runs", **filters)

    def lumisections(self, **filters: Any) -> list[dict[str, Any]]:
        return self.list("lumisections", **filters)

    def run_histograms(self, **filters: Any) -> list[dict[str, Any]]:
        return self.list("run_histograms", **filters)

    def lumisection_histograms(self, dim: int = 1, **filters: Any) -> list[dict[str, Any]]:
        """Raw 1D/2D LS-histogram records (see :meth:`download_histograms` for the table)."""
        return self.list(histogram_endpoint(dim).name, **filters)

    def histogram_data_files(self, **filters: Any) -> list[dict[str, Any]]:
        """Data files; the server caches these GETs for 60 s, so progress may look stale."""
        return self.list("histogram_data_files", **filters)

    def run_certifications(self, **filters: Any) -> list[dict[str, Any]]:
        return self.list("run_certifications", **filters)

    def lumisection_certifications(self, **filters: Any) -> list[dict[str, Any]]:
        return self.list("lumisection_certifications", **filters)

    def tasks(self) -> list[dict[str, Any]]:
        return self.list("tasks")

    def strategies(self) -> list[dict[str, Any]]:
        return self.list("strategies")

    def predictions(self) -> list[dict[str, Any]]:
        return self.list("predictions")

    # -- data files ---------------------------------------------------------------------------
    def start_parsing(
        self, file_id: int, *, granularity: str, data_dimensionality: int, file_format: str
    ) -> Any:
        """Ask the server to parse a data file into histograms (202; 400 if already parsed)."""
        body = {
            "granularity": granularity,
            "data_dimensionality": int(data_dimensionality),
            "file_format": file_format,
        }
        path = f"{ENDPOINTS['histogram_data_files'].path}{int(file_id)}/start_parsing/"
        return self.request("POST", path, json_body=body)

    def discover(self) -> Any:
        """Ask the server to look for new data files (admins only)."""
        return self.request("GET", f"{ENDPOINTS['histogram_data_files'].path}discover/")

    # -- tasks and strategies -----------------------------------------------------------------
    def task(self, task: int | str) -> dict[str, Any]:
        """A task by id, or by name (which must be unique)."""
        if isinstance(task, int) or (isinstance(task, str) and task.isdigit()):
            return self.get("tasks", int(task))
        matches = [t for t in self.tasks() if t.get("name") == task]
        if len(matches) != 1:
            names = sorted({str(t.get("name")) for t in self.tasks()})
            raise PlaygroundError(
                f"{self.base_url}: {len(matches)} task(s) named {task!r}; known tasks: {names}"
            )
        return matches[0]

    def create_task(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a task (see ``tasks.split_to_task`` for the body)."""
        return self.request("POST", ENDPOINTS["tasks"].path, json_body=dict(body), idempotent=False)

    def create_strategy(self, model: str) -> dict[str, Any]:
        return self.request(
            "POST", ENDPOINTS["strategies"].path, json_body={"model": model}, idempotent=True
        )

    def ensure_strategy(self, model: str) -> tuple[dict[str, Any], bool]:
        """The strategy named ``model``, created if missing; returns ``(record, created)``."""
        for record in self.strategies():
            if record.get("model") == model:
                return record, False
        try:
            return self.create_strategy(model), True
        except BadRequestError:  # created meanwhile (or by a retried request): read it back
            for record in self.strategies():
                if record.get("model") == model:
                    return record, False
            raise

    def upload_predictions(
        self, payload: Mapping[str, Any], *, journal: str | os.PathLike[str] | None = None
    ) -> UploadReport:
        """Send a prediction payload in idempotent batches (see ``platform/upload.py``)."""
        from dqm_playground_ds.platform.upload import upload_predictions

        return upload_predictions(self, payload, journal=journal)

    # -- histograms as a table ----------------------------------------------------------------
    def download_histograms(
        self,
        dim: int = 1,
        *,
        titles: str | Sequence[str] | None = None,
        runs: Sequence[int] | None = None,
        run_range: Sequence[int] | None = None,
        ls_range: Sequence[int] | None = None,
        data_file: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        refresh: bool = False,
        on_bad_record: str = "raise",
        concurrent: bool | None = None,
        **filters: Any,
    ) -> pd.DataFrame:
        """1D or 2D LS histograms matching the selection, as the histogram table.

        With ``cache_dir`` every fetched page is kept as a Parquet part, so an interrupted download
        resumes with the missing pages only (``refresh=True`` starts over). An unknown title raises
        :class:`BadRequestError` at once; a bad record raises :class:`RecordError` unless
        ``on_bad_record="skip"``.
        """
        selection = histogram_filters(
            titles=titles, runs=runs, run_range=run_range, ls_range=ls_range, data_file=data_file
        )
        ep = histogram_endpoint(dim)
        params = encode_filters(ep, {**selection, **filters})
        url = self.url(ep.path) + ("?" + urlencode(params) if params else "")
        source = without_page(url)
        cache = PageCache(cache_dir, source, refresh=refresh) if cache_dir is not None else None
        pages: dict[int, dict[str, list[Any]]] = {}

        def on_page(page: Page) -> None:
            columns = records_to_columns(page.results, dim=dim, source=source, on_bad=on_bad_record)
            if cache is not None:
                cache.write(page.number, columns)
            else:
                pages[page.number] = columns

        started = time.perf_counter()
        for _ in self.fetch_pages(
            ep.path,
            params,
            concurrent=concurrent,
            plan=cache.plan if cache is not None else None,
            on_page=on_page,
            desc=f"{dim}D histograms",
        ):
            pass
        if cache is not None:
            table = cache.read()
        else:
            table = columns_to_frame(pages[n] for n in sorted(pages))
        dup = table[ID_COLUMN].duplicated() & (table[ID_COLUMN] >= 0)
        if dup.any():
            raise PaginationError(
                f"{source}: record id {int(table.loc[dup, ID_COLUMN].iloc[0])} was served twice: "
                "the server's ordering changed during the download; run it again"
            )
        log.info("%s: %d histograms in %.1f s", source, len(table), time.perf_counter() - started)
        return validate_histograms(table.drop(columns=[ID_COLUMN]), name=source)
