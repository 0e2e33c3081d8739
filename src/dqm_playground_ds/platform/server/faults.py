"""Fault injection for the local platform: latency, 5xx, 429 + Retry-After, drops, broken bodies.

Faults apply to ``/api/`` requests only (never to ``/_admin/``), or to a narrower path prefix
(``paths``, e.g. ``/api/predictions/``). Two ways to ask for them:

- rates, for benchmarks and soak tests: each request independently gets a fault with the given
  probability (``seed`` makes the sequence reproducible);
- a script, for tests: the next requests get these faults in order, then the rates apply again.

Fault names: ``500``/``502``/``503``/``504`` (an error status), ``429`` (with ``Retry-After``),
``drop`` (connection closed before any answer), ``truncate`` (the request IS processed, then the
connection closes mid-body: the client cannot tell whether a POST took effect), ``malformed`` (a
well-framed 200 whose JSON is cut), ``ok``.

From the environment: ``DQM_PLAYGROUND_FAULTS="latency=0.05,error_rate=0.02,rate_limit=0.01,
retry_after=1,drop_rate=0.01,truncate_rate=0.01,malformed_rate=0.01,seed=1,script=drop;429"``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

FAULTS_ENV = "DQM_PLAYGROUND_FAULTS"
STATUS_FAULTS = frozenset({"500", "502", "503", "504", "429"})
FAULT_NAMES = STATUS_FAULTS | {"drop", "truncate", "malformed", "ok"}


class InjectedFault(Exception):
    """Raised inside the server to cut a connection on purpose (its log line is silenced)."""


class SilenceInjectedFaults(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, InjectedFault)


@dataclass
class FaultPlan:
    latency: float = 0.0
    error_rate: float = 0.0
    rate_limit: float = 0.0
    retry_after: float = 1.0
    drop_rate: float = 0.0
    truncate_rate: float = 0.0
    malformed_rate: float = 0.0
    seed: int | None = None
    script: list[str] = field(default_factory=list)
    paths: str = "/api/"  # faults apply to request paths starting with this

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed)
        self.injected: Counter[str] = Counter()
        self.validate()

    def validate(self) -> None:
        for name in ("error_rate", "rate_limit", "drop_rate", "truncate_rate", "malformed_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault {name} must be within [0, 1], got {value}")
        if self.latency < 0 or self.retry_after < 0:
            raise ValueError("latency and retry_after must be >= 0")
        bad = [s for s in self.script if s not in FAULT_NAMES]
        if bad:
            raise ValueError(f"unknown fault(s) {bad}; known: {sorted(FAULT_NAMES)}")

    @classmethod
    def from_string(cls, text: str) -> FaultPlan:
        """``key=value`` pairs separated by commas; ``script`` items separated by ``;``."""
        kwargs: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in types:
                raise ValueError(f"bad fault setting {part!r}; known keys: {sorted(types)}")
            if key == "script":
                kwargs[key] = [s for s in value.split(";") if s]
            elif key == "seed":
                kwargs[key] = int(value)
            elif key == "paths":
                kwargs[key] = value
            else:
                kwargs[key] = float(value)
        return cls(**kwargs)

    @classmethod
    def from_env(cls) -> FaultPlan:
        return cls.from_string(os.environ.get(FAULTS_ENV, ""))

    def update(self, **changes: Any) -> None:
        """Change settings at run time (the admin endpoint and tests use this)."""
        with self._lock:
            for key, value in changes.items():
                if key not in {f.name for f in fields(self)}:
                    raise ValueError(f"unknown fault setting {key!r}")
                setattr(self, key, list(value) if key == "script" else value)
            if "seed" in changes:
                self._rng = random.Random(self.seed)
            self.validate()

    def reset(self) -> None:
        """Back to no faults at all."""
        defaults = FaultPlan()
        self.update(**{f.name: getattr(defaults, f.name) for f in fields(self)})
        with self._lock:
            self.injected.clear()

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            out = {f.name: getattr(self, f.name) for f in fields(self)}
            out["script"] = list(self.script)
            out["injected"] = dict(self.injected)
            return out

    def next_fault(self) -> str | None:
        with self._lock:
            if self.script:
                fault: str | None = self.script.pop(0)
            else:
                fault = None
                draw = self._rng.random()
                for name, rate in (
                    ("503", self.error_rate),
                    ("429", self.rate_limit),
                    ("drop", self.drop_rate),
                    ("truncate", self.truncate_rate),
                    ("malformed", self.malformed_rate),
                ):
                    if draw < rate:
                        fault = name
                        break
                    draw -= rate
            if fault is not None and fault != "ok":
                self.injected[fault] += 1
            return None if fault == "ok" else fault


async def _send_json(send: Any, status: int, body: Any, headers: list[tuple[bytes, bytes]]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class FaultMiddleware:
    """ASGI middleware that applies a :class:`FaultPlan` to ``/api/`` requests."""

    def __init__(self, app: Any, plan: FaultPlan) -> None:
        self.app = app
        self.plan = plan
        self.requests: Counter[str] = Counter()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        self.requests[f"{scope['method']} {scope['path']}"] += 1
        if not scope["path"].startswith(self.plan.paths or "/api/"):
            await self.app(scope, receive, send)
            return
        if self.plan.latency:
            await asyncio.sleep(self.plan.latency)
        fault = self.plan.next_fault()
        if fault is None:
            await self.app(scope, receive, send)
        elif fault == "429":
            retry = self.plan.retry_after
            seconds = int(retry) if float(retry).is_integer() else retry
            await _send_json(
                send,
                429,
                {"detail": f"Request was throttled. Expected available in {seconds} seconds."},
                [(b"retry-after", str(seconds).encode())],
            )
        elif fault in STATUS_FAULTS:
            await _send_json(send, int(fault), {"detail": "Injected server error."}, [])
        elif fault == "drop":
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is not None:
                transport.abort()
            else:  # another ASGI server: at least cut the answer before its body
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"content-length", b"100")],
                    }
                )
            raise InjectedFault("dropped connection")
        else:
            await self._broken(scope, receive, send, fault)

    async def _broken(self, scope: dict[str, Any], receive: Any, send: Any, fault: str) -> None:
        """Run the request for real, then deliver its answer truncated or as cut JSON."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        cut = body[: max(1, len(body) // 2)]
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        if fault == "malformed":
            headers.append((b"content-length", str(len(cut)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": cut})
            return
        headers.append((b"content-length", str(max(len(body), len(cut) + 1)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": cut, "more_body": True})
        raise InjectedFault("connection closed mid-body")
