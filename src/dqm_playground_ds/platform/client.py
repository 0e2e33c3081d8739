"""Client of the ML4DQM playground REST API (contract: ``shared/docs/platform-api.md``).

What it adds to plain ``requests`` calls, because that is what the platform's users ask for:

- token auth from an argument or ``DQM_PLAYGROUND_TOKEN``; the token is never logged or repeated in
  an error (``repr`` shows ``***``);
- every list endpoint with its filters checked (the server ignores unknown filters silently);
- pagination as the server really does it, with every page after the first fetched concurrently;
- retries with exponential backoff on connection errors, timeouts, broken bodies, malformed JSON,
  429 (honouring ``Retry-After``, which pauses every worker) and 5xx; immediate errors on 400/401/403;
  within a download the retries come from one budget for the whole download (``download_retries``),
  so a burst of failures on one page does not end a download that is progressing;
- deadlines: ``timeout`` bounds each socket wait, ``request_deadline`` the whole answer, body
  included (a server trickling bytes cannot hold a request forever), ``deadline`` a whole download;
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
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass
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
    TASKS_EXTENSION,
    Endpoint,
    encode_filters,
    histogram_endpoint,
    local_matches,
)
from dqm_playground_ds.platform.errors import (
    AuthenticationError,
    BadRequestError,
    CapabilityError,
    DeadlineError,
    NotFoundError,
    PaginationError,
    ParsingError,
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
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def histogram_filters(
    *,
    titles: str | Sequence[str] | None = None,
    runs: Sequence[int] | None = None,
    run_range: Sequence[int | None] | None = None,
    ls_range: Sequence[int | None] | None = None,
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


try:  # a dependency of kedro-viz, so normally present: decodes pages of histograms ~5x faster
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None  # type: ignore[assignment]


def _loads(content: bytes) -> Any:
    """JSON decoding; the standard library's as a fallback (it also accepts NaN/Infinity)."""
    if _orjson is not None:
        try:
            return _orjson.loads(content)
        except ValueError:
            pass
    return json.loads(content)


def _detail(resp: requests.Response) -> Any:
    try:
        body = json.loads(resp.content)
    except ValueError:
        return resp.text[:200]
    if isinstance(body, dict) and set(body) == {"detail"}:
        return body["detail"]
    return body


class _Budget:
    """Retries shared by every request of one download."""

    def __init__(self, n: int) -> None:
        self.left = int(n)
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


class _BodyDeadline(Exception):
    """The answer did not arrive in full before the request's deadline."""


def _dedupe(records: list[dict[str, Any]], url: str) -> list[dict[str, Any]]:
    """Drop records a join listed twice; two different records with one id are an error."""
    seen: dict[Any, dict[str, Any]] = {}
    out = []
    for record in records:
        rid = record.get("id") if isinstance(record, dict) else None
        if rid is None:
            out.append(record)
            continue
        if rid in seen:
            if seen[rid] != record:
                raise PaginationError(
                    f"{url}: record id {rid} was served twice with different content: the "
                    "data changed during the listing; run it again"
                )
            continue
        seen[rid] = record
        out.append(record)
    return out


@dataclass(frozen=True)
class _Call:
    """What one request sends, and whether repeating it is safe."""

    method: str
    url: str
    json_body: Any
    headers: Mapping[str, str] | None
    idempotent: bool


@dataclass(frozen=True)
class _Answer:
    value: Any


@dataclass(frozen=True)
class _Transient:
    """A failure a retry may fix: the exception (if any), why, and the server's Retry-After."""

    error: BaseException | None
    reason: str
    delay: float | None = None
    malformed: bool = False


_STATUS_ERRORS: dict[int, tuple[type[PlaygroundHTTPError], str]] = {
    400: (BadRequestError, "400 Bad Request:"),
    404: (NotFoundError, "404"),
}


