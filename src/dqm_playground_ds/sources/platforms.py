"""Source factories for the web platforms: the ML4DQM playground API and DIALS.

They turn a catalog entry (server, credentials, selection) into a client and its source, so that
``kind: playground_api`` and ``kind: dials`` are configured like any other kind.
"""

from __future__ import annotations

import os
from typing import Any

PLAYGROUND_URL_ENV = "DQM_PLAYGROUND_URL"
PLAYGROUND_LOCAL_URL = "http://127.0.0.1:8000"
DIALS_URL_ENV = "DIALS_URL"
DIALS_LOCAL_URL = "http://127.0.0.1:8001/api/v1/"


def _tuple(value: Any) -> tuple[Any, ...] | None:
    return tuple(value) if value is not None else None


def _token(credentials: dict[str, Any] | None) -> str | None:
    return (credentials or {}).get("token") or None


def playground_api(
    *,
    base_url: str | None = None,
    credentials: dict[str, Any] | None = None,
    token_env: str | None = None,
    client_args: dict[str, Any] | None = None,
    dims: list[int] | None = None,
    run_range: list[int | None] | None = None,
    ls_range: list[int | None] | None = None,
    on_bad_record: str = "raise",
    **selection: Any,
) -> Any:
    """``titles``, ``runs``, ``data_file``, ``source_data_file``, ``runs_per_item``, ``cache_dir``."""
    from dqm_playground_ds.platform import TOKEN_ENV, PlaygroundClient
    from dqm_playground_ds.platform.source import PlaygroundAPI

    if on_bad_record not in ("raise", "skip"):
        raise ValueError(f"on_bad_record must be 'raise' or 'skip', got {on_bad_record!r}")
    client = PlaygroundClient(
        base_url or os.environ.get(PLAYGROUND_URL_ENV) or PLAYGROUND_LOCAL_URL,
        _token(credentials),
        token_env=token_env or TOKEN_ENV,
        **(client_args or {}),
    )
    return PlaygroundAPI(
        client,
        dims=tuple(dims or (1, 2)),
        run_range=_tuple(run_range),
        ls_range=_tuple(ls_range),
        on_bad_record=on_bad_record,
        **selection,
    )


def dials(
    *,
    dataset: str,
    base_url: str | None = None,
    workspace: str | None = "tracker",
    credentials: dict[str, Any] | None = None,
    token_env: str | None = None,
    client_args: dict[str, Any] | None = None,
    dims: list[int] | None = None,
    run_range: list[int | None] | None = None,
    ls_range: list[int | None] | None = None,
    **selection: Any,
) -> Any:
    """``runs``, ``mes``, ``me_regex``, ``runs_per_item``, ``cache_dir``, ``on_bad_record``."""
    from dqm_playground_ds.platform.dials import DIALS_TOKEN_ENV, DialsClient, DialsSource

    client = DialsClient(
        base_url or os.environ.get(DIALS_URL_ENV) or DIALS_LOCAL_URL,
        _token(credentials),
        workspace=workspace,
        token_env=token_env or DIALS_TOKEN_ENV,
        **(client_args or {}),
    )
    return DialsSource(
        client,
        dataset=dataset,
        dims=tuple(dims or (1, 2)),
        run_range=_tuple(run_range),
        ls_range=_tuple(ls_range),
        **selection,
    )
