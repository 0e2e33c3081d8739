"""The platform trigger over real sockets on 127.0.0.1: one run at a time, bounded queue, clear
answers to malformed, oversized, silent and concurrent clients, and only the configured command."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from dqm_playground_ds.deploy.trigger import (
    MAX_MESSAGE,
    MessageError,
    Runner,
    TriggerServer,
    default_command,
    parse,
)

PROJECT = Path(__file__).resolve().parents[2]

# Waits until a gate file exists, then records its task id and argv: runs are held and released
# by the test, so "busy" is deterministic rather than a race against a sleep.
GATED = (
    "import os, sys, time, json\n"
    "gate = sys.argv[1]\n"
    "deadline = time.time() + 30\n"
    "while not os.path.exists(gate) and time.time() < deadline:\n"
    "    time.sleep(0.02)\n"
    "with open(sys.argv[2], 'a') as f:\n"
    "    f.write(json.dumps([os.environ.get('DQM_PLAYGROUND_TASK_ID'), sys.argv[3:]]) + '\\n')\n"
    "print('done', flush=True)\n"
)


class Service:
    """A trigger server on an ephemeral 127.0.0.1 port, stopped by the test that started it."""

    def __init__(self, runner: Runner, read_timeout: float = 1.0, max_connections: int = 16):
        self.runner = runner
        self.server = TriggerServer(
            ("127.0.0.1", 0), runner, read_timeout=read_timeout, max_connections=max_connections
        )
        self.port = self.server.server_address[1]
        runner.start()
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def send(self, data: bytes, *, close_write: bool = True, timeout: float = 5.0) -> str:
        return send(self.port, data, close_write=close_write, timeout=timeout)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.runner.stop(grace=5)
        self.thread.join(5)
        assert not self.thread.is_alive() and not self.runner._worker.is_alive()

    def send_refused(self) -> bool:
        """True once stopped: nothing listens on the port any more."""
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return True
        return False


def send(port: int, data: bytes, *, close_write: bool = True, timeout: float = 5.0) -> str:
    """One request as a client sends it; the reply, or ``<reset>``."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if close_write:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # a flood or a refusal: the server answered and closed before reading all
        try:
            return _read_all(sock).decode()
        except ConnectionResetError:
            return "<reset>"


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def gated(tmp_path):
    """A service whose runs wait for ``gate``; yields (service, gate, record file)."""
    gate, record = tmp_path / "gate", tmp_path / "record.jsonl"
    command = [sys.executable, "-c", GATED, str(gate), str(record), "--the-configured", "args"]
    service = Service(Runner(command, log_dir=tmp_path / "logs", max_queue=1))
    yield service, gate, record
    gate.touch()
    service.stop()


