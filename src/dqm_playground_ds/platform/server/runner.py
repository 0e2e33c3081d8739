"""Run the local platform in a background thread (tests, notebooks) or in the foreground (CLI).

It always listens on the socket it is given or binds itself, by default 127.0.0.1 on a free port, so
parallel tests never collide and nothing listens beyond the machine unless asked.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any

import pandas as pd
import uvicorn

from dqm_playground_ds.platform.server.api import create_app
from dqm_playground_ds.platform.server.faults import FaultPlan, SilenceInjectedFaults
from dqm_playground_ds.platform.server.store import Store

_silence = SilenceInjectedFaults()


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(256)
    sock.set_inheritable(True)
    return sock


def make_server(app: Any, log_level: str = "warning") -> uvicorn.Server:
    logging.getLogger("uvicorn.error").addFilter(_silence)
    config = uvicorn.Config(
        app,
        log_level=log_level,
        lifespan="off",
        access_log=False,
        timeout_keep_alive=30,
        backlog=256,
    )
    return uvicorn.Server(config)


class LocalPlatform:
    """The local platform server, in a thread::

        with LocalPlatform(histograms=table, token="t") as platform:
            client = PlaygroundClient(platform.url, "t")

    ``faults`` (a :class:`FaultPlan`) can be changed while it runs: ``platform.faults.update(...)``.
    By default it answers like the deployed playground; ``extensions=("predictions", "tasks")``
    adds the project's upload contract (see ``api.py``).
    """

    def __init__(
        self,
        db: str = ":memory:",
        *,
        token: str = "dev-token",
        admin_token: str | None = None,
        histograms: pd.DataFrame | None = None,
        task_files: Iterable[str] = (),
        faults: FaultPlan | None = None,
        data_dir: str | None = None,
        file_cache_ttl: float = 60.0,
        extensions: Iterable[str] = (),
        parse_delay: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.store = Store(db)
        if histograms is not None:
            self.store.load_histograms(histograms)
        for path in task_files:
            self.store.load_task_file(path)
        self.faults = faults or FaultPlan()
        self.token = token
        self.app = create_app(
            self.store,
            tokens=[token],
            admin_tokens=[admin_token] if admin_token else [],
            faults=self.faults,
            data_dir=data_dir,
            file_cache_ttl=file_cache_ttl,
            extensions=extensions,
            parse_delay=parse_delay,
        )
        self._host, self._port = host, port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("the local platform is not running")
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def requests(self) -> dict[str, int]:
        """Requests per ``"METHOD /path"`` seen by the API (faulted ones included)."""
        return dict(self.app.requests)

    def start(self, timeout: float = 10.0) -> LocalPlatform:
        self._sock = bind(self._host, self._port)
        self._server = make_server(self.app)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            daemon=True,
            name="local-platform",
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the local platform did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        for worker in getattr(self.app, "parsers", []):
            worker.join(timeout=10)  # background parsing must not outlive the store
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = None
        self.store.close()

    def __enter__(self) -> LocalPlatform:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