def _checked_table(table: pd.DataFrame, source: str) -> pd.DataFrame:
    """A downloaded table in the project reader's order; a record served twice is an error."""
    dup = table[ID_COLUMN].duplicated() & (table[ID_COLUMN] >= 0)
    if dup.any():
        raise PaginationError(
            f"{source}: record id {int(table.loc[dup, ID_COLUMN].iloc[0])} was served twice: "
            "the server's lists have no ordering and its result moved during the download "
            "(rows changed?); run it again"
        )
    # the server's order means nothing: the table is sorted like the project's reader's
    return table.sort_values(["run", "lumi", "me"], kind="stable", ignore_index=True)


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


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
        request_deadline: float | None = None,
        deadline: float | None = None,
        download_retries: int | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/") + "/"
        self._token = token or os.environ.get(token_env) or None
        self._token_env = token_env
        self.timeout = float(timeout)
        # the whole answer (headers and body) of one attempt; defaults to ``timeout``
        self.request_deadline = float(request_deadline if request_deadline is not None else timeout)
        self.deadline = float(deadline) if deadline is not None else None  # a whole download
        self.retries = int(retries)
        self.download_retries = (
            int(download_retries) if download_retries is not None else 4 * self.retries
        )
        for name in ("timeout", "request_deadline"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0 seconds, got {getattr(self, name)}")
        if self.deadline is not None and self.deadline <= 0:
            raise ValueError(f"deadline must be > 0 seconds, got {self.deadline}")
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
        self._capabilities: dict[str, Any] | None = None
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

    def _default_headers(self) -> dict[str, str]:
        """Headers of every request (DRF token auth here; other platforms override this)."""
        headers = {"Accept": "application/json", "User-Agent": "dqm-playground-ds"}
        if self._token:
            headers["Authorization"] = f"Token {self._token}"
        return headers

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            # no .netrc (it would replace the Authorization header) and no implicit proxies
            session.trust_env = False
            if not _is_loopback(urlsplit(self.base_url).hostname):
                session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
            session.headers.update(self._default_headers())
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

    def _auth_error(
        self, status: int, url: str, detail: Any, resp: requests.Response | None = None
    ) -> AuthenticationError:
        """401 and 403 mean different things on the playground (DRF): say which, and why."""
        final = resp.url if resp is not None else url
        if resp is not None and resp.history and _origin(final) != _origin(url):
            why = (
                f"the request was redirected to {final} ({resp.history[0].status_code}), and a "
                "redirect to another host or scheme drops the Authorization header, so the server "
                f"never saw the token: set base_url to the redirect's target "
                f"({urlsplit(final).scheme}://{urlsplit(final).netloc})"
            )
        elif self._token is None:
            why = f"no token was sent: export {self._token_env}=... or pass credentials"
        elif status == 401:
            why = (
                "the token was refused (invalid, expired or revoked, or meant for another "
                "server): ask a platform admin for a new one"
            )
        else:
            why = (
                "the token is valid but not allowed to do this (permission denied; e.g. "
                "histogram_data_files/discover/ needs an admin account)"
            )
        return AuthenticationError(
            f"{url}: {status} {detail!s}: {why}", status=status, url=url, detail=detail
        )

    def _receive(
        self, method: str, url: str, json_body: Any, headers: Any, until: float
    ) -> requests.Response:
        """Send, then read the whole body before ``until`` (monotonic) or raise _BodyDeadline."""
        resp = self._session().request(
            method,
            url,
            json=json_body,
            headers=headers,
            timeout=(self.timeout, max(0.05, min(self.timeout, until - time.monotonic()))),
            verify=self.verify,
            stream=True,
        )
        try:
            raw = resp.raw
            read = getattr(raw, "read1", None)  # urllib3 >= 2.3: whatever has arrived
            chunks = []
            while True:
                if time.monotonic() > until:
                    raise _BodyDeadline()
                chunk = (
                    read(65536, decode_content=True)
                    if read is not None
                    else raw.read(8192, decode_content=True)
                )
                if not chunk:
                    break
                chunks.append(chunk)
            resp._content = b"".join(chunks)
            resp._content_consumed = True  # type: ignore[attr-defined]
            raw.release_conn()  # the whole body is read: the connection can be reused
        except _BodyDeadline:
            resp.close()
            raise
        except Exception as exc:
            resp.close()
            if isinstance(exc, requests.RequestException):
                raise
            # urllib3 errors while reading the body: a broken response
            raise requests.exceptions.ChunkedEncodingError(str(exc)) from exc
        return resp

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
        budget: _Budget | None = None,
        until: float | None = None,
    ) -> Any:
        """One API call with retries; returns the decoded JSON body (``None`` when empty).

        Non-idempotent calls are retried only when the server certainly did not act on them
        (429/503, or the connection could not be opened). ``budget`` (a download's shared retry
        budget) replaces the per-request ``retries``; ``until`` (monotonic) is an overall deadline.
        """
        method = method.upper()
        url = self.url(path)
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params, doseq=True)
        call = _Call(method, url, json_body, headers,
                     method in IDEMPOTENT_METHODS if idempotent is None else idempotent)  # fmt: skip
        attempt = 0
        while True:
            self._wait_pause()
            with self._lock:
                self.stats["requests"] += 1
            started = time.monotonic()
            if until is not None and started >= until:
                raise DeadlineError(
                    f"{method} {url}: the overall deadline ({self.deadline} s) passed after "
                    f"{attempt} attempt(s)"
                )
            attempt_until = started + self.request_deadline
            if until is not None:
                attempt_until = min(attempt_until, until)
            result = self._attempt(call, attempt_until, started, expect_json)
            if not isinstance(result, _Transient):
                return result.value
            attempt += 1
            self._wait_or_give_up(call, result, attempt, budget, until)

    def _attempt(
        self, call: _Call, attempt_until: float, started: float, expect_json: bool
    ) -> _Answer | _Transient:
        """One attempt: the answer, a transient failure worth retrying, or an error raised."""
        what = f"{call.method} {call.url}"
        try:
            resp = self._receive(call.method, call.url, call.json_body, call.headers, attempt_until)
        except _BodyDeadline as exc:
            if not call.idempotent:
                raise PlaygroundError(
                    f"{what}: no complete answer within {self.request_deadline} s; "
                    "the server may or may not have acted on it, so it is not repeated"
                ) from exc
            return _Transient(
                exc,
                f"answer not complete within the deadline ({attempt_until - started:.1f} s): "
                "the server is too slow",
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            not_sent = isinstance(exc, requests.ConnectTimeout) or (
                "NewConnectionError" in repr(exc) or "Connection refused" in repr(exc)
            )
            if not (call.idempotent or not_sent):
                raise PlaygroundError(
                    f"{what}: connection lost ({type(exc).__name__}); the server may "
                    "or may not have acted on it, so it is not repeated"
                ) from exc
            return _Transient(exc, f"{type(exc).__name__}: {exc}")
        except requests.RequestException as exc:  # broken/truncated body, decoding errors
            if not call.idempotent:
                raise PlaygroundError(f"{what}: response broken: {exc}") from exc
            return _Transient(exc, f"broken response ({type(exc).__name__}: {exc})")
        return self._answer(call, resp, expect_json)

    def _answer(
        self, call: _Call, resp: requests.Response, expect_json: bool
    ) -> _Answer | _Transient:
        """An HTTP answer: its JSON, a transient status (429, 5xx), or the error it means."""
        status, what = resp.status_code, f"{call.method} {call.url}"
        if status == 429 or status >= 500:
            detail = _detail(resp)
            if not call.idempotent and status not in (429, 503):
                raise PlaygroundHTTPError(
                    f"{what}: {status} {detail}", status=status, url=call.url, detail=detail
                )
            delay = self._retry_after(resp) if status in (429, 503) else None
            if delay is not None:
                self._pause(delay)
            return _Transient(None, f"HTTP {status} {str(detail)[:120]}", delay=delay)
        if status in (401, 403):
            raise self._auth_error(status, call.url, _detail(resp), resp)
        if status >= 400:
            detail = _detail(resp)
            cls, text = _STATUS_ERRORS.get(status, (PlaygroundHTTPError, str(status)))
            raise cls(f"{what}: {text} {detail}", status=status, url=call.url, detail=detail)
        if not resp.content or not expect_json:
            return _Answer(None)
        try:
            return _Answer(_loads(resp.content))
        except ValueError as exc:
            reason = f"malformed JSON ({exc}; starts {resp.content[:60]!r})"
            return _Transient(exc, reason, malformed=True)

    def _wait_or_give_up(
        self,
        call: _Call,
        failure: _Transient,
        attempt: int,
        budget: _Budget | None,
        until: float | None,
    ) -> None:
        """Sleep before the next attempt, or raise when the retries (or the budget) are spent."""
        exhausted = not budget.take() if budget is not None else attempt > self.retries
        if exhausted:
            cls = ResponseError if failure.malformed else RetryError
            scope = " (the download's retry budget is spent)" if budget is not None else ""
            raise cls(
                f"{call.method} {call.url}: {failure.reason}; gave up after {attempt} "
                f"attempt(s){scope}"
            ) from failure.error
        wait = failure.delay if failure.delay is not None else self._backoff_delay(min(attempt, 16))
        if until is not None:
            wait = max(0.0, min(wait, until - time.monotonic()))
        with self._lock:
            self.stats["retries"] += 1
        log.info(
            "%s %s: %s; retry %d in %.2f s", call.method, call.url, failure.reason, attempt, wait
        )
        time.sleep(wait)

    # -- pagination ---------------------------------------------------------------------------
    def _get_page(
        self,
        url: str,
        number: int,
        first: Page | None,
        budget: _Budget | None = None,
        until: float | None = None,
    ) -> Page:
        page_url = with_page(url, number)
        try:
            body = self.request("GET", page_url, budget=budget, until=until)
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
        budget = _Budget(self.download_retries)
        until = time.monotonic() + self.deadline if self.deadline is not None else None
        first = self._get_page(url, 1, None, budget, until)
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
                yield from self._concurrent_pages(url, todo, first, on_page, bar, budget, until)
            else:
                yield from self._sequential_pages(first, on_page, bar, budget, until)
        finally:
            bar.close()

    def _concurrent_pages(
        self,
        url: str,
        todo: list[int],
        first: Page,
        on_page: Callable[[Page], None] | None,
        bar: Any,
        budget: _Budget,
        until: float | None,
    ) -> Iterator[Page]:
        def task(number: int) -> Page:
            page = self._get_page(url, number, first, budget, until)
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
        finally:  # on a failure, nothing may still write to the cache once we return
            for fut in futures:
                fut.cancel()
            wait(futures)

    def _sequential_pages(
        self,
        first: Page,
        on_page: Callable[[Page], None] | None,
        bar: Any,
        budget: _Budget,
        until: float | None,
    ) -> Iterator[Page]:
        """Follow ``next`` links (every page is fetched, cached or not)."""
        page = first
        while page.next:
            next_url = self.url(page.next)
            number = page_number(next_url)
            if number != page.number + 1:
                raise PaginationError(f"page {page.number}'s next link {page.next!r} skips pages")
            page = self._get_page(next_url, number, first, budget, until)
            if on_page is not None:
                on_page(page)
            bar.update(1)
            yield page

    def list_records(
        self, endpoint: str, *, concurrent: bool | None = None, **filters: Any
    ) -> list[dict[str, Any]]:
        """Every record of a list endpoint matching ``filters``, in the server's order.

        The deployed server has no ordering, so the order means nothing. Filters the server gets
        wrong are applied here (``Endpoint.local_filters``); a record a join lists twice is kept
        once (``Endpoint.join_duplicates``).
        """
        ep = self._endpoint(endpoint)
        params = encode_filters(ep, filters)
        pages = sorted(
            self.fetch_pages(ep.path, params, concurrent=concurrent),
            key=lambda p: p.number,
        )
        records = [record for page in pages for record in page.results]
        if ep.join_duplicates:
            records = _dedupe(records, self.url(ep.path))
        else:
            check_unique_ids(pages, self.url(ep.path))
        if ep.local_filters & set(filters):
            match = local_matches(ep, filters)
            records = [r for r in records if match(r)]
        return records

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
        return self.list_records("runs", **filters)

    def lumisections(self, **filters: Any) -> list[dict[str, Any]]:
        return self.list_records("lumisections", **filters)

    def run_histograms(self, **filters: Any) -> list[dict[str, Any]]:
        return self.list_records("run_histograms", **filters)

    def lumisection_histograms(self, dim: int = 1, **filters: Any) -> list[dict[str, Any]]:
        """Raw 1D/2D LS-histogram records (see :meth:`download_histograms` for the table)."""
        return self.list_records(histogram_endpoint(dim).name, **filters)

    def histogram_data_files(self, **filters: Any) -> list[dict[str, Any]]:
        """Data files; the server caches these GETs for 60 s, so progress may look stale."""
        return self.list_records("histogram_data_files", **filters)

    def run_certifications(self, **filters: Any) -> list[dict[str, Any]]:
        """Run certifications (``rr_frac_*`` fractions on the deployed server); ``id`` is applied
        here, ``rr_is_*`` filters are refused (the server would ignore them)."""
        return self.list_records("run_certifications", **filters)

    def lumisection_certifications(self, **filters: Any) -> list[dict[str, Any]]:
        """LS certifications. ``run``, ``lumisection`` (the LS number) and ``id`` are applied
        here: on the deployed server ``?run=`` is a 500 and ``?lumisection=`` matches an
        internal id. Flags and ``date`` are sent, so narrow with them where you can."""
        return self.list_records("lumisection_certifications", **filters)

    # -- capabilities -------------------------------------------------------------------------
    def capabilities(self, *, refresh: bool = False) -> dict[str, Any]:
        """The extensions the server advertises at ``/api/capabilities/`` (``{}`` when the route
        does not exist, as on the deployed playground)."""
        if self._capabilities is None or refresh:
            try:
                body = self.request("GET", "/api/capabilities/")
            except NotFoundError:
                body = None
            ext = body.get("extensions") if isinstance(body, dict) else None
            self._capabilities = dict(ext) if isinstance(ext, dict) else {}
        return dict(self._capabilities)

    def tasks(self) -> list[dict[str, Any]]:
        return self.list_records("tasks")

    def strategies(self) -> list[dict[str, Any]]:
        return self.list_records("strategies")

    def predictions(self) -> list[dict[str, Any]]:
        return self.list_records("predictions")

    # -- data files ---------------------------------------------------------------------------
    def data_file(self, file_id: int) -> dict[str, Any]:
        """A data file's record, fresh: the server caches these GETs for 60 s by URL, so the
        request carries a parameter the server ignores (``_``) that no earlier request had."""
        path = f"{ENDPOINTS['histogram_data_files'].path}{int(file_id)}/"
        return self.request("GET", path, params=[("_", f"{time.time_ns()}")])

    def start_parsing(
        self,
        file_id: int,
        *,
        granularity: str,
        data_dimensionality: int,
        file_format: str,
        wait: bool = True,
        timeout: float = 600.0,
        poll: float = 2.0,
        stall_timeout: float | None = 120.0,
    ) -> dict[str, Any] | None:
        """Parse a data file on the server into histograms and, with ``wait``, until it is done.

        The deployed server answers 202 with an empty body and parses in the background; it never
        reports a failure. So the file's record is polled (past the 60 s cache) until
        ``entries_processed`` reaches ``entries_total``; no progress for ``stall_timeout`` s or no
        completion within ``timeout`` s is a :class:`ParsingError`. Returns the final record.
        """
        if file_format not in ("csv", "root"):
            raise ValueError(
                f"file_format must be 'csv' or 'root' (lowercase: the platform refuses anything "
                f"else), got {file_format!r}"
            )
        body = {
            "granularity": granularity,
            "data_dimensionality": int(data_dimensionality),
            "file_format": file_format,
        }
        path = f"{ENDPOINTS['histogram_data_files'].path}{int(file_id)}/start_parsing/"
        self.request("POST", path, json_body=body, idempotent=False)
        if not wait:
            return None
        started = last_change = time.monotonic()
        last = None
        while True:
            record = self.data_file(file_id)
            done, total = record.get("entries_processed") or 0, record.get("entries_total") or 0
            if total > 0 and done >= total:
                return record
            now_ = time.monotonic()
            if done != last:
                last, last_change = done, now_
            where = f"{self.base_url}: data file {file_id} ({record.get('filepath')})"
            state = f"{done} of {total} entries processed"
            if now_ - started > timeout:
                raise ParsingError(
                    f"{where}: parsing not finished after {timeout:.0f} s ({state}); the "
                    "platform never reports a failed parse: ask its admins for the logs"
                )
            if stall_timeout is not None and now_ - last_change > stall_timeout:
                raise ParsingError(
                    f"{where}: no parsing progress for {stall_timeout:.0f} s ({state}): it most "
                    "likely failed on the server, which never reports it (wrong "
                    "file_format/data_dimensionality, or an unreadable file?)"
                )
            time.sleep(poll)

    def discover(self) -> None:
        """Ask the server to look for new data files (admins only; 202 with an empty body)."""
        self.request("GET", f"{ENDPOINTS['histogram_data_files'].path}discover/")

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
        """Create a task (see ``tasks.split_to_task`` for the body) on a server that offers the
        tasks extension; the deployed playground cannot (400/500 for every body shape)."""
        if TASKS_EXTENSION not in self.capabilities():
            raise CapabilityError(
                f"{self.base_url} cannot create tasks through its API (no '{TASKS_EXTENSION}' "
                "extension; the deployed playground answers 400/500 to every task body): ask a "
                "platform admin to create it, or use a local split file (split.py); nothing was sent"
            )
        return self.request("POST", ENDPOINTS["tasks"].path, json_body=dict(body), idempotent=False)

    def create_strategy(self, model: str) -> dict[str, Any]:
        """POST a strategy. The deployed server allows duplicate names, so this is never retried
        blindly: use :meth:`ensure_strategy`."""
        return self.request(
            "POST", ENDPOINTS["strategies"].path, json_body={"model": model}, idempotent=False
        )

    def _find_strategy(self, model: str) -> dict[str, Any] | None:
        matches = sorted(
            (r for r in self.strategies() if r.get("model") == model), key=lambda r: r["id"]
        )
        if len(matches) > 1:
            log.warning(
                "%s: %d strategies named %r (ids %s); using the oldest, %s",
                self.base_url, len(matches), model, [r["id"] for r in matches], matches[0]["id"],
            )  # fmt: skip
        return matches[0] if matches else None

    def ensure_strategy(self, model: str) -> tuple[dict[str, Any], bool]:
        """The strategy named ``model``, created if missing; returns ``(record, created)``.

        Looked up first (the server keeps duplicates); a POST whose answer was lost is not
        repeated blindly: the list is read again and the POST repeated only if it is not there.
        """
        found = self._find_strategy(model)
        if found is not None:
            return found, False
        error: PlaygroundError | None = None
        for _ in range(self.retries + 1):
            try:
                return self.create_strategy(model), True
            except (RetryError, PlaygroundHTTPError) as exc:
                if isinstance(exc, (AuthenticationError, BadRequestError)):
                    raise
                error = exc
            except PlaygroundError as exc:  # connection lost: did it arrive?
                error = exc
            found = self._find_strategy(model)
            if found is not None:
                return found, True
            log.info(
                "strategy %r: POST failed (%s) and it is not on the server; again", model, error
            )
        assert error is not None  # the loop ran at least once
        raise error

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
        table = _checked_table(
            cache.read()
            if cache is not None
            else columns_to_frame(pages[n] for n in sorted(pages)),
            source,
        )
        log.info("%s: %d histograms in %.1f s", source, len(table), time.perf_counter() - started)
        return validate_histograms(table.drop(columns=[ID_COLUMN]), name=source)


def _deprecated_list(
    self: PlaygroundClient, endpoint: str, *, concurrent: bool | None = None, **filters: Any
) -> list[dict[str, Any]]:
    """Deprecated name of :meth:`PlaygroundClient.list_records` (it shadowed the builtin)."""
    warnings.warn(
        "PlaygroundClient.list() is deprecated: use list_records()",
        DeprecationWarning,
        stacklevel=2,
    )
    return self.list_records(endpoint, concurrent=concurrent, **filters)


# kept for callers of the old name; set outside the class body so that it shadows nothing there
setattr(PlaygroundClient, "list", _deprecated_list)  # noqa: B010
