"""A local DIALS server (FastAPI, in memory) with the response shapes of the DIALS v1 backend.

The test double of :class:`~dqm_playground_ds.platform.dials.DialsClient` and the server of an
offline ``kedro run --env=dials``. What it reproduces (``shared/docs/platform-api.md``, section 2):

- routes under ``/api/v1/``: ``th1/``, ``th2/``, ``run/``, ``lumisection/`` (cursor pages),
  ``run/count/``, ``lumisection/count/``, ``mes/`` (a plain list, not paginated), ``auth/workspaces/``;
  an unknown route is Django's HTML 404;
- cursor pagination: ``page_size`` (default 10, silently capped at 500), an opaque ``next_token``,
  ``next`` an absolute URL built from the request's host, no count; order (dataset_id, run_number,
  ls_number, me_id);
- filters ``dataset[__regex]``, ``dataset_id``, ``run_number[__gte/__lte]``, ``ls_number[__gte/__lte]``,
  ``me``, ``me__regex``, ``me_id``, ``entries__gte``, ``file_id``, ``logical_file_name[__regex]``,
  ``fields=a,b``; a malformed value is 400 naming the field, an unknown ``me`` an empty 200;
- auth failures are 403, never 401: no header -> ``authorization_not_found``, a bad token ->
  ``token_not_valid``; an unknown ``Workspace`` header is 404 ``Workspace 'x' not found``, no header
  the default workspace. A token limited to some workspaces gets 403 ``permission_denied`` elsewhere
  (the local stand-in for CERN SSO roles).

Start it with ``python -m dqm_playground_ds.platform.dials.server --load FILES --dataset NAME``.
``--workers N`` serves with N processes forked after loading, on one socket, as gunicorn's
pre-loaded workers serve the deployed DIALS (request counts and fault scripts are then per process:
for benchmarks and offline runs, not for tests that count requests).
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request, Response

from dqm_playground_ds.platform.dials.pages import FIELDS
from dqm_playground_ds.platform.server.api import HTML_404
from dqm_playground_ds.platform.server.faults import FaultMiddleware, FaultPlan

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 10
DEFAULT_DATASET = "/ZeroBias/Run2018A-12Nov2019_UL2018-v2/DQMIO"
WORKSPACES = ("csc", "ecal", "egamma", "hcal", "jetmet", "muon_staging", "tracker")


class DialsAPIError(Exception):
    def __init__(self, status: int, body: Any, html: str | None = None) -> None:
        self.status, self.body, self.html = status, body, html


def _dumps(body: Any) -> str:
    """Compact JSON, as DRF's ``JSONRenderer`` writes it (no spaces after ``,`` and ``:``)."""
    return json.dumps(body, separators=(",", ":"))


def _json(body: Any, status: int = 200) -> Response:
    return Response(_dumps(body), status_code=status, media_type="application/json")


@dataclass
class _Rows:
    """One route's rows in DIALS order, with the columns its filters need and each row's JSON.

    Each record's JSON is encoded once (at load time, whole and with the fields the project's
    client asks for; any other ``?fields=`` selection on the first request that asks for it,
    then kept), so a page is a join of ready strings: the deployed
    DIALS is another machine, whose encoding does not compete with the client's decoding for the
    same cores; the local one should take as little of them as it can."""

    columns: dict[str, np.ndarray]
    records: list[dict[str, Any]]
    encoded: dict[tuple[str, ...], list[str]] = field(default_factory=dict)  # fields -> JSON
    codes: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> id, for ``=`` filters
    selections: tuple[tuple[str, ...], ...] = ()  # ``?fields=`` selections encoded at load time

    def __post_init__(self) -> None:
        self.keys = tuple(dict.fromkeys(k for r in self.records for k in r))  # serializer order
        self.encoded[self.keys] = [_dumps(r) for r in self.records]
        for fields in self.selections:
            self.page([], list(fields))
        self.kept = frozenset(self.encoded)  # never dropped

    def __len__(self) -> int:
        return len(self.records)

    def page(self, rows: Iterable[int], fields: list[str]) -> str:
        """The JSON list of ``rows``, trimmed to ``fields`` (in the serializer's order, unknown
        ones ignored, as DRF's dynamic fields do) when any are asked."""
        keys = tuple(k for k in self.keys if k in fields) if fields else self.keys
        encoded = self.encoded.get(keys)
        if encoded is None:
            if len(self.encoded) > 8:  # a few selections kept, not every one ever asked
                self.encoded = {k: v for k, v in self.encoded.items() if k in self.kept}
            encoded = [_dumps({k: r[k] for k in keys if k in r}) for r in self.records]
            self.encoded[keys] = encoded
        return "[" + ",".join(encoded[i] for i in rows) + "]"


