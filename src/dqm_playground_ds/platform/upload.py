"""Prediction upload: the payload the project sends, and an idempotent, resumable batched upload.

The deployed platform cannot store predictions (its model has no score/threshold/verdict/LS fields
and its serializer rejects every body), so the project defines the payload
(``docs/prediction-payload.md``) as an extension a server advertises at ``/api/capabilities/``. The
upload checks that first and, where it is missing, stops before writing anything. Three properties
make a re-run safe:

- every prediction has a stable key ``<task id>/<strategy>/<run>/<lumisection>``; the server merges
  on that key, so sending a prediction twice never duplicates it;
- batches are deterministic (sorted, fixed size) and identified by a hash of their content; a local
  journal records each batch the server acknowledged, so an interrupted upload resumes with the
  first unacknowledged batch;
- the journal is reconciled with the batches the server holds (by batch id, the idempotency key)
  before anything is skipped: a server that lost what it stored gets it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from dqm_playground_ds.platform.endpoints import PREDICTIONS_EXTENSION
from dqm_playground_ds.platform.errors import (
    CapabilityError,
    NotFoundError,
    PlaygroundError,
    ResponseError,
)

if TYPE_CHECKING:
    from dqm_playground_ds.platform.client import PlaygroundClient

log = logging.getLogger(__name__)

PAYLOAD_SCHEMA = PREDICTIONS_EXTENSION  # the payload's version is the extension's name
PREDICTIONS_PATH = "/api/predictions/"
BATCHES_PATH = "/api/predictions/batches/"
REQUIRED_COLUMNS = ("run", "lumi", "strategy", "score", "threshold", "is_anomalous")
OPTIONAL_COLUMNS = ("top_mes", "label", "split")
ITEM_FIELDS = (
    "strategy",
    "run",
    "lumisection",
    "score",
    "threshold",
    "is_anomalous",
    "top_mes",
    "label",
    "split",
)


class PayloadError(ValueError):
    """A predictions table or payload does not follow the upload contract."""


def _opt_float(value: Any) -> float | None:
    if value is None or value is pd.NA:
        return None
    out = float(value)
    return None if math.isnan(out) else out


def _opt_str(value: Any) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _mes(value: Any, limit: int | None) -> list[str]:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        items = [value]
    else:
        items = [str(v) for v in np.asarray(value, dtype=object).reshape(-1)]
    return items[:limit] if limit is not None else items


def _items(df: pd.DataFrame, max_top_mes: int | None) -> list[dict[str, Any]]:
    """One payload item per row of a filtered, sorted predictions table."""
    cols: dict[str, Any] = {
        c: df[c].to_numpy() if c in df.columns else None
        for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
    }
    items = []
    for i in range(len(df)):
        items.append(
            {
                "strategy": str(cols["strategy"][i]),
                "run": int(cols["run"][i]),
                "lumisection": int(cols["lumi"][i]),
                "score": _opt_float(cols["score"][i]),
                "threshold": _opt_float(cols["threshold"][i]),
                "is_anomalous": bool(cols["is_anomalous"][i]),
                "top_mes": _mes(cols["top_mes"][i], max_top_mes)
                if cols["top_mes"] is not None
                else [],
                "label": _opt_str(cols["label"][i]) if cols["label"] is not None else None,
                "split": _opt_str(cols["split"][i]) if cols["split"] is not None else None,
            }
        )
    return items


def build_payload(
    predictions: pd.DataFrame,
    *,
    task: int | str | None = None,
    dry_run: bool = True,
    batch_size: int = 500,
    strategies: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
    only_anomalous: bool = False,
    max_top_mes: int | None = 5,
) -> dict[str, Any]:
    """The upload document for a predictions table (one row per LS and strategy).

    Rows are filtered (``strategies``, ``splits``, ``only_anomalous``) and sorted by strategy, run,
    LS so that batches are the same from one run to the next. Missing scores become ``null``.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in predictions.columns]
    if missing:
        raise PayloadError(
            f"predictions table lacks column(s) {missing}; has {list(predictions.columns)}"
        )
    if int(batch_size) < 1:
        raise PayloadError(f"batch_size must be >= 1, got {batch_size}")
    df = predictions
    if strategies is not None:
        df = df[df["strategy"].isin(list(strategies))]
    if splits is not None:
        if "split" not in df.columns:
            raise PayloadError("splits is set but the predictions table has no 'split' column")
        df = df[df["split"].isin(list(splits))]
    if df["is_anomalous"].isna().any():
        row = df[df["is_anomalous"].isna()].iloc[0]
        raise PayloadError(f"is_anomalous is missing for run {row['run']} LS {row['lumi']}")
    if only_anomalous:
        df = df[df["is_anomalous"].astype(bool)]
    dup = df.duplicated(["strategy", "run", "lumi"], keep=False)
    if dup.any():
        first = df[dup].iloc[0]
        raise PayloadError(
            f"{int(dup.sum())} rows repeat a (strategy, run, LS), e.g. {first['strategy']!r} run "
            f"{first['run']} LS {first['lumi']}: each prediction must be unique"
        )
    items = _items(df.sort_values(["strategy", "run", "lumi"], kind="stable"), max_top_mes)
    return {
        "schema": PAYLOAD_SCHEMA,
        "task": task,
        "dry_run": bool(dry_run),
        "batch_size": int(batch_size),
        "n_predictions": len(items),
        "strategies": sorted({it["strategy"] for it in items}),
        "predictions": items,
    }


