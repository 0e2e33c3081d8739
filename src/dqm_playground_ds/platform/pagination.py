"""The playground's page shape, read as the server really sends it.

Fixed pages of 50, ``?page=N``; ``next``/``previous`` are paths relative to the host; ``total_pages``
is ``round(total/50, 1)``, a float that is NOT the page count (24.7 means 25 pages), so the count is
computed from ``total``; a page past the end answers 404 ``{"detail": "Invalid page."}``. Once page 1
gives the total, every other page's URL is known, which is what makes concurrent fetching possible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from dqm_playground_ds.platform.errors import PaginationError, ResponseError

PAGE_SIZE = 50


@dataclass(frozen=True)
class Page:
    number: int
    total: int
    per_page: int
    next: str | None
    previous: str | None
    results: list[dict[str, Any]]

    @property
    def n_pages(self) -> int:
        return page_count(self.total, self.per_page)


def page_count(total: int, per_page: int = PAGE_SIZE) -> int:
    """Pages needed for ``total`` records (page 1 exists even when there are none)."""
    return max(1, math.ceil(total / per_page))


def expected_rows(number: int, total: int, per_page: int = PAGE_SIZE) -> int:
    return max(0, min(per_page, total - (number - 1) * per_page))


def with_page(url: str, number: int) -> str:
    """``url`` asking for page ``number`` (page first, other parameters kept in order)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "page"]
    return urlunsplit(parts._replace(query=urlencode([("page", str(number)), *query])))


def without_page(url: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "page"]
    return urlunsplit(parts._replace(query=urlencode(query)))


def page_number(url: str) -> int:
    """The ``page`` parameter of a URL (1 when absent, as the server reads it)."""
    for key, value in parse_qsl(urlsplit(url).query):
        if key == "page":
            try:
                return int(value)
            except ValueError as exc:
                raise ResponseError(f"page link {url!r} has a non-numeric page") from exc
    return 1


def parse_page(body: Any, *, url: str, number: int) -> Page:
    """Check a list response's shape and return it as a :class:`Page`.

    The OpenAPI client documents ``count``; the server sends ``total``: both are accepted.
    """
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise ResponseError(
            f"{url}: expected a page object with a 'results' list, got {str(body)[:120]!r}"
        )
    total = body["total"] if body.get("total") is not None else body.get("count")
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise ResponseError(f"{url}: page has no valid 'total' (got {total!r})")
    per_page = body.get("per_page", PAGE_SIZE)
    if not isinstance(per_page, int) or per_page <= 0:
        raise ResponseError(f"{url}: page has an invalid 'per_page' {per_page!r}")
    for link in ("next", "previous"):
        if body.get(link) is not None and not isinstance(body[link], str):
            raise ResponseError(f"{url}: '{link}' is not a link: {body[link]!r}")
    return Page(number, total, per_page, body.get("next"), body.get("previous"), body["results"])


def check_page(page: Page, first: Page, url: str) -> None:
    """Refuse a page that disagrees with page 1: the result set changed under the download."""
    if page.total != first.total or page.per_page != first.per_page:
        raise PaginationError(
            f"{url}: page {page.number} reports {page.total} records in pages of {page.per_page}, "
            f"page 1 reported {first.total} in pages of {first.per_page}: the result set changed "
            "during the download; run it again"
        )
    want = expected_rows(page.number, first.total, first.per_page)
    if len(page.results) != want:
        raise PaginationError(
            f"{url}: page {page.number} holds {len(page.results)} records, expected {want} "
            f"(total {first.total}, {first.per_page} per page)"
        )


def check_unique_ids(pages: list[Page], url: str) -> None:
    """Records seen on two pages mean the server's ordering moved between requests."""
    seen: set[Any] = set()
    for page in pages:
        for record in page.results:
            rid = record.get("id") if isinstance(record, dict) else None
            if rid is None:
                continue
            if rid in seen:
                raise PaginationError(
                    f"{url}: record id {rid} appears on two pages (page {page.number} again): "
                    "the server's ordering changed during the download"
                )
            seen.add(rid)