def _lfn(source: str) -> str:
    return "/store/data/" + os.path.basename(str(source))


def _hist_rows(
    table: pd.DataFrame, dim: int, ds_ids: dict[str, int], me_ids: dict[str, int]
) -> _Rows:
    t = table[table["dim"] == dim]
    if "dataset" not in t:
        t = t.assign(dataset=DEFAULT_DATASET)
    t = t.assign(
        dataset_id=t["dataset"].map(ds_ids).astype("int64"),
        me_id=t["me"].astype(str).map(me_ids).astype("int64"),
    ).sort_values(["dataset_id", "run", "lumi", "me_id"], kind="stable")
    records = []
    for r in t.itertuples(index=False):
        lfn = _lfn(r.source)
        rec: dict[str, Any] = {
            "dataset_id": int(r.dataset_id),
            "dataset": str(r.dataset),
            "me": str(r.me),
            "file_id": zlib.crc32(lfn.encode()),
            "run_number": int(r.run),
            "ls_number": int(r.lumi),
            "me_id": int(r.me_id),
            "x_min": float(r.x_min),
            "x_max": float(r.x_max),
            "x_bin": int(r.x_bins),
            "entries": round(float(r.entries)),
        }
        values = np.asarray(r.data, dtype=np.float64)
        if dim == 2:
            rec.update(y_min=float(r.y_min), y_max=float(r.y_max), y_bin=int(r.y_bins))
            rec["data"] = values.reshape(int(r.y_bins), int(r.x_bins)).tolist()
        else:
            rec["data"] = values.tolist()
        rec["logical_file_name"] = lfn
        records.append(rec)
    cols = {
        k: np.asarray([rec[k] for rec in records])
        for k in (
            "dataset_id",
            "dataset",
            "run_number",
            "ls_number",
            "me_id",
            "me",
            "entries",
            "file_id",
            "logical_file_name",
        )
    }
    for rec in records:
        rec.pop("logical_file_name")
    return _Rows(cols, records, selections=(FIELDS[dim],))


class DialsData:
    """A workspace's content: histograms by dimension, runs, lumisections and MEs."""

    def __init__(self, table: pd.DataFrame) -> None:
        if "dataset" not in table:
            table = table.assign(dataset=DEFAULT_DATASET)
        table = table.assign(dataset=table["dataset"].fillna(DEFAULT_DATASET).astype(str))
        table = table[table["lumi"] > 0]  # DIALS serves per-LS histograms only
        self.ds_ids = {d: i + 1 for i, d in enumerate(sorted(table["dataset"].unique()))}
        names = table[["me", "dim"]].drop_duplicates().sort_values("me")
        self.me_ids = {str(m): i + 1 for i, m in enumerate(names["me"])}
        self.mes = [
            {
                "me_id": self.me_ids[str(m)],
                "me": str(m),
                "count": int((table["me"] == m).sum()),
                "dim": int(d),
            }
            for m, d in zip(names["me"], names["dim"], strict=True)
        ]
        self.hists = {dim: _hist_rows(table, dim, self.ds_ids, self.me_ids) for dim in (1, 2)}
        for rows in self.hists.values():
            rows.codes = {"dataset": self.ds_ids, "me": self.me_ids}
        lumis = (
            table.assign(dataset_id=table["dataset"].map(self.ds_ids))
            .groupby(["dataset_id", "dataset", "run", "lumi"], as_index=False)
            .agg(th1_count=("dim", lambda d: int((d == 1).sum())), th2_count=("dim", lambda d: int((d == 2).sum())))
            .sort_values(["dataset_id", "run", "lumi"])
        )  # fmt: skip
        self.lumisections = _Rows(
            {
                "dataset_id": lumis["dataset_id"].to_numpy(),
                "dataset": lumis["dataset"].to_numpy(),
                "run_number": lumis["run"].to_numpy(),
                "ls_number": lumis["lumi"].to_numpy(),
            },
            [
                {"dataset_id": int(a), "dataset": str(b), "run_number": int(c), "ls_number": int(d),
                 "th1_count": int(e), "th2_count": int(f)}
                for a, b, c, d, e, f in lumis.itertuples(index=False)
            ],
        )  # fmt: skip
        runs = lumis.groupby(["dataset_id", "dataset", "run"], as_index=False).agg(
            ls_count=("lumi", "size")
        )
        self.runs = _Rows(
            {
                "dataset_id": runs["dataset_id"].to_numpy(),
                "dataset": runs["dataset"].to_numpy(),
                "run_number": runs["run"].to_numpy(),
            },
            [
                {"dataset_id": int(a), "dataset": str(b), "run_number": int(c), "ls_count": int(d)}
                for a, b, c, d in runs.itertuples(index=False)
            ],
        )

        self.runs.codes = self.lumisections.codes = {"dataset": self.ds_ids}

    def route(self, name: str) -> _Rows:
        return {
            "th1": self.hists[1],
            "th2": self.hists[2],
            "run": self.runs,
            "lumisection": self.lumisections,
        }[name]