def validate_payload(payload: Mapping[str, Any]) -> None:
    """Raise :class:`PayloadError` unless ``payload`` is an upload document of this version."""
    if not isinstance(payload, Mapping) or payload.get("schema") != PAYLOAD_SCHEMA:
        got = payload.get("schema") if isinstance(payload, Mapping) else type(payload).__name__
        raise PayloadError(f"not a {PAYLOAD_SCHEMA} payload (schema {got!r})")
    items = payload.get("predictions")
    if not isinstance(items, list):
        raise PayloadError("payload.predictions must be a list")
    if not isinstance(payload.get("batch_size"), int) or payload["batch_size"] < 1:
        raise PayloadError(
            f"payload.batch_size must be a positive integer: {payload.get('batch_size')!r}"
        )
    for pos, item in enumerate(items):
        lacking = [
            f for f in ("strategy", "run", "lumisection", "is_anomalous") if item.get(f) is None
        ]
        if lacking:
            raise PayloadError(f"prediction #{pos} lacks {lacking}: {item}")


def prediction_key(task_id: int, strategy: str, run: int, lumisection: int) -> str:
    """The identity of a prediction on the platform; the server merges on it."""
    return f"{task_id}/{strategy}/{run}/{lumisection}"


def batch_id(task_id: int, items: Sequence[Mapping[str, Any]]) -> str:
    canonical = json.dumps(
        {"task": task_id, "predictions": list(items)}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def make_batches(
    items: Sequence[Mapping[str, Any]], task_id: int, batch_size: int
) -> list[tuple[str, list[dict[str, Any]]]]:
    """``(batch id, items with keys)`` in order; the same input always gives the same batches."""
    out = []
    for start in range(0, len(items), batch_size):
        chunk = [
            {
                "key": prediction_key(task_id, it["strategy"], it["run"], it["lumisection"]),
                **{f: it.get(f) for f in ITEM_FIELDS},
            }
            for it in items[start : start + batch_size]
        ]
        out.append((batch_id(task_id, chunk), chunk))
    return out


class UploadJournal:
    """Append-only JSON-lines record of the batches a server acknowledged.

    Each line is flushed and fsynced before the next batch is sent, so a crash loses at most the
    acknowledgement of the batch in flight, which the server then merges when it is sent again.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def entries(self) -> Iterable[dict[str, Any]]:
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:  # a line cut by a crash
                continue
        return out

    def acknowledged(self, target: str) -> set[str]:
        return {e["batch"] for e in self.entries() if e.get("target") == target and "batch" in e}

    def record(self, entry: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(dict(entry), sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())


@dataclass
class UploadReport:
    target: str
    task: int
    n_predictions: int = 0
    n_batches: int = 0
    sent: int = 0
    skipped: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    resent: int = 0  # batches the journal had but the server no longer held
    on_server: int = 0  # batches not in the journal that the server already held in full
    strategies_created: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_task(client: PlaygroundClient, task: int | str | None) -> int:
    """The platform id of ``task`` (an id or a unique name); every prediction belongs to a task."""
    if task is None:
        raise PayloadError(
            "the payload names no task: the platform ties every prediction to a task "
            "(set prediction_upload.task to a task id or name)"
        )
    try:
        record = client.task(task)
    except NotFoundError as exc:
        raise PlaygroundError(f"{client.base_url}: no task {task!r}") from exc
    return int(record["id"])


def check_capability(client: PlaygroundClient) -> dict[str, Any]:
    """The server's description of the prediction extension, or :class:`CapabilityError`."""
    extensions = client.capabilities()
    if PAYLOAD_SCHEMA in extensions:
        return dict(extensions[PAYLOAD_SCHEMA] or {})
    offered = sorted(extensions) or "none (no /api/capabilities/ route)"
    raise CapabilityError(
        f"{client.base_url} cannot store predictions: it does not offer the "
        f"'{PAYLOAD_SCHEMA}' extension (extensions offered: {offered}). The deployed ML4DQM "
        "playground's Prediction model has no score, threshold, verdict or lumisection field "
        "and its predictions/ endpoint rejects every body (400 'This field is required.' for "
        "strategy, run_histograms, lumisection_histograms_1d/2d; 500 on nested writes). Nothing "
        "was sent and nothing was created on the server (no strategy, no prediction); see "
        "docs/prediction-payload.md"
    )


def server_batches(
    client: PlaygroundClient, task_id: int, path: str = BATCHES_PATH
) -> dict[str, int]:
    """``{batch id: predictions held}`` for a task, as the server reports it."""
    body = client.request("GET", path, params=[("task", str(task_id))])
    batches = body.get("batches") if isinstance(body, dict) else None
    if not isinstance(batches, dict):
        raise ResponseError(f"{client.url(path)}: expected {{'batches': {{...}}}}, got {body!r}")
    return {str(k): int(v) for k, v in batches.items()}


def _check_ack(resp: Any, bid: str, n: int) -> dict[str, int]:
    counts = resp if isinstance(resp, dict) else {}
    try:
        out = {k: int(counts[k]) for k in ("created", "updated", "unchanged")}
    except (KeyError, TypeError, ValueError) as exc:
        raise ResponseError(f"prediction batch {bid[:12]}: unexpected answer {resp!r}") from exc
    if counts.get("batch") not in (None, bid) or sum(out.values()) != n:
        raise ResponseError(
            f"prediction batch {bid[:12]}: the server acknowledged {counts!r} for {n} predictions"
        )
    return out


def upload_predictions(
    client: PlaygroundClient,
    payload: Mapping[str, Any],
    *,
    journal: str | os.PathLike[str] | None = None,
) -> UploadReport:
    """Check the server can store predictions, create missing strategies, then POST the batches
    the server does not hold yet.

    Order matters: the capability check comes before any write, so a server that cannot store
    predictions (the deployed playground) gets nothing, not even a strategy.
    """
    validate_payload(payload)
    extension = check_capability(client)
    task_id = resolve_task(client, payload.get("task"))
    items = payload["predictions"]
    report = UploadReport(target=client.base_url, task=task_id, n_predictions=len(items))
    for strategy in sorted({it["strategy"] for it in items}):
        _, created = client.ensure_strategy(strategy)
        if created:
            report.strategies_created.append(strategy)
            log.info("created strategy %r on %s", strategy, client.base_url)
    batches = make_batches(items, task_id, int(payload["batch_size"]))
    report.n_batches = len(batches)
    book = UploadJournal(journal) if journal is not None else None
    done = book.acknowledged(client.base_url) if book is not None else set()
    held = server_batches(client, task_id, str(extension.get("batches") or BATCHES_PATH))
    bar = tqdm(batches, desc="uploading predictions", unit="batch", disable=not client.progress)
    for bid, chunk in bar:
        if held.get(bid, 0) >= len(chunk):
            if bid in done:
                report.skipped += 1
            else:
                report.on_server += 1
            continue
        if bid in done:
            log.warning(
                "batch %s: the journal says %s acknowledged it, but the server holds %d of its "
                "%d predictions (it lost them?): sending it again",
                bid[:12], client.base_url, held.get(bid, 0), len(chunk),
            )  # fmt: skip
            report.resent += 1
        _send_batch(client, task_id, bid, chunk, book, report)
    if report.skipped or report.on_server:
        log.info(
            "%d of %d batch(es) were already on the server (%d of them in the journal %s)",
            report.skipped + report.on_server,
            report.n_batches,
            report.skipped,
            journal,
        )
    return report


def _send_batch(
    client: PlaygroundClient,
    task_id: int,
    bid: str,
    chunk: list[dict[str, Any]],
    book: UploadJournal | None,
    report: UploadReport,
) -> None:
    """POST one batch under its idempotency key, check the answer, journal it, count it."""
    body = {"schema": PAYLOAD_SCHEMA, "task": task_id, "batch": bid, "predictions": chunk}
    resp = client.request(
        "POST",
        PREDICTIONS_PATH,
        json_body=body,
        idempotent=True,
        headers={"Idempotency-Key": bid},
    )
    counts = _check_ack(resp, bid, len(chunk))
    if book is not None:
        book.record(
            {
                "target": client.base_url,
                "task": task_id,
                "batch": bid,
                "n": len(chunk),
                **counts,
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
    report.sent += 1
    for k, v in counts.items():
        setattr(report, k, getattr(report, k) + v)