def _records(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_run_pipeline_runs_the_configured_command_once(gated, tmp_path):
    service, gate, record = gated
    reply = service.send(b"RUN_PIPELINE\n")
    assert reply.startswith("ACCEPTED run=") and reply.endswith("\n")
    gate.touch()
    assert service.runner.wait_idle(20)
    assert _records(record) == [[None, ["--the-configured", "args"]]]
    run = service.runner.history[0]
    assert run.returncode == 0 and run.task_id is None
    assert Path(run.log_file).read_text() == "done\n"
    logged = json.loads((tmp_path / "logs" / "runs.jsonl").read_text())
    assert logged["run_id"] == reply.split("=")[1].strip() and logged["returncode"] == 0


def test_platform_style_message_without_newline(gated):
    """The platform may send the bare text and close: EOF ends the message."""
    service, gate, record = gated
    assert service.send(b"RUN_PIPELINE 17").startswith("ACCEPTED")
    gate.touch()
    assert service.runner.wait_idle(20)
    assert _records(record)[0][0] == "17"  # the task id reaches the run as an env variable only


def test_silent_sender_is_answered_after_the_read_timeout(gated):
    service, _, _ = gated
    start = time.monotonic()
    assert service.send(b"PING", close_write=False) == "PONG\n"  # no newline, socket kept open
    assert 0.9 <= time.monotonic() - start < 4


def test_concurrent_triggers_queue_then_refuse(gated):
    service, gate, record = gated
    first = service.send(b"RUN_PIPELINE 1\n")
    second = service.send(b"RUN_PIPELINE 2\n")
    again = service.send(b"RUN_PIPELINE 2\n")  # the same task while queued: not twice
    third = service.send(b"RUN_PIPELINE 3\n")
    assert first.startswith("ACCEPTED run=")
    assert second.startswith("QUEUED run=") and second.endswith("position=1\n")
    assert again == second
    running = first.split("=")[1].strip()
    assert third == f"BUSY running={running} queued=1\n"
    assert service.send(b"STATUS\n").startswith(f"STATUS running run={running} queued=1")
    gate.touch()
    assert service.runner.wait_idle(20)
    assert [r[0] for r in _records(record)] == ["1", "2"]
    assert service.send(b"STATUS\n").startswith("STATUS idle queued=0 last=")


def test_parallel_clients_get_one_run_each_at_most(gated):
    service, gate, record = gated
    replies: list[str] = []
    threads = [
        threading.Thread(
            target=lambda i=i: replies.append(service.send(f"RUN_PIPELINE {i}\n".encode()))
        )
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    kinds = sorted(r.split()[0] for r in replies)
    assert kinds == ["ACCEPTED"] + ["BUSY"] * 6 + ["QUEUED"]
    gate.touch()
    assert service.runner.wait_idle(20)
    assert len(_records(record)) == 2


@pytest.mark.parametrize(
    ("message", "answer"),
    [
        (b"run_pipeline\n", "ERROR unknown request 'run_pipeline'"),
        (b"RUN_PIPELINE; rm -rf /\n", "ERROR unknown request"),
        (b"RUN_PIPELINE $(reboot)\n", "ERROR unknown request"),
        (b"RUN_PIPELINE --env prod\n", "ERROR unknown request"),
        (b"RUN_PIPELINE 1 2\n", "ERROR unknown request"),
        (b"\xff\xfeRUN\n", "ERROR message is not ASCII"),
        (b"\x00\x01\x02\n", "ERROR unknown request"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "ERROR unknown request 'GET / HTTP/1.1'"),
        (b"A" * (MAX_MESSAGE + 1), f"ERROR message longer than {MAX_MESSAGE} bytes"),
        (b"RUN_PIPELINE" + b" " * 100_000, f"ERROR message longer than {MAX_MESSAGE} bytes"),
    ],
    ids=[
        "lowercase",
        "shell",
        "substitution",
        "options",
        "two-ids",
        "binary",
        "nul",
        "http",
        "one-byte-too-long",
        "100kB",
    ],
)
def test_malformed_and_oversized_messages_run_nothing(gated, message, answer):
    service, gate, record = gated
    assert service.send(message).startswith(answer)
    gate.touch()
    time.sleep(0.1)
    assert service.runner.history == [] and service.runner.current is None
    assert not record.exists()


def test_a_flood_is_cut_short_and_the_service_keeps_answering(gated):
    service, _, record = gated
    start = time.monotonic()
    reply = service.send(b"RUN_PIPELINE " + b"9" * 20_000_000)  # 20 MB, no newline
    assert reply in (f"ERROR message longer than {MAX_MESSAGE} bytes\n", "<reset>")
    assert time.monotonic() - start < 5
    assert service.send(b"PING\n") == "PONG\n"
    assert service.runner.history == [] and not record.exists()


def test_probe_connections_are_harmless(gated):
    """Kubernetes tcpSocket probes connect and close without a word."""
    service, _, _ = gated
    for _ in range(3):
        assert service.send(b"") == ""
    assert service.send(b"PING\n") == "PONG\n"
    assert service.runner.history == []


def test_connection_limit(tmp_path):
    """All slots held by silent clients: a new client cuts the oldest one, and is answered at once."""
    gate, record = tmp_path / "gate", tmp_path / "r"
    service = Service(
        Runner([sys.executable, "-c", GATED, str(gate), str(record)], log_dir=tmp_path / "logs"),
        read_timeout=3.0,
        max_connections=2,
    )
    try:
        idle = [socket.create_connection(("127.0.0.1", service.port)) for _ in range(2)]
        time.sleep(0.2)  # both hold a slot, silent
        start = time.monotonic()
        assert service.send(b"PING\n") == "PONG\n"
        assert time.monotonic() - start < 1.0  # not after the 3 s read timeout
        for sock in idle:
            sock.close()
    finally:
        gate.touch()
        service.stop()


def test_failed_or_missing_command_is_logged_and_service_survives(tmp_path):
    service = Service(Runner([sys.executable, "-c", "raise SystemExit(3)"], log_dir=tmp_path / "l"))
    try:
        assert service.send(b"RUN_PIPELINE\n").startswith("ACCEPTED")
        assert service.runner.wait_idle(20)
        assert service.runner.history[-1].returncode == 3
        service.runner.command = [str(tmp_path / "no-such-program")]
        assert service.send(b"RUN_PIPELINE\n").startswith("ACCEPTED")
        assert service.runner.wait_idle(20)
        assert service.runner.history[-1].returncode == 127
        assert service.send(b"PING\n") == "PONG\n"
    finally:
        service.stop()


def test_stop_terminates_a_running_pipeline(tmp_path):
    runner = Runner([sys.executable, "-c", "import time; time.sleep(60)"], log_dir=tmp_path / "l")
    service = Service(runner)
    try:
        assert service.send(b"RUN_PIPELINE\n").startswith("ACCEPTED")
        deadline = time.monotonic() + 10
        while runner._process is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        start = time.monotonic()
    finally:
        service.stop()
    assert time.monotonic() - start < 10
    assert runner.history[-1].returncode != 0
    assert service.send_refused()


def test_a_silent_client_that_keeps_its_side_open_gets_its_answer(gated, caplog):
    """The reply is sent even if the client neither closes nor reads on (no reset, no error)."""
    service, _, _ = gated
    caplog.set_level(logging.INFO, logger="dqm_playground_ds.deploy.trigger")
    with socket.create_connection(("127.0.0.1", service.port), timeout=5) as sock:
        sock.sendall(b"PING\n")
        assert sock.recv(64) == b"PONG\n"
        time.sleep(1.3)  # the server drains for 1 s, then closes
        assert sock.recv(64) == b""
    assert "could not answer" not in caplog.text


def test_task_param_is_passed_as_a_kedro_parameter(tmp_path):
    record = tmp_path / "r"
    gate = tmp_path / "gate"
    gate.touch()
    runner = Runner(
        [sys.executable, "-c", GATED, str(gate), str(record)],
        log_dir=tmp_path / "l",
        task_param="prediction_upload.task_id",
    )
    service = Service(runner)
    try:
        service.send(b"RUN_PIPELINE 42\n")
        assert runner.wait_idle(20)
        assert _records(record) == [["42", ["--params", "prediction_upload.task_id=42"]]]
    finally:
        service.stop()


def test_parse():
    assert parse(b"RUN_PIPELINE") == ("RUN_PIPELINE", None)
    assert parse(b"RUN_PIPELINE  pixel-ae.v2\r") == ("RUN_PIPELINE", "pixel-ae.v2")
    assert parse(b"  PING ") == ("PING", None)
    for bad in (b"RUN_PIPELINE x/y", b"RUN_PIPELINE " + b"1" * 65, b""):
        with pytest.raises(MessageError):
            parse(bad)
    assert default_command("data_extraction", "ci")[-4:] == [
        "--pipeline",
        "data_extraction",
        "--env",
        "ci",
    ]


@pytest.mark.slow
def test_trigger_runs_the_real_pipeline(tmp_path):
    """End to end: RUN_PIPELINE runs `kedro run --pipeline data_extraction --env ci` in a project copy."""
    if not list((PROJECT / "data" / "01_raw" / "dqmio").glob("*_ci.root")):
        pytest.skip("bundled CI sample not generated")
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(PROJECT / "pyproject.toml", project)
    shutil.copytree(PROJECT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    shutil.copytree(PROJECT / "data" / "01_raw", project / "data" / "01_raw")
    (project / "src").mkdir()
    runner = Runner(
        default_command("data_extraction", "ci"), cwd=project, log_dir=project / "logs" / "trigger"
    )
    service = Service(runner)
    try:
        assert service.send(b"RUN_PIPELINE 7\n").startswith("ACCEPTED")
        assert runner.wait_idle(120)
    finally:
        service.stop()
    run = runner.history[-1]
    assert run.returncode == 0, Path(run.log_file).read_text()[-3000:]
    index = pd.read_parquet(project / "data" / "02_intermediate" / "file_index.parquet")
    assert (index["status"] == "ok").all() and len(index) == 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_command_line_service_runs_and_stops_on_sigterm(tmp_path):
    """`python -m dqm_playground_ds.deploy.trigger ... -- COMMAND` as the container runs it."""
    port = _free_port()
    command = [
        sys.executable,
        "-c",
        "import os; print('ran', os.environ['DQM_PLAYGROUND_TASK_ID'])",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "dqm_playground_ds.deploy.trigger", "--host", "127.0.0.1",
         "--port", str(port), "--project-path", str(tmp_path), "--log-dir", "logs", "--", *command],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert send(port, b"PING\n") == "PONG\n"
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        assert send(port, b"RUN_PIPELINE 5\n").startswith("ACCEPTED")
        while "last=" not in (status := send(port, b"STATUS\n")):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert status.startswith("STATUS idle queued=0") and status.endswith("rc=0\n")
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "ran 5" in output  # the run's output is echoed with its run id
    (record,) = (tmp_path / "logs" / "runs.jsonl").read_text().splitlines()
    assert json.loads(record)["task_id"] == "5"