_NUMERIC = ("dataset_id", "run_number", "ls_number", "me_id", "file_id")
_FILTERS: dict[str, set[str]] = {
    "th1": {"dataset", "dataset__regex", "dataset_id", "run_number", "run_number__gte",
            "run_number__lte", "ls_number", "ls_number__gte", "ls_number__lte", "me", "me__regex",
            "me_id", "entries__gte", "file_id", "logical_file_name", "logical_file_name__regex"},
    "run": {"dataset", "dataset__regex", "dataset_id", "run_number", "run_number__gte",
            "run_number__lte"},
}  # fmt: skip
_FILTERS["th2"] = _FILTERS["th1"]
_FILTERS["lumisection"] = _FILTERS["run"] | {"ls_number", "ls_number__gte", "ls_number__lte"}


def _mask(rows: _Rows, route: str, query: Mapping[str, str]) -> np.ndarray:
    """Rows matching the query's filters (unknown filters ignored, as django-filter does)."""
    mask = np.ones(len(rows), dtype=bool)
    if not len(rows):
        return mask
    cols = rows.columns
    for name, value in query.items():
        if name not in _FILTERS[route]:
            continue
        base, _, op = name.partition("__")
        if base in _NUMERIC or base == "entries":
            try:
                number = int(value) if base in _NUMERIC else float(value)
            except ValueError:
                raise DialsAPIError(400, {name: ["Enter a number."]}) from None
            col = cols[base]
            mask &= (
                (col >= number)
                if op == "gte"
                else (col <= number)
                if op == "lte"
                else (col == number)
            )
        elif op == "regex":
            try:
                pattern = re.compile(value)
            except re.error:
                raise DialsAPIError(400, {name: ["Enter a valid regular expression."]}) from None
            if base in rows.codes and f"{base}_id" in cols:  # ids of the matching names
                ids = [i for n, i in rows.codes[base].items() if pattern.search(n)]
                mask &= np.isin(cols[f"{base}_id"], ids)
            else:
                names = cols[base]
                hits = {n for n in set(names.tolist()) if pattern.search(n)}
                mask &= np.isin(names, list(hits))
        elif base in rows.codes and f"{base}_id" in cols:  # compare ids, not strings
            mask &= cols[f"{base}_id"] == rows.codes[base].get(value, -1)
        else:
            mask &= cols[base] == value
    return mask


def _token(pos: int) -> str:
    return base64.urlsafe_b64encode(f"p{pos}".encode()).decode().rstrip("=")


