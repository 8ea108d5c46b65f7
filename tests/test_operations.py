"""Operating the daemon as a service: systemd's notify socket and watchdog, SIGHUP reload, log lines."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from scheduler.daemon import Daemon
from scheduler.logs import JsonFormatter, TextFormatter
from tests.booking import book, seed
from tests.conftest import own_names, sql, wait_until
from tests.pipeline import add_workflow, make_config
from tests.test_daemon import END, START, hook_workflow, receiver, start_daemon, stop_daemon  # noqa: F401

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "apptflow.service"


class NotifySocket:
    """What systemd would receive on $NOTIFY_SOCKET: each datagram with the time it came."""

    def __init__(self):
        self.directory = tempfile.mkdtemp(prefix="apptflow-notify-")
        self.path = os.path.join(self.directory, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.received: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.received.append((time.monotonic(), data.decode()))

    def times(self, message: str, after: float = 0.0) -> list[float]:
        return [at for at, text in list(self.received) if text == message and at >= after]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def notify_socket():
    sock = NotifySocket()
    yield sock
    sock.close()


def hold_the_consumer(engine, backend, seconds: float) -> None:
    """Another session locks what the consumer loop needs, for *seconds*: its next statement waits."""
    with engine.connect() as conn:
        if backend == "postgresql":
            conn.execute(text("LOCK TABLE change_events IN ACCESS EXCLUSIVE MODE"))
        elif backend == "mariadb":
            conn.execute(text(own_names(conn, "LOCK TABLES change_events WRITE")))
        else:
            conn.execute(text("SELECT 1 FROM change_events LIMIT 1"))  # BEGIN IMMEDIATE: SQLite's write lock
        time.sleep(seconds)
        conn.rollback()
        if backend == "mariadb":
            conn.execute(text("UNLOCK TABLES"))  # a table lock outlives the transaction there


def test_the_watchdog_is_fed_while_every_loop_progresses_and_not_while_the_consumer_is_blocked(
        engine, db_url, backend, notify_socket):
    process = start_daemon(db_url, {"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "1000000"})
    try:
        wait_until(lambda: notify_socket.times("READY=1"))
        ready = notify_socket.times("READY=1")[0]
        wait_until(lambda: len(notify_socket.times("WATCHDOG=1")) >= 4)
        pings = notify_socket.times("WATCHDOG=1")
        assert pings[0] > ready  # READY first, then the pings
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        assert min(gaps) >= 0.45, gaps  # every half of WATCHDOG_USEC, not faster
        status = [t for _, t in notify_socket.received if t.startswith("STATUS=")]
        wait_until(lambda: [t for _, t in notify_socket.received if t.startswith("STATUS=leader; ")])
        # the consumer loop blocked for 5 s: a 1 s watchdog timeout past its time, the pings stop
        blocked = time.monotonic()
        hold_the_consumer(engine, backend, 5.0)
        released = time.monotonic()
        during = notify_socket.times("WATCHDOG=1", after=blocked + 3.0)
        assert not [t for t in during if t < released], "pinged while the consumer loop was blocked"
        wait_until(lambda: notify_socket.times("WATCHDOG=1", after=released))  # fed again once it moves
    finally:
        stderr = stop_daemon(process)
    assert process.returncode == 0, stderr
    assert "not feeding systemd's watchdog: consumer" in stderr
    assert "making progress again" in stderr
    assert any("change events waiting" in line and "deliveries due" in line for line in status), status
    assert notify_socket.times("STOPPING=1")


def write_config(path: Path, db_url: str, **daemon: str) -> None:
    lines = ["[database]", f'url = "{db_url}"', "[webhook]", "allow_private_addresses = true", "[daemon]"]
    lines += [f"{key} = {value}" for key, value in daemon.items()]
    path.write_text("\n".join(lines) + "\n")


def test_sighup_changes_the_poll_interval_and_the_log_level_and_refuses_a_bad_file(
        engine, db_url, receiver, tmp_path):  # noqa: F811 - the receiver fixture
    add_workflow(engine, hook_workflow(receiver))
    ids = seed(engine)
    config = tmp_path / "apptflow.toml"
    write_config(config, db_url, poll_interval='"30s"', log_level='"info"', lease='"2m"')
    process = run_daemon({"APPTFLOW_CONFIG": str(config)})  # everything from the file
    try:
        wait_until(lambda: sql(engine, "SELECT count(*) FROM instances WHERE stopped_at IS NULL")[0][0])
        write_config(config, db_url, poll_interval='"100ms"', log_level='"debug"', lease='"5m"')
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: "poll_interval: 30s → 100ms" in log_of(process))
        # a booking now is handled within the new interval (without LISTEN, the old one was 30 s)
        book(engine, ids, starts_at=START, ends_at=END)
        wait_until(lambda: len(receiver.requests) == 1, timeout=15)
        wait_until(lambda: " DEBUG " in log_of(process))
        config.write_text("[daemon]\npoll_interval = \"fast\"\n")
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: "configuration not reloaded, the running one is kept" in log_of(process))
        book(engine, ids, starts_at=START, ends_at=END)
        wait_until(lambda: len(receiver.requests) == 2, timeout=15)  # still running, as configured before
    finally:
        stderr = stop_daemon(process)
    assert process.returncode == 0, stderr
    assert "configuration reloaded: [daemon] log_level: info → debug" in stderr
    assert "configuration reloaded: [daemon] lease: 2m → 5m needs a restart; the running value is kept" in stderr
    assert f"{config}: [daemon] poll_interval: 'fast' is not a duration" in stderr
    assert "Traceback" not in stderr


def run_daemon(env: dict[str, str]) -> subprocess.Popen:
    """`apptflow run` with only *env*'s apptflow settings, its stderr in a file (see stop_daemon)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("APPTFLOW_")}
    log = tempfile.TemporaryFile()
    process = subprocess.Popen([sys.executable, "-m", "scheduler", "run"], env={**clean, **env},
                               stdout=subprocess.DEVNULL, stderr=log)
    process.log = log
    return process


