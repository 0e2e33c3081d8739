"""The platform's trigger: a TCP service that runs the configured pipeline on ``RUN_PIPELINE``.

The ML4DQM playground's ``Task.trigger_pipeline()`` opens a TCP connection to the data-science
service (``DQM_PLAYGROUND_DS_ADDRESS``, default ``dqm-playground-ds:8888``) and sends the plain
text ``RUN_PIPELINE``. This service answers that, and nothing more:

* request: one ASCII line of at most 256 bytes, ended by a newline, by the client closing its side,
  or by a pause of ``read_timeout`` seconds: ``RUN_PIPELINE``, ``RUN_PIPELINE <task-id>``
  (letters, digits, ``._-``), ``STATUS`` or ``PING``;
* reply: one line, then the connection closes: ``ACCEPTED run=<id>``, ``QUEUED run=<id>
  position=<n>``, ``BUSY running=<id> queued=<n>`` (nothing will happen: try later),
  ``ERROR <reason>``, ``PONG`` or ``STATUS ...``.

Runs happen one at a time in a subprocess whose command is fixed at start-up (by default
``kedro run --pipeline P --env E``): a message can start it, never change it. A task id reaches
the run only as the ``DQM_PLAYGROUND_TASK_ID`` environment variable (and ``--params NAME=<id>``
if ``--task-param NAME`` is given). Each run's output goes to ``<log-dir>/<run-id>.log`` and a
line per run to ``<log-dir>/runs.jsonl``.

Robust to its own death and to idle clients:

* a run holds an exclusive lock on ``<log-dir>/run.lock`` that its subprocess inherits, so after a
  ``kill -9`` of the trigger the orphaned run keeps the lock, and a restarted trigger reports it
  (``BUSY running=<id>``) and starts nothing until it ends: one run at a time across restarts;
* run ids carry a number that continues from the logs already in ``<log-dir>``, so they stay
  unique across restarts;
* a connection that sends nothing is dropped after ``idle_timeout`` (1 s); when every slot is
  taken, the oldest connection still waiting for its request is cut (answered with what it sent,
  if anything) to make room, so idle connections cannot lock legitimate requests out.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import fcntl
import json
import logging
import os
import re
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

MAX_MESSAGE = 256
_REQUEST = re.compile(r"^RUN_PIPELINE(?:[ \t]+([A-Za-z0-9._-]{1,64}))?$")


class MessageError(ValueError):
    """A request that is not part of the protocol; its text is the reply's reason."""


@dataclass
class Run:
    """One requested run, and once finished its outcome."""

    run_id: str
    task_id: str | None
    requested: float
    started: float | None = None
    finished: float | None = None
    returncode: int | None = None
    log_file: str | None = None


