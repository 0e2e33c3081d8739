"""Errors of the platform client: each says what was asked, of which host, and what to do.

Messages never contain the token: it only travels in a request header, which no error or log line
repeats.
"""

from __future__ import annotations

from typing import Any


class PlaygroundError(Exception):
    """Base class of everything the platform client raises."""


class PlaygroundHTTPError(PlaygroundError):
    """The server answered with an HTTP error status that retrying cannot fix."""

    def __init__(self, message: str, *, status: int, url: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.url = url
        self.detail = detail


class AuthenticationError(PlaygroundHTTPError):
    """401/403: no token, or a token the server refuses."""


class BadRequestError(PlaygroundHTTPError):
    """400: the server refused the query or payload (e.g. an unknown ME title)."""


class NotFoundError(PlaygroundHTTPError):
    """404: no such object (or, for a list, a page past the end)."""


class RetryError(PlaygroundError):
    """A transient failure (connection, timeout, 429, 5xx, broken body) outlasted every retry."""


class ResponseError(PlaygroundError):
    """A 2xx answer whose body is not what the contract says (not JSON, wrong shape)."""


class RecordError(ResponseError):
    """A record lacks fields or holds values that cannot form a histogram."""


class PaginationError(PlaygroundError):
    """Pages disagree with each other: the result set changed while it was being read."""


class DeadlineError(RetryError):
    """The overall deadline of a download passed before it was complete."""


class CapabilityError(PlaygroundError):
    """The platform lacks what the operation needs (e.g. the deployed one cannot store
    predictions); raised before anything is written."""


class ParsingError(PlaygroundError):
    """A data file's server-side parsing did not complete (timed out or stalled)."""
