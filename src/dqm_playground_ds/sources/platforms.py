"""Source factories for the web platforms: the ML4DQM playground API and DIALS.

They turn a catalog entry (server, credentials, selection) into a client and its source, so that
``kind: playground_api`` and ``kind: dials`` are configured like any other kind. The server
(:func:`server_url`) and the clients (:func:`playground_client`, :func:`dials_client`) are set up
here only: the platform datasets (``datasets/playground.py``, ``datasets/dials.py``) use them too.
"""

from __future__ import annotations

import os
from typing import Any

PLAYGROUND_URL_ENV = "DQM_PLAYGROUND_URL"
PLAYGROUND_LOCAL_URL = "http://127.0.0.1:8000"
DIALS_URL_ENV = "DIALS_URL"
DIALS_LOCAL_URL = "http://127.0.0.1:8001/api/v1/"
DIALS_WORKSPACE = "tracker"
#: kind -> (environment variable of its server, the local server)
SERVERS = {
    "playground_api": (PLAYGROUND_URL_ENV, PLAYGROUND_LOCAL_URL),
    "dials": (DIALS_URL_ENV, DIALS_LOCAL_URL),
}


def _tuple(value: Any) -> tuple[Any, ...] | None:
    return tuple(value) if value is not None else None


def credentials_token(credentials: dict[str, Any] | None) -> str | None:
    """The token of Kedro credentials ``{token: ...}`` (``None``: the client reads its variable)."""
    return (credentials or {}).get("token") or None


def server_url(kind: str, base_url: str | None) -> str:
    """``base_url``, else the kind's environment variable, else its local server."""
    env, local = SERVERS[kind]
    return base_url or os.environ.get(env) or local


def playground_client(
    base_url: str | None = None,
    credentials: dict[str, Any] | None = None,
    token_env: str | None = None,
    client_args: dict[str, Any] | None = None,
) -> Any:
    """The :class:`~dqm_playground_ds.platform.PlaygroundClient` of a catalog entry."""
    from dqm_playground_ds.platform import TOKEN_ENV, PlaygroundClient

    return PlaygroundClient(
        server_url("playground_api", base_url),
        credentials_token(credentials),
        token_env=token_env or TOKEN_ENV,
        **(client_args or {}),
    )


def dials_client(
    base_url: str | None = None,
    credentials: dict[str, Any] | None = None,
    token_env: str | None = None,
    client_args: dict[str, Any] | None = None,
    workspace: str | None = DIALS_WORKSPACE,
) -> Any:
    """The :class:`~dqm_playground_ds.platform.dials.DialsClient` of a catalog entry."""
    from dqm_playground_ds.platform.dials import DIALS_TOKEN_ENV, DialsClient

    return DialsClient(
        server_url("dials", base_url),
        credentials_token(credentials),
        workspace=workspace,
        token_env=token_env or DIALS_TOKEN_ENV,
        **(client_args or {}),
    )


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
    from dqm_playground_ds.platform.source import PlaygroundAPI

    if on_bad_record not in ("raise", "skip"):
        raise ValueError(f"on_bad_record must be 'raise' or 'skip', got {on_bad_record!r}")
    return PlaygroundAPI(
        playground_client(base_url, credentials, token_env, client_args),
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
    workspace: str | None = DIALS_WORKSPACE,
    credentials: dict[str, Any] | None = None,
    token_env: str | None = None,
    client_args: dict[str, Any] | None = None,
    dims: list[int] | None = None,
    run_range: list[int | None] | None = None,
    ls_range: list[int | None] | None = None,
    **selection: Any,
) -> Any:
    """``runs``, ``mes``, ``me_regex``, ``runs_per_item``, ``cache_dir``, ``on_bad_record``."""
    from dqm_playground_ds.platform.dials import DialsSource

    return DialsSource(
        dials_client(base_url, credentials, token_env, client_args, workspace),
        dataset=dataset,
        dims=tuple(dims or (1, 2)),
        run_range=_tuple(run_range),
        ls_range=_tuple(ls_range),
        **selection,
    )