def _position(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if not text.startswith("p"):
            raise ValueError(text)
        return int(text[1:])
    except (ValueError, UnicodeDecodeError):
        raise DialsAPIError(400, {"next_token": ["Invalid cursor."]}) from None


@dataclass(frozen=True)
class _Auth:
    """Tokens, the workspaces each may see, and the default workspace."""

    data: Mapping[str, DialsData]
    valid: frozenset[str]
    limits: Mapping[str, frozenset[str]]
    default: str

    def workspace(self, request: Request) -> DialsData:
        """The request's workspace, or the 403/404 DIALS answers (never 401)."""
        header = request.headers.get("authorization")
        if not header:
            raise DialsAPIError(
                403,
                {"detail": "Authorization header not found.", "code": "authorization_not_found"},
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in self.valid:
            raise DialsAPIError(
                403,
                {"detail": "Given token not valid for any token type", "code": "token_not_valid"},
            )
        name = request.headers.get("workspace") or self.default
        if name not in self.data:
            raise DialsAPIError(404, {"detail": f"Workspace '{name}' not found"})
        allowed = self.limits.get(token.strip())
        if allowed is not None and name not in allowed:
            raise DialsAPIError(
                403,
                {"detail": f"You do not have permission to access workspace '{name}'.",
                 "code": "permission_denied"},
            )  # fmt: skip
        return self.data[name]


def _cursor_page(rows: _Rows, route: str, request: Request) -> Response:
    """One cursor page: ``page_size`` rows after ``next_token``, ``next`` an absolute URL."""
    query = dict(parse_qsl(request.url.query, keep_blank_values=True))
    try:
        size = int(query.get("page_size", DEFAULT_PAGE_SIZE))
    except ValueError:
        raise DialsAPIError(400, {"page_size": ["Enter a number."]}) from None
    size = max(1, min(size, MAX_PAGE_SIZE))  # above 500: silently capped
    mask = _mask(rows, route, query)
    if "next_token" in query:
        mask[: _position(query["next_token"]) + 1] = False
    hits = np.flatnonzero(mask)
    page, more = hits[:size], len(hits) > size
    nxt = None
    if more:
        rest = [(k, v) for k, v in query.items() if k != "next_token"]
        nxt = f"{str(request.base_url).rstrip('/')}{request.url.path}?" + urlencode(
            [*rest, ("next_token", _token(int(page[-1])))]
        )
    fields = [f for f in query.get("fields", "").split(",") if f]
    results = rows.page(page.tolist(), fields)
    body = f'{{"next":{_dumps(nxt)},"previous":null,"results":{results}}}'
    return Response(body, media_type="application/json")


def create_dials_app(
    workspaces: Mapping[str, pd.DataFrame],
    *,
    tokens: Iterable[str],
    token_workspaces: Mapping[str, Iterable[str]] | None = None,
    default_workspace: str = "tracker",
    faults: FaultPlan | None = None,
) -> FaultMiddleware:
    """The ASGI app; ``workspaces`` maps a workspace name to its histogram table (with an optional
    ``dataset`` column); ``token_workspaces`` limits tokens to some workspaces."""
    data = {name: DialsData(table) for name, table in workspaces.items()}
    valid = frozenset(tokens)
    if not valid:
        raise ValueError("the local DIALS server needs at least one token")
    limits = {t: frozenset(w) for t, w in (token_workspaces or {}).items()}
    auth = _Auth(data, valid, limits, default_workspace)
    app = FastAPI(title="DIALS (local)", docs_url=None, openapi_url=None, redoc_url=None)

    @app.exception_handler(DialsAPIError)
    async def _error(request: Request, exc: DialsAPIError) -> Response:
        if exc.html is not None:
            return Response(exc.html, status_code=exc.status, media_type="text/html")
        return _json(exc.body, exc.status)

    @app.get("/api/v1/auth/workspaces/")
    async def workspaces_view(request: Request) -> Response:
        auth.workspace(request)
        return _json({"default": default_workspace, "workspaces": sorted(data)})

    @app.get("/api/v1/mes/")
    async def mes_view(request: Request) -> Response:
        return _json(auth.workspace(request).mes)

    @app.get("/api/v1/{route}/count/")
    async def count_view(route: str, request: Request) -> Response:
        ws = auth.workspace(request)
        if route not in ("run", "lumisection"):
            raise DialsAPIError(404, None, HTML_404)
        rows = ws.route(route)
        return _json({"count": int(_mask(rows, route, dict(request.query_params)).sum())})

    @app.get("/api/v1/{route}/")
    async def list_view(route: str, request: Request) -> Response:
        ws = auth.workspace(request)
        if route not in _FILTERS:
            raise DialsAPIError(404, None, HTML_404)
        return _cursor_page(ws.route(route), route, request)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def unknown(path: str) -> Response:
        return Response(HTML_404, status_code=404, media_type="text/html")

    wrapped = FaultMiddleware(app, faults or FaultPlan())
    wrapped.data = data  # type: ignore[attr-defined]
    return wrapped


class LocalDials:
    """The local DIALS server in a thread (tests, notebooks), on 127.0.0.1 and a free port."""

    def __init__(
        self,
        workspaces: Mapping[str, pd.DataFrame],
        *,
        token: str = "dials-token",
        token_workspaces: Mapping[str, Iterable[str]] | None = None,
        default_workspace: str = "tracker",
        faults: FaultPlan | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.faults = faults or FaultPlan()
        self.token = token
        self.app = create_dials_app(
            workspaces,
            tokens=[token, *(token_workspaces or {})],
            token_workspaces=token_workspaces,
            default_workspace=default_workspace,
            faults=self.faults,
        )
        self._host, self._port = host, port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock: Any = None

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._sock.getsockname()[1]}/api/v1/"

    @property
    def requests(self) -> dict[str, int]:
        return dict(self.app.requests)

    def start(self, timeout: float = 10.0) -> LocalDials:
        from dqm_playground_ds.platform.server.runner import bind, make_server

        self._sock = bind(self._host, self._port)
        self._server = make_server(self.app)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True, name="dials"
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the local DIALS server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = None

    def __enter__(self) -> LocalDials:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    from dqm_playground_ds.platform.server.runner import bind

    p = argparse.ArgumentParser(
        prog="python -m dqm_playground_ds.platform.dials.server",
        description="A local DIALS server (in memory) for tests and offline runs.",
    )
    p.add_argument(
        "--load",
        action="append",
        default=[],
        metavar="PATH",
        help="histogram table (.parquet), legacy CSV or DQMIO .root; globs; repeatable",
    )
    p.add_argument("--me", action="append", help="only load these MEs (names or regexes)")
    p.add_argument("--dataset", default=DEFAULT_DATASET, help="dataset name of what is loaded")
    p.add_argument("--workspace", default="tracker", choices=WORKSPACES)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--token", default=os.environ.get("DIALS_TOKEN"))
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    p.add_argument(
        "--workers", type=int, default=1, help="server processes on one socket (fork; POSIX)"
    )
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)  # fmt: skip
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if not args.token:
        print("error: give --token or export DIALS_TOKEN", file=sys.stderr)
        return 2
    if args.workers < 1:
        print(f"error: --workers must be >= 1, got {args.workers}", file=sys.stderr)
        return 2
    table = _load(args.load, args.me)
    app = create_dials_app(
        {args.workspace: table.assign(dataset=args.dataset)},
        tokens=[args.token],
        default_workspace=args.workspace,
        faults=FaultPlan(latency=args.latency),
    )
    sock = bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    children = [_fork_worker(app, sock, args.log_level) for _ in range(args.workers - 1)]
    print(f"serving http://{host}:{port}/api/v1/", flush=True)
    log.info(
        "%d histograms of %s in workspace %s, %d process(es)",
        len(table), args.dataset, args.workspace, args.workers,
    )  # fmt: skip
    try:
        _serve(app, sock, args.log_level)
    finally:
        for pid in children:
            os.kill(pid, signal.SIGTERM)
        for pid in children:
            os.waitpid(pid, 0)
    return 0


def _load(paths: list[str], mes: list[str] | None) -> pd.DataFrame:
    from dqm_playground_ds.platform.server.store import expand_paths, read_histogram_file

    parts = [read_histogram_file(path, mes) for path in expand_paths(paths)]
    if parts:
        return pd.concat(parts, ignore_index=True)
    return pd.DataFrame(
        columns=["run", "lumi", "me", "dim", "entries", "x_min", "x_max", "x_bins", "y_min",
                 "y_max", "y_bins", "data", "source"]
    )  # fmt: skip


def _serve(app: Any, sock: Any, log_level: str) -> None:
    from dqm_playground_ds.platform.server.runner import make_server

    server = make_server(app, log_level="info" if log_level == "debug" else "warning")
    server.run(sockets=[sock])


def _fork_worker(app: Any, sock: Any, log_level: str) -> int:
    """One more server process on the same socket, as gunicorn's pre-loaded workers serve the
    deployed DIALS (the data is shared copy-on-write). It ends with its parent."""
    pid = os.fork()
    if pid:
        return pid
    parent = os.getppid()

    def orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=orphaned, daemon=True).start()
    try:
        _serve(app, sock, log_level)
    finally:
        os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