def log_of(process) -> str:
    process.log.seek(0)
    return process.log.read().decode()


def test_reload_applies_workers_channels_company_and_keeps_what_needs_a_restart(engine, db_url, caplog):
    caplog.set_level(logging.INFO)
    before = make_config(db_url, APPTFLOW_DAEMON_WORKERS="2", APPTFLOW_DAEMON_POLL_INTERVAL="100ms")
    daemon = Daemon(before, engine=engine)
    daemon.start()
    try:
        def workers():
            return sorted(t.name for t in threading.enumerate() if t.name.startswith("apptflow-worker"))
        assert workers() == ["apptflow-worker-0", "apptflow-worker-1"]
        transports = daemon.transports
        said = daemon.reload(make_config(db_url, APPTFLOW_DAEMON_WORKERS="4", APPTFLOW_DAEMON_POLL_INTERVAL="100ms",
                                         APPTFLOW_SMTP_HOST="mail.example.test", APPTFLOW_COMPANY_NAME="Salon Neuf",
                                         APPTFLOW_DAEMON_JOB_THREADS="9"))
        assert workers() == [f"apptflow-worker-{n}" for n in range(4)]
        assert daemon.transports is not transports and daemon.worker.transports is daemon.transports
        assert daemon.worker.company["name"] == "Salon Neuf"
        assert "[daemon] job_threads: 4 → 9 needs a restart; the running value is kept" in said
        assert daemon.config.get("daemon", "job_threads") == 4 and daemon.config.get("daemon", "workers") == 4
        daemon.reload(make_config(db_url, APPTFLOW_DAEMON_WORKERS="1", APPTFLOW_DAEMON_POLL_INTERVAL="100ms",
                                  APPTFLOW_SMTP_HOST="mail.example.test", APPTFLOW_COMPANY_NAME="Salon Neuf"))
        wait_until(lambda: workers() == ["apptflow-worker-0"])  # the others end after their batch
        add_workflow(engine, {"name": "w", "trigger": {"type": "appointment_created"},
                              "actions": [{"type": "email", "to": ["customer"], "subject": "{{ company_name }}",
                                           "body": "b"}]})
        book(engine, seed(engine), starts_at=START, ends_at=END)
        wait_until(lambda: daemon.transports.channel("smtp").sent)
        assert daemon.transports.channel("smtp").sent[0].subject == "Salon Neuf"
    finally:
        daemon.stop()


def test_log_lines_carry_the_ids_as_fields_in_text_and_json():
    record = logging.LogRecord("scheduler.workers", logging.WARNING, __file__, 1, "delivery %s failed", (12,), None)
    record.delivery, record.workflow = 12, 3
    assert TextFormatter().format(record).endswith(
        "WARNING scheduler.workers: delivery 12 failed workflow=3 delivery=12")
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        failed = logging.LogRecord("scheduler.daemon", logging.ERROR, __file__, 1, "loop failed", (), sys.exc_info())
    line = JsonFormatter().format(failed)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and entry["message"] == "loop failed" and "ValueError: boom" in entry["exception"]
    assert json.loads(JsonFormatter().format(record)) | {"time": None} == {
        "time": None, "level": "WARNING", "logger": "scheduler.workers", "message": "delivery 12 failed",
        "workflow": 3, "delivery": 12}


def test_json_logs_from_a_running_daemon(db_url, engine):
    process = run_daemon({"APPTFLOW_DATABASE_URL": db_url, "APPTFLOW_DAEMON_LOG_FORMAT": "json"})
    try:
        wait_until(lambda: sql(engine, "SELECT count(*) FROM instances WHERE stopped_at IS NULL")[0][0])
    finally:
        stderr = stop_daemon(process)
    lines = stderr.strip().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any(e["message"].startswith("apptflow running") for e in entries)
    assert entries[-1]["message"] == "apptflow stopped"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_the_unit_passes_systemd_analyze_verify(tmp_path):
    unit = UNIT.read_text()
    assert "WatchdogSec=30" in unit and "ExecReload=" in unit
    # verify needs the command to exist: point it at this installation's apptflow
    installed = shutil.which("apptflow") or sys.executable
    copy = tmp_path / "apptflow.service"
    copy.write_text(unit.replace("/usr/local/bin/apptflow", installed))
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "apptflow.service" not in result.stderr, result.stderr
