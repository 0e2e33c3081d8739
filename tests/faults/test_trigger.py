"""Item 8: the trigger under idle connections and after ``kill -9`` (real sockets on 127.0.0.1,
real trigger processes): legitimate requests are answered, one run at a time, unique run ids."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from dqm_playground_ds.deploy.trigger import Runner, TriggerServer

# A run that records its start, waits for the gate file, records its end.
GATED = (
    "import json, os, sys, time\n"
    "gate, record = sys.argv[1], sys.argv[2]\n"
    "def note(what):\n"
    "    with open(record, 'a') as f:\n"
    "        f.write(json.dumps([what, os.environ['DQM_TRIGGER_RUN_ID'], time.time()]) + '\\n')\n"
    "note('start')\n"
    "deadline = time.time() + 60\n"
    "while not os.path.exists(gate) and time.time() < deadline:\n"
    "    time.sleep(0.02)\n"
    "print('run output after the wait', flush=True)\n"
    "note('end')\n"
)


def _send(port: int, message: bytes, timeout: float = 5.0) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(message)
        chunks = []
        try:
            while chunk := sock.recv(4096):
                chunks.append(chunk)
        except ConnectionResetError:
            return "<reset>"
        return b"".join(chunks).decode()


class _Service:
    def __init__(self, tmp_path: Path, max_connections: int) -> None:
        gate = tmp_path / "gate"
        command = [sys.executable, "-c", GATED, str(gate), str(tmp_path / "record")]
        self.runner = Runner(command, log_dir=tmp_path / "logs")
        self.server = TriggerServer(
            ("127.0.0.1", 0), self.runner, read_timeout=5.0, max_connections=max_connections
        )
        self.port = self.server.server_address[1]
        self.runner.start()
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.gate = gate

    def stop(self) -> None:
        self.gate.touch()
        self.server.shutdown()
        self.server.server_close()
        self.runner.stop(grace=5)
        self.thread.join(5)


def test_idle_connections_and_an_attacker_reopening_them_do_not_lock_out_pings(tmp_path):
    service = _Service(tmp_path, max_connections=16)
    stop = threading.Event()
    held: list[socket.socket] = []

    def attacker() -> None:  # keeps 16 silent connections open, re-opening any that is cut
        while not stop.is_set():
            for sock in list(held):
                sock.setblocking(False)
                try:
                    sock.recv(64)  # data (an answer) or b"" (closed): the slot is lost, re-open
                except BlockingIOError:
                    continue
                except OSError:
                    pass
                held.remove(sock)
                sock.close()
            while len(held) < 16 and not stop.is_set():
                held.append(socket.create_connection(("127.0.0.1", service.port)))
            time.sleep(0.01)

    thread = threading.Thread(target=attacker, daemon=True)
    try:
        held.extend(socket.create_connection(("127.0.0.1", service.port)) for _ in range(16))
        time.sleep(0.3)  # all 16 slots are taken by silent connections
        thread.start()
        answers = [_send(service.port, b"PING\n") for _ in range(20)]
        assert answers == ["PONG\n"] * 20
    finally:
        stop.set()
        thread.join(5)
        for sock in held:
            sock.close()
        service.stop()


def test_an_idle_connection_is_closed_quickly(tmp_path):
    service = _Service(tmp_path, max_connections=16)
    try:
        with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
            start = time.monotonic()
            assert sock.recv(1) == b""  # closed by the server, not by our timeout
            assert time.monotonic() - start < 3.0
    finally:
        service.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_trigger(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", GATED, str(tmp_path / "gate"), str(tmp_path / "record")]
    cli = [sys.executable, "-m", "dqm_playground_ds.deploy.trigger", "--host", "127.0.0.1"]
    cli += ["--port", str(port), "--log-dir", str(tmp_path / "logs"), "--max-queue", "1"]
    process = subprocess.Popen(
        [*cli, "--", *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if _send(port, b"PING\n", timeout=1) == "PONG\n":
                return process
        except OSError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "trigger did not start"
        time.sleep(0.1)


def _records(tmp_path: Path) -> list[list]:
    path = tmp_path / "record"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _wait(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_kill_9_of_the_trigger_then_restart_runs_one_at_a_time_with_unique_ids(tmp_path):
    port = _free_port()
    first = _start_trigger(tmp_path, port)
    second = None
    try:
        accepted = _send(port, b"RUN_PIPELINE\n")
        assert accepted.startswith("ACCEPTED run=")
        run1 = accepted.split("=", 1)[1].strip()
        _wait(lambda: len(_records(tmp_path)) == 1)  # the run has started
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        second = _start_trigger(tmp_path, port)
        assert _send(port, b"STATUS\n").startswith(f"STATUS running run={run1} ")
        queued = _send(port, b"RUN_PIPELINE\n")
        assert queued.startswith("QUEUED run=") and queued.endswith(" position=1\n")
        run2 = queued.split("run=", 1)[1].split()[0]
        assert run2 != run1
        assert int(run2.rsplit("-", 1)[1]) > int(run1.rsplit("-", 1)[1])
        assert _send(port, b"RUN_PIPELINE\n").startswith(f"BUSY running={run1} ")
        time.sleep(1.0)
        assert [r[0] for r in _records(tmp_path)] == ["start"]  # no second, concurrent run
        (tmp_path / "gate").touch()
        _wait(lambda: len(_records(tmp_path)) == 4)
        events = _records(tmp_path)
        assert [(e[0], e[1]) for e in events] == [
            ("start", run1),
            ("end", run1),
            ("start", run2),
            ("end", run2),
        ]
        assert events[2][2] >= events[1][2]
        # the orphaned run finished normally: its output reached its log
        assert "run output after the wait" in (tmp_path / "logs" / f"{run1}.log").read_text()
    finally:
        (tmp_path / "gate").touch()
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
