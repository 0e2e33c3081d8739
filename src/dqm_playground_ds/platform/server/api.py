"""The local platform's HTTP API: the deployed ML4DQM playground as it really answers, by default.

Deployed behaviour (issue 12, checked against the real Django + DRF backend), the default:

- ``Authorization: Token`` on every endpoint: 401 without a token and with a bad one, 403 only for
  a valid token lacking a permission (``discover/`` needs an admin);
- pages of 50 with a host-relative ``next``, float ``total_pages``, 404 ``Invalid page.``; lists have
  **no ordering** (no ORDER BY: rows come in a stable but arbitrary order);
- 400 on an unknown LS-histogram title, unknown filters silently ignored, a non-numeric ``__in``
  value is a 500 (Django's HTML page), ``entries`` an integer;
- ``histogram_data_files`` GETs cached for 60 s; ``?granularity=`` lists a file once per content
  (1D and 2D: twice); ``start_parsing`` takes lowercase ``csv``/``root`` only, answers 202 with an
  empty body and parses in the background (a failure is never reported); its 400 is a bare JSON
  string; ``discover`` answers 202 with an empty body;
- certifications: ``lumisection_certifications?run=`` is a 500, ``?lumisection=`` matches the
  internal LS id, ``?id=`` is ignored; run certifications carry ``rr_frac_*`` fractions and no
  ``rr_is_golden_json`` (a filter on it is ignored);
- strategies: duplicate names allowed; tasks and predictions cannot be created (400 naming the
  deployed serializer's required fields, 500 on nested writes).

Extensions, off unless asked for (``extensions=("predictions", "tasks")``) and advertised at
``GET /api/capabilities/`` (absent on the deployed server: 404):

- ``dqm-playground-ds/predictions/v1``: ``POST /api/predictions/`` takes the project's batch payload
  (``docs/prediction-payload.md``) and merges on the prediction key; ``GET
  /api/predictions/batches/?task=N`` lists the batches held (the client reconciles its journal);
- ``dqm-playground-ds/tasks/v1``: ``POST /api/tasks/`` creates a task from a split body.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException

from dqm_playground_ds.platform.endpoints import (
    CERT_FLAGS,
    ENDPOINTS,
    PREDICTIONS_EXTENSION,
    TASKS_EXTENSION,
)
from dqm_playground_ds.platform.pagination import PAGE_SIZE
from dqm_playground_ds.platform.records import data_field
from dqm_playground_ds.platform.server.faults import FaultMiddleware, FaultPlan
from dqm_playground_ds.platform.server.store import Store
from dqm_playground_ds.platform.upload import PAYLOAD_SCHEMA

log = logging.getLogger(__name__)

INVALID_PAGE = {"detail": "Invalid page."}
Row = sqlite3.Row | Mapping[str, Any]  # a stored row, or a dict of one
EXTENSIONS = {"predictions": PREDICTIONS_EXTENSION, "tasks": TASKS_EXTENSION}
HTML_500 = (
    '<!doctype html>\n<html lang="en">\n<head>\n  <title>Server Error (500)</title>\n</head>\n'
    "<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n"
)
HTML_404 = (
    '<!doctype html>\n<html lang="en">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n'
    "  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n</body>\n"
    "</html>\n"
)


def extension_names(names: Iterable[str]) -> frozenset[str]:
    """Short names (``predictions``, ``tasks``) or full ones -> the advertised names."""
    out = set()
    for name in names:
        full = EXTENSIONS.get(name, name)
        if full not in EXTENSIONS.values():
            raise ValueError(f"unknown extension {name!r}; known: {sorted(EXTENSIONS)}")
        out.add(full)
    return frozenset(out)


class APIError(Exception):
    def __init__(self, status: int, body: Any, html: str | None = None) -> None:
        self.status = status
        self.body = body
        self.html = html


def server_error() -> APIError:
    """What Django answers to an unhandled exception (DEBUG off): an HTML page, no detail."""
    return APIError(500, None, HTML_500)


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


# -- filters ----------------------------------------------------------------------------------
def _int(v: str) -> int:
    return int(v)


def _bool(v: str) -> int:
    low = v.lower()
    if low in ("true", "1"):
        return 1
    if low in ("false", "0"):
        return 0
    raise ValueError(v)


@dataclass(frozen=True)
class Filter:
    column: str
    op: str = "eq"  # eq gte lte gt lt in multi contains has ignore crash
    conv: Callable[[str], Any] = str
    choices: int | None = None  # dim whose titles are the valid choices


_OPS = {"eq": "=", "gte": ">=", "lte": "<=", "gt": ">", "lt": "<"}


def _numeric(column: str, conv: Callable[[str], Any], ops: Iterable[str]) -> dict[str, Filter]:
    return {op: Filter(column, op, conv) for op in ops}


def _ls_hist_filters(dim: int) -> dict[str, Filter]:
    fs = {"title": Filter("title", "multi", str, choices=dim)}
    for prefix, col in (
        ("lumisection__run__run_number", "run"),
        ("lumisection__ls_number", "lumisection"),
    ):
        fs[prefix] = Filter(col, "eq", _int)
        for op in ("gte", "lte", "in"):
            fs[f"{prefix}__{op}"] = Filter(col, op, _int)
    fs["entries__gte"] = Filter("entries", "gte", float)
    fs["entries__lte"] = Filter("entries", "lte", float)
    fs["source_data_file"] = Filter("source_data_file", "eq", _int)
    fs["source_data_file__filepath__contains"] = Filter(
        "(SELECT filepath FROM histogram_data_files f WHERE f.id = source_data_file)", "contains"
    )
    return fs


def _run_hist_filters() -> dict[str, Filter]:
    fs = {"title": Filter("title"), "primary_dataset": Filter("primary_dataset")}
    fs["run__run_number"] = Filter("run", "eq", _int)
    for op in ("gte", "lte", "in"):
        fs[f"run__run_number__{op}"] = Filter("run", op, _int)
    for stat in ("entries", "mean", "rms", "skewness", "kurtosis"):
        for op in ("gte", "lte"):
            fs[f"{stat}__{op}"] = Filter(stat, op, float)
    return fs


_LS_INTERNAL_ID = (
    "(SELECT l.id FROM lumisections l WHERE l.run = lumisection_certifications.run "
    "AND l.ls_number = lumisection_certifications.lumisection)"
)


def _cert_filters(ls: bool) -> dict[str, Filter]:
    """As the deployed server answers them: ``id`` ignored; for LS, ``run`` crashes (500) and
    ``lumisection`` matches the internal LS id; for runs, ``rr_is_golden_json`` is no field."""
    fs = {"id": Filter("id", "ignore"), "date": Filter("date")}
    if ls:
        fs["run"] = Filter("run", "crash")
        fs["lumisection"] = Filter(_LS_INTERNAL_ID, "eq", _int)
        for flag in ("rr_is_golden_json", *CERT_FLAGS):
            fs[flag] = Filter(flag, "eq", _bool)
    else:
        fs["run"] = Filter("run", "eq", _int)
        fs["rr_is_golden_json"] = Filter("rr_is_golden_json", "ignore")
        for flag in CERT_FLAGS:
            fs[flag] = Filter(flag, "ignore")
    return fs


# -- records ----------------------------------------------------------------------------------
def _opt_bool(v: Any) -> bool | None:
    return None if v is None else bool(v)


def _served_data(values: np.ndarray, dim: int, x_bins: int) -> list[Any]:
    """What is stored, as the platform sends it (2D as rows of x_bin values), even if inconsistent."""
    if dim == 2 and x_bins > 0 and values.size % x_bins == 0:
        return data_field(values, 2, x_bins, values.size // x_bins)
    return values.tolist()


def _hist_record(row: Row, dim: int) -> dict[str, Any]:
    values = np.frombuffer(row["data"], dtype="<f8")
    rec = {
        "id": row["id"],
        "run": row["run"],
        "lumisection": row["lumisection"],
        "title": row["title"],
        "entries": round(row["entries"] or 0),  # an integer field on the deployed server
        "data": _served_data(values, dim, row["x_bin"]),
        "x_min": row["x_min"],
        "x_max": row["x_max"],
        "x_bin": row["x_bin"],
    }
    if dim == 2:
        rec.update(y_min=row["y_min"], y_max=row["y_max"], y_bin=row["y_bin"])
    rec["source_data_file"] = row["source_data_file"]
    return rec


def _file_record(row: Row) -> dict[str, Any]:
    total, done = row["entries_total"] or 0, row["entries_processed"] or 0
    dims = [int(d) for d in (row["dims"] or "").split(",") if d]
    return {
        "id": row["id"],
        "filepath": row["filepath"],
        "filesize": row["filesize"],
        "data_era": row["data_era"],
        "entries_total": total,
        "entries_processed": done,
        "percentage_processed": round(100.0 * done / total, 1) if total else 0.0,
        "contents": [{"granularity": row["granularity"], "data_dimensionality": d} for d in dims],
        "run_histograms": row["n_run"],
        "lumisection_histograms_1d": row["n_1d"],
        "lumisection_histograms_2d": row["n_2d"],
        "created": row["created"],
        "modified": row["modified"],
    }


def _cert_record(row: Row, ls: bool) -> dict[str, Any]:
    rec = {"id": row["id"], "run": row["run"]}
    if ls:
        rec["lumisection"] = row["lumisection"]
        rec["date"] = row["date"]
        for flag in ("rr_is_golden_json", *CERT_FLAGS):
            rec[flag] = _opt_bool(row[flag])
        return rec
    rec["date"] = row["date"]
    for flag in CERT_FLAGS:  # the deployed run record: fractions of good LS, no golden flag
        rec[flag.replace("rr_is_", "rr_frac_").removesuffix("_good")] = row[flag]
    return rec


_RUN_CERT_SELECT = "c.id, c.run, c.date, c.rr_is_golden_json, " + ", ".join(
    f"(SELECT AVG(l.{f}) FROM lumisection_certifications l WHERE l.run = c.run) AS {f}"
    for f in CERT_FLAGS
)


@dataclass(frozen=True)
class Resource:
    name: str
    table: str
    record: Callable[[Store, Row], dict[str, Any]]
    filters: dict[str, Filter] = field(default_factory=dict)
    key: str = "id"
    select: str = "*"
    order: str = "id"  # a numeric column; rows are served in a scrambled (but stable) order of it
    writable: bool = False


def _task_record(store: Store, row: Row) -> dict[str, Any]:
    rec: dict[str, Any] = {"id": row["id"], "name": row["name"]}
    for role in ("training", "testing"):
        runs = store.query(
            "SELECT t.run, r.date FROM task_runs t LEFT JOIN runs r ON r.run_number = t.run "
            "WHERE t.task = ? AND t.role = ? ORDER BY t.run",
            (row["id"], role),
        )
        rec[f"{role}_runs"] = [{"run_number": r[0], "date": r[1]} for r in runs]
    for role in ("training", "testing"):
        lumis = store.query(
            "SELECT t.run, t.ls_number, l.date FROM task_lumisections t LEFT JOIN lumisections l "
            "ON l.run = t.run AND l.ls_number = t.ls_number WHERE t.task = ? AND t.role = ? "
            "ORDER BY t.run, t.ls_number",
            (row["id"], role),
        )
        rec[f"{role}_lumisections"] = [
            {"run": r[0], "ls_number": r[1], "date": r[2]} for r in lumis
        ]
    rec.update(metadata=row["metadata"], created=row["created"], modified=row["modified"])
    return rec


def _prediction_record(store: Store, row: Row) -> dict[str, Any]:
    top = json.loads(row["top_mes"] or "[]")
    linked: dict[str, list[dict[str, Any]]] = {}
    for dim in (1, 2):
        hits = []
        if top:
            marks = ",".join("?" * len(top))
            hits = store.query(
                f"SELECT id, title FROM lumisection_histograms_{dim}d WHERE run = ? AND "
                f"lumisection = ? AND title IN ({marks}) ORDER BY id",
                (row["run"], row["lumisection"], *top),
            )
        linked[f"lumisection_histograms_{dim}d"] = [{"id": h[0], "title": h[1]} for h in hits]
    return {
        "id": row["id"],
        "task": row["task"],
        "strategy": row["strategy"],
        **linked,
        "run_histograms": [],
        "created": row["created"],
        "modified": row["modified"],
        # the project's extension (docs/prediction-payload.md)
        "key": row["key"],
        "run": row["run"],
        "lumisection": row["lumisection"],
        "score": row["score"],
        "threshold": row["threshold"],
        "is_anomalous": bool(row["is_anomalous"]),
        "top_mes": top,
        "label": row["label"],
        "split": row["split"],
        "batch": row["batch"],
    }


_FILE_SELECT = (
    "f.*, (SELECT COUNT(*) FROM run_histograms h WHERE h.source_data_file = f.id) AS n_run, "
    "(SELECT COUNT(*) FROM lumisection_histograms_1d h WHERE h.source_data_file = f.id) AS n_1d, "
    "(SELECT COUNT(*) FROM lumisection_histograms_2d h WHERE h.source_data_file = f.id) AS n_2d"
)

RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        Resource(
            "runs",
            "runs",
            lambda s, r: {"run_number": r["run_number"], "date": r["date"]},
            {
                "run_number": Filter("run_number", "eq", _int),
                "run_date": Filter("run_date"),
                "year": Filter("year", "eq", _int),
                "period": Filter("period"),
                "date": Filter("date"),
                "oms_fill": Filter("oms_fill", "eq", _int),
                "oms_lumisections": Filter("oms_lumisections", "eq", _int),
                "oms_initial_lumi": Filter("oms_initial_lumi", "eq", float),
                "oms_end_lumi": Filter("oms_end_lumi", "eq", float),
            },
            key="run_number",
            order="run_number",
        ),
        Resource(
            "lumisections",
            "lumisections",
            lambda s, r: {"run": r["run"], "ls_number": r["ls_number"], "date": r["date"]},
            {
                "run": Filter("run", "eq", _int),
                "ls_number": Filter("ls_number", "eq", _int),
                "date": Filter("date"),
                "oms_zerobias_rate": Filter("oms_zerobias_rate", "eq", float),
            },
            key="",
        ),
        Resource(
            "run_histograms",
            "run_histograms",
            lambda s, r: {
                k: r[k]
                for k in (
                    "id",
                    "run",
                    "title",
                    "primary_dataset",
                    "entries",
                    "mean",
                    "rms",
                    "skewness",
                    "kurtosis",
                    "source_data_file",
                )
            },
            _run_hist_filters(),
        ),
        Resource(
            "lumisection_histograms_1d",
            "lumisection_histograms_1d",
            lambda s, r: _hist_record(r, 1),
            _ls_hist_filters(1),
        ),
        Resource(
            "lumisection_histograms_2d",
            "lumisection_histograms_2d",
            lambda s, r: _hist_record(r, 2),
            _ls_hist_filters(2),
        ),
        Resource(
            "histogram_data_files",
            "histogram_data_files f",
            lambda s, r: _file_record(r),
            {
                "filepath__contains": Filter("filepath", "contains"),
                "data_era": Filter("data_era"),
                "processing_complete": Filter(
                    "(entries_total > 0 AND entries_processed >= entries_total)", "eq", _bool
                ),
                "data_dimensionality": Filter("dims", "has"),
                "granularity": Filter("granularity"),
                "entries_total__gt": Filter("entries_total", "gt", _int),
                "entries_total__lt": Filter("entries_total", "lt", _int),
            },
            key="f.id",
            select=_FILE_SELECT,
            order="f.id",
        ),
        Resource(
            "run_certifications",
            "run_certifications c",
            lambda s, r: _cert_record(r, False),
            _cert_filters(False),
            select=_RUN_CERT_SELECT,
            order="c.id",
        ),
        Resource(
            "lumisection_certifications",
            "lumisection_certifications",
            lambda s, r: _cert_record(r, True),
            _cert_filters(True),
        ),
        Resource("tasks", "tasks", _task_record, writable=True),
        Resource(
            "strategies",
            "strategies",
            lambda s, r: {"id": r["id"], "model": r["model"]},
            writable=True,
        ),
        Resource("predictions", "predictions", _prediction_record, writable=True),
    )
}
assert set(RESOURCES) == set(ENDPOINTS), "server resources must match the contract's endpoints"

# the prediction extension adds filters on its own fields to predictions/
PREDICTIONS_EXTENDED = replace(
    RESOURCES["predictions"],
    filters={
        "task": Filter("task", "eq", _int),
        "batch": Filter("batch"),
        "key": Filter("key"),
        "strategy": Filter("strategy"),
    },
)


def _where(store: Store, res: Resource, query: list[tuple[str, str]]) -> tuple[str, list[Any]]:
    """SQL for the recognised filters of a query (unknown ones are ignored, like django-filter)."""
    clauses, params = [], []
    multi: dict[str, list[str]] = {}
    for name, value in query:
        flt = res.filters.get(name)
        if flt is None:
            continue
        if flt.op == "multi":
            multi.setdefault(name, []).append(value)
            continue
        if flt.op == "ignore":  # a filter the deployed server accepts and does not apply
            continue
        if flt.op == "crash":  # the deployed server answers 500 to it
            raise server_error()
        if flt.op == "in":
            try:
                values = [flt.conv(v) for v in value.split(",") if v != ""]
            except ValueError:  # the deployed server does not validate: the database raises
                raise server_error() from None
            clauses.append(f"{flt.column} IN ({','.join('?' * len(values))})")
            params.extend(values)
            continue
        try:
            if flt.op == "contains":
                clauses.append(f"instr({flt.column}, ?) > 0")
                params.append(value)
            elif flt.op == "has":
                clauses.append(f"instr(',' || {flt.column} || ',', ',' || ? || ',') > 0")
                params.append(str(int(value)))
            else:
                clauses.append(f"{flt.column} {_OPS[flt.op]} ?")
                params.append(flt.conv(value))
        except ValueError:
            raise APIError(400, {name: ["Enter a number."]}) from None
    for name, values in multi.items():
        flt = res.filters[name]
        if flt.choices is not None:
            known = store.titles(flt.choices)
            for v in values:
                if v not in known:
                    raise APIError(
                        400,
                        {
                            name: [
                                f"Select a valid choice. {v} is not one of the available choices."
                            ]
                        },
                    )
        clauses.append(f"{flt.column} IN ({','.join('?' * len(values))})")
        params.extend(values)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _page_links(
    path: str, query: list[tuple[str, str]], number: int, n_pages: int
) -> tuple[Any, Any]:
    rest = [(k, v) for k, v in query if k != "page"]
    nxt = f"{path}?{urlencode([('page', number + 1), *rest])}" if number < n_pages else None
    if number == 1:
        prev = None
    elif number == 2:
        prev = f"{path}?{urlencode(rest)}" if rest else path
    else:
        prev = f"{path}?{urlencode([('page', number - 1), *rest])}"
    return nxt, prev


# a file with 1D and 2D content is one row per content once the contents are joined in
_FILES_BY_CONTENT = (
    "(SELECT f0.*, d.dim FROM histogram_data_files f0 JOIN (SELECT 1 AS dim UNION ALL SELECT 2) d "
    "ON instr(',' || f0.dims || ',', ',' || d.dim || ',') > 0) f"
)


def scrambled(column: str) -> str:
    """No ORDER BY on the deployed server: a stable order that is not the id order."""
    return f"(({column}) * 2654435761) % 4294967296"


def list_page(
    store: Store, res: Resource, path: str, query: list[tuple[str, str]]
) -> dict[str, Any]:
    where, params = _where(store, res, query)
    table = res.table
    if res.name == "histogram_data_files" and any(k == "granularity" for k, _ in query):
        table = _FILES_BY_CONTENT  # the deployed join duplicates files with 1D and 2D content
    total = int(store.scalar(f"SELECT COUNT(*) FROM {table}{where}", params))
    n_pages = max(1, math.ceil(total / PAGE_SIZE))
    raw = [v for k, v in query if k == "page"]
    try:
        number = int(raw[-1]) if raw else 1
    except ValueError:
        raise APIError(404, INVALID_PAGE) from None
    if not 1 <= number <= n_pages:
        raise APIError(404, INVALID_PAGE)
    order = f"{scrambled(res.order)}, {res.order}"
    if table == res.table and res.name.startswith("lumisection_histograms"):
        # order the ids only, then fetch the page's rows: sorting rows with their bins is slow
        rows = store.query(
            f"SELECT {res.select} FROM {table} WHERE id IN (SELECT id FROM {table}{where} "
            f"ORDER BY {order} LIMIT ? OFFSET ?) ORDER BY {order}",
            [*params, PAGE_SIZE, (number - 1) * PAGE_SIZE],
        )
    else:
        rows = store.query(
            f"SELECT {res.select} FROM {table}{where} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, PAGE_SIZE, (number - 1) * PAGE_SIZE],
        )
    nxt, prev = _page_links(path, query, number, n_pages)
    return {
        "next": nxt,
        "previous": prev,
        "total": total,
        "per_page": PAGE_SIZE,
        "total_pages": round(total / PAGE_SIZE, 1),
        "results": [res.record(store, r) for r in rows],
    }


# -- writes -----------------------------------------------------------------------------------
def _required(body: Mapping[str, Any], names: Iterable[str]) -> None:
    missing = {n: ["This field is required."] for n in names if body.get(n) in (None, "")}
    if missing:
        raise APIError(400, missing)


def _task_body(store: Store, body: Any) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise APIError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    _required(body, ["name"])
    out: dict[str, Any] = {"name": str(body["name"]), "metadata": body.get("metadata") or ""}
    known = {r[0] for r in store.query("SELECT run_number FROM runs")}
    for role in ("training", "testing"):
        runs = []
        for item in body.get(f"{role}_runs") or []:
            run = item.get("run_number") if isinstance(item, Mapping) else item
            if not isinstance(run, int) or run not in known:
                raise APIError(
                    400, {f"{role}_runs": [f'Invalid pk "{run}" - object does not exist.']}
                )
            runs.append(run)
        out[f"{role}_runs"] = runs
        lumis = []
        for item in body.get(f"{role}_lumisections") or []:
            try:
                pair = (
                    (int(item["run"]), int(item["ls_number"]))
                    if isinstance(item, Mapping)
                    else (int(item[0]), int(item[1]))
                )
            except (KeyError, IndexError, TypeError, ValueError):
                raise APIError(
                    400, {f"{role}_lumisections": [f"Invalid lumisection {item!r}."]}
                ) from None
            lumis.append(pair)
        out[f"{role}_lumisections"] = lumis
    return out


def _prediction_items(store: Store, body: Any) -> tuple[int, list[dict[str, Any]], str | None]:
    if not isinstance(body, Mapping):
        raise APIError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    if body.get("schema") != PAYLOAD_SCHEMA:
        raise APIError(400, {"schema": [f"Expected {PAYLOAD_SCHEMA!r}."]})
    _required(body, ["task", "predictions"])
    task = body["task"]
    if (
        not isinstance(task, int)
        or store.scalar("SELECT id FROM tasks WHERE id = ?", (task,)) is None
    ):
        raise APIError(400, {"task": [f'Invalid pk "{task}" - object does not exist.']})
    items = body["predictions"]
    if not isinstance(items, list):
        raise APIError(400, {"predictions": ["Expected a list of items."]})
    models = {r[0] for r in store.query("SELECT model FROM strategies")}
    errors: dict[str, Any] = {}
    for pos, it in enumerate(items):
        err: dict[str, list[str]] = {}
        if not isinstance(it, Mapping):
            errors[str(pos)] = {"non_field_errors": ["Expected an object."]}
            continue
        for name in ("strategy", "run", "lumisection", "is_anomalous"):
            if it.get(name) is None:
                err[name] = ["This field is required."]
        if it.get("strategy") is not None and it["strategy"] not in models:
            err["strategy"] = [f'Invalid pk "{it["strategy"]}" - object does not exist.']
        for name in ("run", "lumisection"):
            if it.get(name) is not None and (
                not isinstance(it[name], int) or isinstance(it[name], bool)
            ):
                err[name] = ["A valid integer is required."]
        if it.get("is_anomalous") is not None and not isinstance(it["is_anomalous"], bool):
            err["is_anomalous"] = ["Must be a valid boolean."]
        for name in ("score", "threshold"):
            v = it.get(name)
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool)):
                err[name] = ["A valid number is required."]
        top = it.get("top_mes")
        if top is not None and (
            not isinstance(top, list) or not all(isinstance(t, str) for t in top)
        ):
            err["top_mes"] = ["Expected a list of strings."]
        if err:
            errors[str(pos)] = err
    if errors:
        raise APIError(400, {"predictions": errors})
    batch = body.get("batch")
    return task, list(items), str(batch) if batch is not None else None


def _count_rows(path: str) -> int:
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        with open(path, "rb") as f:
            return max(0, sum(1 for _ in f) - 1)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    return 0


@dataclass
class Settings:
    tokens: frozenset[str]
    admin_tokens: frozenset[str] = frozenset()
    data_dir: str | None = None
    file_cache_ttl: float = 60.0
    extensions: frozenset[str] = frozenset()
    parse_delay: float = 0.0


DEPLOYED_PREDICTION_FIELDS = (
    "task",
    "strategy",
    "lumisection_histograms_1d",
    "lumisection_histograms_2d",
    "run_histograms",
)
DEPLOYED_TASK_FIELDS = (
    "name",
    "training_runs",
    "testing_runs",
    "training_lumisections",
    "testing_lumisections",
)
FILE_FORMATS = ("csv", "root")  # what the deployed start_parsing accepts, lowercase only


def _deployed_write(body: Any, required: Iterable[str]) -> APIError:
    """The deployed serializers: 400 for each missing field, else a 500 on the nested write."""
    if not isinstance(body, Mapping):
        return APIError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    missing = {n: ["This field is required."] for n in required if n not in body}
    return APIError(400, missing) if missing else server_error()


def create_app(
    store: Store,
    *,
    tokens: Iterable[str],
    admin_tokens: Iterable[str] = (),
    faults: FaultPlan | None = None,
    data_dir: str | None = None,
    file_cache_ttl: float = 60.0,
    extensions: Iterable[str] = (),
    parse_delay: float = 0.0,
) -> FaultMiddleware:
    """The ASGI app: FastAPI routers (``routes.py``) wrapped in fault injection (``.plan``,
    ``.requests``).

    Without ``extensions`` it answers like the deployed playground; ``extensions=("predictions",
    "tasks")`` adds the project's contract (advertised at ``/api/capabilities/``).
    """
    from dqm_playground_ds.platform.server.routes import ROUTERS, ServerState

    settings = Settings(
        frozenset(tokens) | frozenset(admin_tokens),
        frozenset(admin_tokens),
        data_dir,
        file_cache_ttl,
        extension_names(extensions),
        float(parse_delay),
    )
    if not settings.tokens:
        raise ValueError("the local platform needs at least one token")
    app = FastAPI(
        title="ML4DQM playground (local)",
        docs_url="/_docs",
        openapi_url="/_openapi.json",
        redoc_url=None,
    )
    for router in ROUTERS:
        app.include_router(router)
    app.add_exception_handler(APIError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    state = ServerState(store, settings)
    app.state.platform = state
    wrapped = FaultMiddleware(app, faults or FaultPlan())
    state.wrapped = wrapped
    wrapped.store = store  # type: ignore[attr-defined]
    wrapped.settings = settings  # type: ignore[attr-defined]
    wrapped.parsers = state.parsers  # type: ignore[attr-defined]
    return wrapped


async def _api_error(request: Request, exc: APIError) -> Response:
    if exc.html is not None:
        return Response(exc.html, status_code=exc.status, media_type="text/html")
    headers = {"WWW-Authenticate": 'Token realm="api"'} if exc.status == 401 else None
    return _json(exc.body, exc.status, headers)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    detail = {404: "Not found.", 405: f'Method "{request.method}" not allowed.'}
    return _json(
        {"detail": detail.get(exc.status_code, exc.detail)},
        exc.status_code,
        getattr(exc, "headers", None),
    )
