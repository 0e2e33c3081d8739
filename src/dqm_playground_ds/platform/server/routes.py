"""The local platform's routes, one ``APIRouter`` per resource (``api.create_app`` assembles them).

Every route reads the server's state (store, settings, caches) from ``request.app.state.platform``,
so the routers are plain module-level objects shared by every app; what each route answers is
documented in ``api.py``. Order matters: the specific routes (``capabilities/``,
``predictions/batches/``, ``histogram_data_files/discover/``...) are included before the generic
``/api/{name}/`` ones.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response

from dqm_playground_ds.platform.endpoints import PREDICTIONS_EXTENSION, TASKS_EXTENSION
from dqm_playground_ds.platform.server.api import (
    DEPLOYED_PREDICTION_FIELDS,
    DEPLOYED_TASK_FIELDS,
    FILE_FORMATS,
    HTML_404,
    PREDICTIONS_EXTENDED,
    RESOURCES,
    APIError,
    Resource,
    Settings,
    _count_rows,
    _deployed_write,
    _json,
    _prediction_items,
    _required,
    _task_body,
    _task_record,
    list_page,
)
from dqm_playground_ds.platform.server.store import Store, now, read_histogram_file

log = logging.getLogger("dqm_playground_ds.platform.server.api")


@dataclass
class ServerState:
    """What the routes of one app share: the store, the settings, the 60 s file cache, the
    background parsers and the fault middleware (set once the app is wrapped)."""

    store: Store
    settings: Settings
    file_cache: dict[str, tuple[float, Response]] = field(default_factory=dict)
    parsers: list[threading.Thread] = field(default_factory=list)
    wrapped: Any = None

    def has(self, extension: str) -> bool:
        return extension in self.settings.extensions

    def auth(self, request: Request) -> str:
        """DRF token auth as deployed: 401 without a token or with a bad one."""
        header = request.headers.get("authorization", "")
        if not header:
            raise APIError(401, {"detail": "Authentication credentials were not provided."})
        scheme, _, key = header.partition(" ")
        if scheme != "Token" or key.strip() not in self.settings.tokens:
            raise APIError(401, {"detail": "Invalid token."})
        return "admin" if key.strip() in self.settings.admin_tokens else "user"

    def cached(self, request: Request, build: Callable[[], Response]) -> Response:
        """The deployed server caches data-file GETs for 60 s: progress polling can be stale."""
        if not request.url.path.startswith("/api/histogram_data_files/"):
            return build()
        key = str(request.url)
        hit = self.file_cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        resp = build()
        if self.settings.file_cache_ttl > 0:
            self.file_cache[key] = (time.monotonic() + self.settings.file_cache_ttl, resp)
        return resp


def state(request: Request) -> ServerState:
    platform: ServerState = request.app.state.platform
    return platform


def resource(name: str) -> Resource:
    res = RESOURCES.get(name)
    if res is None:  # no such route: Django's own HTML page
        raise APIError(404, None, HTML_404)
    return res


async def body_of(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except ValueError as exc:
        raise APIError(400, {"detail": f"JSON parse error - {exc}"}) from None


# -- capabilities (the extensions; absent on the deployed server) -----------------------------
capabilities = APIRouter()


@capabilities.get("/api/capabilities/")
async def capabilities_view(request: Request) -> Response:
    """Only a server with an extension has this route; the deployed one answers 404."""
    st = state(request)
    st.auth(request)
    if not st.settings.extensions:
        raise APIError(404, None, HTML_404)
    out: dict[str, Any] = {}
    if st.has(PREDICTIONS_EXTENSION):
        out[PREDICTIONS_EXTENSION] = {
            "create": "/api/predictions/",
            "batches": "/api/predictions/batches/",
            "doc": "docs/prediction-payload.md",
        }
    if st.has(TASKS_EXTENSION):
        out[TASKS_EXTENSION] = {"create": "/api/tasks/"}
    return _json({"extensions": out})


# -- predictions: the batches a task holds (extension) -----------------------------------------
predictions = APIRouter()


@predictions.get("/api/predictions/batches/")
async def prediction_batches(request: Request) -> Response:
    """Extension: the batches the server holds for a task, ``{batch id: predictions}``."""
    st = state(request)
    st.auth(request)
    if not st.has(PREDICTIONS_EXTENSION):
        raise APIError(404, {"detail": "Not found."})
    try:
        task = int(request.query_params.get("task", ""))
    except ValueError:
        raise APIError(400, {"task": ["A valid integer is required."]}) from None
    rows = st.store.query(
        "SELECT batch, COUNT(*) FROM predictions WHERE task = ? AND batch IS NOT NULL "
        "GROUP BY batch",
        (task,),
    )
    return _json({"task": task, "batches": {r[0]: r[1] for r in rows}})


# -- data files: discovery and background parsing ----------------------------------------------
data_files = APIRouter()


@data_files.get("/api/histogram_data_files/discover/")
async def discover(request: Request) -> Response:
    st = state(request)
    if st.auth(request) != "admin":
        raise APIError(403, {"detail": "You do not have permission to perform this action."})
    if st.settings.data_dir:
        for p in sorted(Path(st.settings.data_dir).rglob("*")):
            if p.suffix.lower() not in (".csv", ".parquet", ".root") or not p.is_file():
                continue
            dims = [d for d, tag in ((1, "_1D_"), (2, "_2D_")) if tag in p.name]
            st.store.add_data_file(
                str(p),
                entries_total=_count_rows(str(p)),
                dims=dims,
                filesize=round(p.stat().st_size / 1e6, 1),
            )
    st.file_cache.clear()
    return Response(status_code=202)  # the deployed server: 202, empty body


def _parse(st: ServerState, file_id: int, row: Mapping[str, Any], body: Mapping[str, Any]) -> None:
    """In the background, as the deployed server does: a failure is logged, never reported."""
    if st.settings.parse_delay:
        time.sleep(st.settings.parse_delay)
    try:
        table = read_histogram_file(row["filepath"])
        table = table.assign(source=row["filepath"])
        if len(table) and "dim" in table:
            table = table[table["dim"] == int(body["data_dimensionality"])]
        n = st.store.load_histograms(table, file_id=file_id)
    except Exception as exc:  # the background task dies; nobody is told
        log.warning("parsing %s failed: %s", row["filepath"], exc)
        return
    dims = sorted({int(d) for d in table["dim"]}) if len(table) else []
    with st.store.lock:
        st.store.conn.execute(
            "UPDATE histogram_data_files SET entries_total = ?, entries_processed = ?, "
            "dims = ?, granularity = ?, modified = ? WHERE id = ?",
            (n, n, ",".join(map(str, dims)), body["granularity"], now(), file_id),
        )


@data_files.post("/api/histogram_data_files/{file_id}/start_parsing/")
async def start_parsing(file_id: int, request: Request) -> Response:
    st = state(request)
    st.auth(request)
    body = await body_of(request)
    if not isinstance(body, Mapping):
        raise APIError(400, "Invalid request body")
    for name in ("granularity", "data_dimensionality", "file_format"):
        if body.get(name) in (None, ""):
            raise APIError(400, f"Missing field: {name}")
    if body["file_format"] not in FILE_FORMATS:
        raise APIError(400, f"Invalid file format: {body['file_format']}")
    rows = st.store.query("SELECT * FROM histogram_data_files WHERE id = ?", (file_id,))
    if not rows:
        raise APIError(404, {"detail": "Not found."})
    row = dict(rows[0])
    if (row["entries_processed"] or 0) > 0:
        raise APIError(400, "File has already been parsed")
    worker = threading.Thread(
        target=_parse, args=(st, file_id, row, dict(body)), daemon=True, name="parse"
    )
    st.parsers.append(worker)
    worker.start()
    return Response(status_code=202)


# -- every list endpoint: list, detail, create, delete -----------------------------------------
records = APIRouter()


@records.get("/api/{name}/")
async def list_view(name: str, request: Request) -> Response:
    st = state(request)
    st.auth(request)
    res = resource(name)
    query = parse_qsl(request.url.query, keep_blank_values=True)
    if name == "predictions" and st.has(PREDICTIONS_EXTENSION):
        res = PREDICTIONS_EXTENDED
    path = request.url.path
    return st.cached(request, lambda: _json(list_page(st.store, res, path, query)))


@records.get("/api/{name}/{key}/")
async def detail_view(name: str, key: str, request: Request) -> Response:
    st = state(request)
    st.auth(request)
    res = resource(name)
    if not res.key:
        raise APIError(404, {"detail": "Not found."})

    def build() -> Response:
        rows = st.store.query(f"SELECT {res.select} FROM {res.table} WHERE {res.key} = ?", (key,))
        if not rows:
            raise APIError(404, {"detail": "Not found."})
        return _json(res.record(st.store, rows[0]))

    return st.cached(request, build)


def _create_strategy(st: ServerState, body: Any) -> Response:
    """The deployed model has no unique name: duplicates are kept."""
    if not isinstance(body, Mapping):
        raise APIError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    _required(body, ["model"])
    with st.store.lock:
        cur = st.store.conn.execute(
            "INSERT INTO strategies (model) VALUES (?)", (str(body["model"]),)
        )
    return _json({"id": cur.lastrowid, "model": str(body["model"])}, 201)


def _create_task(st: ServerState, body: Any) -> Response:
    if not st.has(TASKS_EXTENSION):
        raise _deployed_write(body, DEPLOYED_TASK_FIELDS)
    tid = st.store.create_task(_task_body(st.store, body))
    row = st.store.query("SELECT * FROM tasks WHERE id = ?", (tid,))[0]
    return _json(_task_record(st.store, row), 201)


def _create_predictions(st: ServerState, body: Any) -> Response:
    if not st.has(PREDICTIONS_EXTENSION):
        raise _deployed_write(body, DEPLOYED_PREDICTION_FIELDS)
    task, items, batch = _prediction_items(st.store, body)
    counts = st.store.upsert_predictions(task, items, batch)
    return _json({"batch": batch, "received": len(items), **counts}, 201)


_CREATE = {"strategies": _create_strategy, "tasks": _create_task}


@records.post("/api/{name}/")
async def create_view(name: str, request: Request) -> Response:
    st = state(request)
    st.auth(request)
    res = resource(name)
    if not res.writable:
        raise APIError(405, {"detail": f'Method "POST" not allowed on {name} here.'})
    body = await body_of(request)
    return _CREATE.get(name, _create_predictions)(st, body)


@records.delete("/api/{name}/{key}/")
async def delete_view(name: str, key: int, request: Request) -> Response:
    st = state(request)
    st.auth(request)
    res = resource(name)
    if not res.writable:
        raise APIError(405, {"detail": f'Method "DELETE" not allowed on {name} here.'})
    with st.store.lock:
        cur = st.store.conn.execute(f"DELETE FROM {res.table} WHERE id = ?", (key,))
    if not cur.rowcount:
        raise APIError(404, {"detail": "Not found."})
    return Response(status_code=204)


# -- admin: request counts and the fault plan --------------------------------------------------
admin = APIRouter()


@admin.get("/_admin/stats")
async def stats(request: Request) -> Response:
    st = state(request)
    st.auth(request)
    return _json({"requests": dict(st.wrapped.requests), "faults": st.wrapped.plan.as_dict()})


@admin.get("/_admin/faults")
async def get_faults(request: Request) -> Response:
    st = state(request)
    st.auth(request)
    return _json(st.wrapped.plan.as_dict())


@admin.put("/_admin/faults")
async def put_faults(request: Request) -> Response:
    st = state(request)
    st.auth(request)
    body = await body_of(request)
    try:
        st.wrapped.plan.update(**(body or {}))
    except (TypeError, ValueError) as exc:
        raise APIError(400, {"detail": str(exc)}) from None
    return _json(st.wrapped.plan.as_dict())


ROUTERS = (capabilities, predictions, data_files, records, admin)