class RunLock:
    """An exclusive ``flock`` on a file, held by the trigger and inherited by the run's process."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.fd: int | None = None

    def acquire(self, run: Run) -> bool:
        """Take the lock for ``run`` (False while another process, e.g. an orphaned run, holds it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        info = {"run_id": run.run_id, "trigger_pid": os.getpid(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)
            self.fd = None

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock when it is not us (a run left by an earlier trigger), else None."""
        if self.fd is not None or not self.path.exists():
            return None
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:  # held
                text = os.pread(fd, 4096, 0).decode(errors="replace")
                try:
                    return dict(json.loads(text))
                except ValueError:
                    return {"run_id": "unknown"}
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


_RUN_NUMBER = re.compile(r"^\d{8}T\d{6}-(\d+)\.log$")


def last_run_number(log_dir: Path) -> int:
    """The highest run number among the logs already written (run ids continue from it)."""
    best = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(log_dir):
            m = _RUN_NUMBER.match(entry.name)
            if m:
                best = max(best, int(m.group(1)))
    return best


class Runner:
    """Runs ``command`` once per accepted request, one at a time, with a bounded queue."""

    def __init__(
        self,
        command: list[str],
        *,
        cwd: Path | None = None,
        log_dir: Path = Path("logs/trigger"),
        max_queue: int = 1,
        task_param: str | None = None,
        echo: IO[str] | None = None,
    ) -> None:
        self.command = list(command)
        self.cwd = cwd
        self.log_dir = Path(log_dir)
        self.max_queue = max_queue
        self.task_param = task_param
        self.echo = echo
        self.history: list[Run] = []
        self.current: Run | None = None
        self._queue: collections.deque[Run] = collections.deque()
        self._cond = threading.Condition()
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = False
        self._count = 0
        self._lock = RunLock(self.log_dir / "run.lock")
        self._worker = threading.Thread(target=self._work, name="trigger-runner", daemon=True)

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._count = last_run_number(self.log_dir)
        self._worker.start()

    def _new_id(self) -> str:
        while True:
            self._count += 1
            run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{self._count}"
            if not (self.log_dir / f"{run_id}.log").exists():
                return run_id

    def _foreign(self) -> Run | None:
        """A run still going that an earlier trigger (killed) started: it holds the run lock."""
        info = self._lock.holder()
        if not info:
            return None
        run_id = str(info.get("run_id", "unknown"))
        ours = [self.current, *self._queue, *self.history[-1:]]
        if any(r is not None and r.run_id == run_id for r in ours):
            return None  # our own run, between taking the lock and being marked current
        return Run(run_id, None, float(info.get("since", 0.0)))

    def _active(self) -> list[Run]:
        foreign = self._foreign()
        return (
            ([foreign] if foreign else [])
            + ([self.current] if self.current else [])
            + list(self._queue)
        )

    def submit(self, task_id: str | None) -> str:
        """The reply line for a ``RUN_PIPELINE`` request."""
        with self._cond:
            if self._stopping:
                return "BUSY shutting down"
            active = self._active()
            for position, queued in enumerate(active[1:], start=1):
                if task_id is not None and queued.task_id == task_id:  # same request again
                    return f"QUEUED run={queued.run_id} position={position}"
            if len(active) > self.max_queue:
                return f"BUSY running={active[0].run_id} queued={len(active) - 1}"
            run = Run(self._new_id(), task_id, time.time())
            self._queue.append(run)
            self._cond.notify_all()
            if not active:
                return f"ACCEPTED run={run.run_id}"
            return f"QUEUED run={run.run_id} position={len(active)}"

    def status(self) -> str:
        with self._cond:
            last = self.history[-1] if self.history else None
            foreign = self._foreign()
            if foreign is not None:
                state = f"running run={foreign.run_id} (started by an earlier trigger)"
            else:
                state = f"running run={self.current.run_id}" if self.current else "idle"
            done = f" last={last.run_id} rc={last.returncode}" if last else ""
            return f"STATUS {state} queued={len(self._queue)}{done}"

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing runs or waits (for tests and orderly shutdown)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and self.current is None, timeout)

    def stop(self, grace: float = 30.0) -> None:
        """Refuse new runs, drop queued ones, stop the running one (SIGTERM, then SIGKILL)."""
        with self._cond:
            self._stopping = True
            for run in self._queue:
                log.warning("run %s dropped: service stopping", run.run_id)
            self._queue.clear()
            process = self._process
            self._cond.notify_all()
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
        if self._worker.is_alive():
            self._worker.join(grace + 5)

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stopping)
                if self._stopping:
                    return
                run = self.current = self._queue.popleft()
            if not self._wait_for_lock(run):
                return
            try:
                self._execute(run)
            except Exception:  # a broken log dir or command must not kill the service
                log.exception("run %s could not be executed", run.run_id)
                run.returncode = run.returncode if run.returncode is not None else -1
            finally:
                self._lock.release()
                self._record(run)
                with self._cond:
                    self.history.append(run)
                    self.current = None
                    self._process = None
                    self._cond.notify_all()

    def _wait_for_lock(self, run: Run, poll: float = 0.2) -> bool:
        """Wait while an orphaned run holds the lock; False if the service stops meanwhile."""
        warned = False
        while not self._lock.acquire(run):
            if not warned:
                log.warning("run %s waits: a run of an earlier trigger is still going", run.run_id)
                warned = True
            with self._cond:
                if self._cond.wait_for(lambda: self._stopping, poll):
                    self.current = None
                    return False
        return True

    def _execute(self, run: Run) -> None:
        command = list(self.command)
        if run.task_id is not None and self.task_param:
            command += ["--params", f"{self.task_param}={run.task_id}"]
        env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "DQM_TRIGGER_RUN_ID": run.run_id}
        if run.task_id is not None:
            env["DQM_PLAYGROUND_TASK_ID"] = run.task_id
        log_file = self.log_dir / f"{run.run_id}.log"
        run.log_file = str(log_file)
        run.started = time.time()
        log.info("run %s started (task %s): %s", run.run_id, run.task_id, " ".join(command))
        # the run writes its log file itself (not through a pipe to us): a run orphaned by a
        # kill -9 of the trigger keeps a working stdout and finishes normally
        with open(log_file, "w", encoding="utf-8") as out:
            try:
                process = subprocess.Popen(
                    command,
                    cwd=self.cwd,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    pass_fds=(self._lock.fd,) if self._lock.fd is not None else (),
                )
            except OSError as exc:
                out.write(f"cannot start {command[0]!r}: {exc}\n")
                run.finished, run.returncode = time.time(), 127
                log.error("run %s could not start: %s", run.run_id, exc)
                return
            with self._cond:
                self._process = process
            run.returncode = self._follow(process, log_file, run.run_id)
        run.finished = time.time()
        log.log(
            logging.INFO if run.returncode == 0 else logging.ERROR,
            "run %s finished rc=%s in %.1f s (log %s)",
            run.run_id,
            run.returncode,
            run.finished - run.started,
            log_file,
        )

    def _follow(self, process: subprocess.Popen[bytes], log_file: Path, run_id: str) -> int:
        """Wait for the run, echoing its log lines as they are written."""
        if self.echo is None:
            return process.wait()
        with open(log_file, encoding="utf-8", errors="replace") as f:
            partial = ""
            while True:
                done = process.poll() is not None
                partial += f.read()
                *lines, partial = partial.split("\n")
                for line in lines:
                    self.echo.write(f"[{run_id}] {line}\n")
                if done:
                    if partial:
                        self.echo.write(f"[{run_id}] {partial}\n")
                    return int(process.returncode)
                time.sleep(0.2)

    def _record(self, run: Run) -> None:
        try:
            with open(self.log_dir / "runs.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(asdict(run)) + "\n")
        except OSError:
            log.exception("cannot record run %s", run.run_id)


def read_message(
    sock: socket.socket,
    timeout: float,
    max_bytes: int = MAX_MESSAGE,
    idle_timeout: float | None = None,
) -> bytes:
    """One request: up to a newline, the peer's end of sending, or ``timeout`` seconds.

    A peer that sends nothing at all is given only ``idle_timeout`` seconds.
    """
    start = time.monotonic()
    deadline = start + timeout
    first_deadline = start + min(timeout, idle_timeout if idle_timeout is not None else timeout)
    buffer = b""
    while True:
        remaining = (deadline if buffer else first_deadline) - time.monotonic()
        if remaining <= 0:
            return buffer
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(max_bytes + 1 - len(buffer))
        except TimeoutError:
            return buffer
        if not chunk:
            return buffer
        buffer += chunk
        if b"\n" in buffer:
            return buffer.split(b"\n", 1)[0]
        if len(buffer) > max_bytes:
            raise MessageError(f"message longer than {max_bytes} bytes")


def parse(message: bytes) -> tuple[str, str | None]:
    """``(command, task_id)``; MessageError for anything outside the protocol."""
    try:
        text = message.decode("ascii").rstrip("\r").strip()
    except UnicodeDecodeError:
        raise MessageError("message is not ASCII") from None
    if text in ("PING", "STATUS"):
        return text, None
    match = _REQUEST.match(text)
    if not match:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise MessageError(f"unknown request {shown!r}: expected RUN_PIPELINE [task-id]")
    return "RUN_PIPELINE", match.group(1)


class _Handler(socketserver.BaseRequestHandler):
    server: TriggerServer

    def handle(self) -> None:
        peer = "{}:{}".format(*self.client_address[:2])
        self.server.reading(self.request, True)
        try:
            try:
                message = read_message(
                    self.request, self.server.read_timeout, idle_timeout=self.server.idle_timeout
                )
            finally:
                self.server.reading(self.request, False)
            if not message:
                log.debug("connection from %s sent nothing (probe?)", peer)
                return
            command, task_id = parse(message)
        except MessageError as exc:
            reply = f"ERROR {exc}"
            log.warning("refused request from %s: %s", peer, exc)
        except OSError as exc:
            log.debug("connection from %s failed while reading: %s", peer, exc)
            return
        else:
            if command == "PING":
                reply = "PONG"
            elif command == "STATUS":
                reply = self.server.runner.status()
            else:
                reply = self.server.runner.submit(task_id)
                log.info("RUN_PIPELINE from %s (task %s): %s", peer, task_id, reply)
        try:
            self.request.settimeout(self.server.read_timeout)
            self.request.sendall(reply.encode("ascii") + b"\n")
            _close_gently(self.request)
        except OSError as exc:  # the platform may not wait for the answer
            log.info("could not answer %s (%s): %s", peer, exc, reply)


def _close_gently(sock: socket.socket, limit: int = 65536) -> None:
    """Half-close, then drain what the client still sends, so our reply is not lost to a reset."""
    sock.shutdown(socket.SHUT_WR)
    sock.settimeout(1.0)
    drained = 0
    while drained < limit:
        try:
            chunk = sock.recv(4096)
        except OSError:  # a client that keeps its side open, silent, has had its answer
            return
        if not chunk:
            return
        drained += len(chunk)


class TriggerServer(socketserver.ThreadingTCPServer):
    """Bounded threads; when all are taken the oldest connection still reading is cut for a new one.

    A client gets ``BUSY too many connections`` only if every slot is busy answering.
    """

    allow_reuse_address = True
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        runner: Runner,
        *,
        read_timeout: float = 5.0,
        max_connections: int = 64,
        idle_timeout: float = 1.0,
    ) -> None:
        self.runner = runner
        self.read_timeout = read_timeout
        self.idle_timeout = idle_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._reading: dict[int, tuple[float, socket.socket]] = {}
        self._reading_lock = threading.Lock()
        super().__init__(address, _Handler)

    def reading(self, sock: socket.socket, active: bool) -> None:
        """Track the connections still waiting for their request (the ones that may be cut)."""
        with self._reading_lock:
            if active:
                self._reading[id(sock)] = (time.monotonic(), sock)
            else:
                self._reading.pop(id(sock), None)

    def _cut_oldest_reader(self) -> bool:
        with self._reading_lock:
            if not self._reading:
                return False
            key = min(self._reading, key=lambda k: self._reading[k][0])
            _, sock = self._reading.pop(key)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RD)  # its handler answers what it got, then closes
        return True

    def process_request(self, request: Any, client_address: Any) -> None:
        acquired = self._slots.acquire(blocking=False)
        if not acquired and self._cut_oldest_reader():
            acquired = self._slots.acquire(timeout=2.0)
        if not acquired:
            try:
                request.settimeout(1.0)
                request.sendall(b"BUSY too many connections\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def default_command(pipeline: str, env: str | None) -> list[str]:
    command = [sys.executable, "-m", "kedro", "run", "--pipeline", pipeline]
    return command + (["--env", env] if env else [])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dqm_playground_ds.deploy.trigger",
        description="Run the configured Kedro pipeline when the platform sends RUN_PIPELINE over TCP.",
        epilog="A command after '--' replaces the default `kedro run --pipeline P --env E`.",
    )
    env = os.environ.get
    p.add_argument(
        "--host",
        default=env("DQM_TRIGGER_HOST", "0.0.0.0"),
        help="bind address (default: %(default)s)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=int(env("DQM_TRIGGER_PORT", "8888")),
        help="(default: %(default)s)",
    )
    p.add_argument(
        "--pipeline",
        default=env("DQM_TRIGGER_PIPELINE", "__default__"),
        help="(default: %(default)s)",
    )
    p.add_argument(
        "--env",
        default=env("KEDRO_ENV"),
        help="Kedro environment (default: $KEDRO_ENV, else Kedro's)",
    )
    p.add_argument(
        "--project-path",
        type=Path,
        default=Path.cwd(),
        help="where the command runs (default: cwd)",
    )
    p.add_argument(
        "--log-dir", type=Path, default=Path("logs/trigger"), help="run logs (default: %(default)s)"
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=1,
        help="runs that may wait behind the running one (default: %(default)s)",
    )
    p.add_argument("--task-param", help="also pass a task id as kedro run --params NAME=<id>")
    p.add_argument(
        "--read-timeout",
        type=float,
        default=5.0,
        help="seconds to wait for a request (default: %(default)s)",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=1.0,
        help="seconds a connection may stay silent before it is dropped (default: %(default)s)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=64,
        help="connections served at once (default: %(default)s)",
    )
    p.add_argument("command", nargs="*", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    command = args.command or default_command(args.pipeline, args.env)
    log_dir = args.log_dir if args.log_dir.is_absolute() else args.project_path / args.log_dir
    runner = Runner(
        command,
        cwd=args.project_path,
        log_dir=log_dir,
        max_queue=args.max_queue,
        task_param=args.task_param,
        echo=sys.stdout,
    )
    server = TriggerServer(
        (args.host, args.port),
        runner,
        read_timeout=args.read_timeout,
        idle_timeout=args.idle_timeout,
        max_connections=args.max_connections,
    )
    runner.start()

    def stop(signum: int, _frame: Any) -> None:
        log.info("signal %s: stopping", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    log.info("listening on %s:%s; RUN_PIPELINE runs: %s", host, port, " ".join(command))
    try:
        server.serve_forever()
    finally:
        server.server_close()
        runner.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
