"""The daemon as it runs for real: threads, LISTEN/NOTIFY, a crash, a database restart, signals."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from scheduler.cli import main
from scheduler.config import load_config
from scheduler.consumer import Wakeup
from scheduler.daemon import Daemon
from tests.booking import book, insert, seed
from tests.channels.servers import HttpServer, Reply
from tests.conftest import sql, utc, wait_until
from tests.pipeline import add_workflow, make_config

START, END = "2026-12-01T10:00:00+00:00", "2026-12-01T10:45:00+00:00"
FAST = {"APPTFLOW_DAEMON_POLL_INTERVAL": "100ms", "APPTFLOW_DAEMON_HEARTBEAT": "200ms",
        "APPTFLOW_DAEMON_LEASE": "1s"}


def count(engine, where: str = "1 = 1") -> int:
    return sql(engine, f"SELECT count(*) FROM deliveries WHERE {where}")[0][0]


@pytest.fixture
def receiver():
    server = HttpServer().start()
    yield server
    server.stop()


def hook_workflow(receiver, name="hook", enabled=True):
    return {"name": name, "enabled": enabled, "trigger": {"type": "appointment_created"},
            "actions": [{"type": "webhook", "url": f"{receiver.url}/{name}", "json": {"id": "{{ appointment_id }}"}}]}


@pytest.fixture
def running(engine, db_url):
    """A daemon running in this process, in dry run, polling every 100 ms."""
    daemon = Daemon(make_config(db_url, **FAST), engine=engine)
    daemon.start()
    yield daemon
    daemon.stop()


def test_a_workflow_edited_by_sql_takes_effect_without_a_restart(engine, running):
    workflow = add_workflow(engine, {"name": "w", "enabled": False, "trigger": {"type": "appointment_created"},
                                     "actions": [{"type": "email", "to": ["customer"], "subject": "s",
                                                  "body": "{{ appointment_id }}"}]})
    ids = seed(engine)
    book(engine, ids, starts_at=START, ends_at=END)
    wait_until(lambda: sql(engine, "SELECT count(*) FROM change_events WHERE processed_at IS NULL") == [(0,)])
    assert count(engine) == 0
    sql(engine, "UPDATE workflows SET enabled = true WHERE id = :id", id=workflow)
    second = book(engine, ids, starts_at=START, ends_at=END)
    wait_until(lambda: count(engine, "status = 'sent'") == 1)
    assert running.transports.channel("smtp").sent[0].text == str(second)
    sql(engine, "UPDATE workflow_actions SET config = :c WHERE workflow_id = :id", id=workflow,
        c='{"to": ["customer"], "subject": "edited {{ appointment_id }}", "body": "b"}')
    third = book(engine, ids, starts_at=START, ends_at=END)
    wait_until(lambda: count(engine, "status = 'sent'") == 2)
    assert running.transports.channel("smtp").sent[1].subject == f"edited {third}"


def _as_json(value):
    return json.loads(value) if isinstance(value, str) else value


def test_a_dry_run_daemon_writes_no_status_and_fails_an_attachment_outside_its_directory(engine, db_url, tmp_path):
    files, outside = tmp_path / "attachments", tmp_path / "private.txt"
    files.mkdir()
    outside.write_text("not for customers")
    config = tmp_path / "apptflow.toml"
    config.write_text(f'[daemon]\ndry_run = true\nattachment_dir = "{files}"\npoll_interval = "100ms"\n'
                      'heartbeat = "200ms"\n')
    env = {"APPTFLOW_DATABASE_URL": db_url, "APPTFLOW_CONFIG": str(config)}
    for name, action in (("approve", {"type": "set_status", "status": "approved"}),
                         ("invoice", {"type": "email", "to": ["customer"], "subject": "Your invoice",
                                      "body": "Attached.", "attachments": [str(outside)]})):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"name": name, "trigger": {"type": "appointment_created"},
                                        "actions": [action]}))
        added = CliRunner().invoke(main, ["workflow", "add", str(path)], env=env)
        assert added.exit_code == 0, added.output
    daemon = Daemon(load_config(None, environ=env), engine=engine)
    daemon.start()
    try:
        appointment = book(engine, seed(engine), starts_at=START, ends_at=END, status="pending")
        wait_until(lambda: count(engine, "status NOT IN ('pending', 'sending')") == 2)  # both final
    finally:
        daemon.stop()
    assert sql(engine, "SELECT status FROM appointments WHERE id = :id", id=appointment) == [("pending",)]
    outcomes = {action: (status, _as_json(rendered), provider, error) for action, status, rendered, provider, error
                in sql(engine, "SELECT action_type, status, rendered, provider_id, error FROM deliveries")}
    assert outcomes["set_status"] == ("sent", {"status": "approved"}, "dry-run: not written", None)
    status, _, _, error = outcomes["email"]
    assert status == "dead" and f"attachment {str(outside)!r} is outside the attachment directory" in error
    # nothing was written: the appointment's only change event is its insert
    assert sql(engine, "SELECT op FROM change_events WHERE table_name = 'appointments'") == [("INSERT",)]


def test_status_reports_a_running_daemon(engine, db_url, running):
    result = CliRunner().invoke(main, ["status"], env={"APPTFLOW_DATABASE_URL": db_url})
    assert result.exit_code == 0
    assert "daemon:      running on" in result.output and f"(pid {os.getpid()})" in result.output


# The daemon under test runs from this checkout, whatever else is installed.
ROOT = str(Path(__file__).resolve().parents[1])


def start_daemon(db_url: str, receiver_env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "APPTFLOW_DATABASE_URL": db_url, "APPTFLOW_CONFIG": "",
           "APPTFLOW_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true", **FAST, **(receiver_env or {})}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    # stderr to a file: a pipe nobody reads while the daemon runs would fill up and block its logging
    log = tempfile.TemporaryFile()
    process = subprocess.Popen([sys.executable, "-m", "scheduler", "run"], env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=log)
    process.log = log
    return process


def stop_daemon(process: subprocess.Popen, signum: int = signal.SIGTERM) -> str:
    """Signal the daemon, wait for it, and return what it logged."""
    process.send_signal(signum)
    process.wait(30)
    process.log.seek(0)
    text = process.log.read().decode()
    process.log.close()
    return text


BURST, BURST_WORKERS = 300, 4


def test_sigkill_in_a_burst_sends_again_at_most_one_message_per_worker(engine, db_url, receiver):
    """The crash guarantee: each worker records an outcome before its next send, so a kill leaves at most
    the send under way in each worker unrecorded; everything else is sent exactly once."""
    receiver.route = lambda request: Reply(status=200, hang=0.01)
    add_workflow(engine, hook_workflow(receiver))
    ids = seed(engine)
    workers = {"APPTFLOW_DAEMON_WORKERS": str(BURST_WORKERS)}
    process = start_daemon(db_url, workers)
    try:
        with engine.begin() as conn:  # a burst: the bookings of one transaction
            appointments = [insert(conn, "appointments", customer_id=ids["customer"], service_id=ids["service"],
                                   staff_id=ids["staff"], location_id=ids["location"], status="approved",
                                   starts_at=START, ends_at=END) for _ in range(BURST)]
        wait_until(lambda: len(receiver.requests) >= BURST // 4, interval=0.01)
        stop_daemon(process, signal.SIGKILL)
        assert len(receiver.requests) < BURST, "the burst was over before the kill"
        process = start_daemon(db_url, workers)
        wait_until(lambda: count(engine, "status = 'sent'") == BURST, timeout=60)
    finally:
        stderr = stop_daemon(process)
    assert process.returncode == 0, stderr
    assert count(engine) == BURST
    assert {r.json()["id"] for r in receiver.requests} == {str(a) for a in appointments}
    hooks = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(set(hooks)) == BURST
    again = len(hooks) - BURST
    assert again <= BURST_WORKERS, f"{again} webhooks sent twice by {BURST_WORKERS} workers"


def test_a_database_restart_delays_work_but_loses_none(engine, db_url, backend, request, receiver):
    if backend == "sqlite":
        pytest.skip("an embedded SQLite database cannot go away")
    cluster = request.getfixturevalue("pg_cluster" if backend == "postgresql" else "mariadb_server")
    add_workflow(engine, hook_workflow(receiver))
    ids = seed(engine)
    # The lease outlasts the outage (a server restart takes seconds): an outcome not yet recorded when the
    # server stops is kept and written when it is back, not sent again (docs/pipeline.md).
    process = start_daemon(db_url, {"APPTFLOW_DAEMON_LEASE": "30s"})
    try:
        book(engine, ids, starts_at=START, ends_at=END)
        wait_until(lambda: len(receiver.requests) == 1)
        cluster.stop()
        time.sleep(1.0)  # the daemon's connections fail for a while
        cluster.resume()
        engine.dispose()
        book(engine, ids, starts_at=START, ends_at=END)
        wait_until(lambda: count(engine, "status = 'sent'") == 2)
    finally:
        stderr = stop_daemon(process)
    assert process.returncode == 0, stderr
    assert len(receiver.requests) == 2


def test_notifications_wake_the_daemon_before_the_poll(engine, db_url, backend):
    if backend != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    daemon = Daemon(make_config(db_url, APPTFLOW_DAEMON_POLL_INTERVAL="30s", APPTFLOW_DAEMON_DRY_RUN="false"),
                    engine=engine)
    daemon.start()
    try:
        add_workflow(engine, {"name": "w", "trigger": {"type": "appointment_created"},
                              "actions": [{"type": "set_status", "status": "approved"}]})
        wait_until(lambda: daemon.wakeup is not None and daemon.wakeup.listening.is_set())
        appointment = book(engine, seed(engine), starts_at=START, ends_at=END)
        # within 30 s only a notification can have woken the consumer (and the workers)
        wait_until(lambda: sql(engine, "SELECT status FROM appointments WHERE id = :id", id=appointment)
                   == [("approved",)], timeout=20)
    finally:
        daemon.stop()


def test_a_poke_ends_a_wait_for_notifications_at_once(engine, backend):
    """A stop or a reload pokes the consumer's wait: it must not sit out its poll interval (an hour here)."""
    if backend != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    wakeup = Wakeup(engine, interval=3600)
    waiter = threading.Thread(target=wakeup.wait, daemon=True)
    try:
        assert wakeup._listening()
        waiter.start()
        time.sleep(0.3)  # the waiter is inside psycopg's wait for notifications
        wakeup.poke()
        waiter.join(30)
        assert not waiter.is_alive()
    finally:
        wakeup.poke()
        if waiter.ident:
            waiter.join(5)
        wakeup.close()


def test_a_reminder_fires_at_its_second_through_the_running_daemon(engine, running):
    add_workflow(engine, {"name": "r", "trigger": {"type": "appointment_starts", "offset": "-1h"},
                          "actions": [{"type": "email", "to": ["customer"], "subject": "{{ fire_time }}",
                                       "body": "b"}]})
    starts = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(hours=1, seconds=2)
    book(engine, seed(engine), starts_at=starts.isoformat(), ends_at=(starts + dt.timedelta(hours=1)).isoformat())
    wait_until(lambda: count(engine, "status = 'sent'") == 1, timeout=20)
    [(occurrence, sent_at)] = sql(engine, "SELECT occurrence, sent_at FROM deliveries")
    planned = starts - dt.timedelta(hours=1)
    assert occurrence == f"at:{planned.isoformat()}"
    assert utc(sent_at) >= planned  # never early


def test_the_demo_runs_by_itself(tmp_path):
    database = tmp_path / "demo.db"
    result = CliRunner().invoke(main, ["demo", "--database", str(database)])
    assert result.exit_code == 0, result.output
    for line in ("email to ada@example.com: 'Welcome to Salon Lumière'",
                 "sms to +447700900123: 'Your Haircut moved to",
                 "sms to +447700900123: 'Reminder: Haircut at",
                 "whatsapp to +447700900123: template HX0123456789abcdef0123456789abcdef with "
                 "{'1': 'Ada', '2': 'Haircut', '3': 'Camille'}",
                 "telegram to chat 424242: 'Ada Lovelace cancelled Haircut (approved → canceled).'",
                 "email to ada@example.com, bcc camille@salon.example: 'Booked: Haircut on",  # the en variant
                 "'Hello Ada, see you at Le Marais.' + invite.ics (REQUEST Haircut ",
                 "'Your calendar has the new time.' + invite.ics (REQUEST Haircut ",
                 "'It is off your calendar.' + invite.ics (CANCEL Haircut "):
        assert line in result.output
    assert "s after its planned time]" in result.output
    assert "9 messages produced" in result.output


def test_one_instance_leads_and_another_takes_over_when_it_stops(engine, db_url, backend):
    if backend == "sqlite":
        pytest.skip("SQLite is for one instance, which always leads")
    config = make_config(db_url, **FAST)
    first, second = Daemon(config, engine=engine), Daemon(config)
    add_workflow(engine, {"name": "w", "trigger": {"type": "appointment_created"},
                          "actions": [{"type": "email", "to": ["customer"], "subject": "s", "body": "b"}]})
    ids = seed(engine)
    first.start()
    wait_until(lambda: first.leadership.leading)
    second.start()
    try:
        book(engine, ids, starts_at=START, ends_at=END)
        wait_until(lambda: count(engine, "status = 'sent'") == 1)
        assert not second.leadership.leading
        first.stop()
        wait_until(lambda: second.leadership.leading, timeout=10)
        book(engine, ids, starts_at=START, ends_at=END)
        wait_until(lambda: count(engine, "status = 'sent'") == 2)
    finally:
        second.stop()
        second.engine.dispose()
    assert count(engine) == 2


@pytest.mark.parametrize("grace, expected", [("1h", "sent"), ("1s", "missed")])
def test_a_daemon_down_across_a_firing_fires_late_within_grace_and_records_missed_beyond(
        engine, db_url, receiver, grace, expected):
    add_workflow(engine, {"name": "r", "trigger": {"type": "appointment_starts", "offset": "-1h", "grace": grace},
                          "actions": [{"type": "webhook", "url": f"{receiver.url}/r", "body": "{{ fire_time }}"}]})
    starts = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(hours=1, seconds=3)
    process = start_daemon(db_url)
    try:
        book(engine, seed(engine), starts_at=starts.isoformat(),
             ends_at=(starts + dt.timedelta(hours=1)).isoformat())
        wait_until(lambda: sql(engine, "SELECT count(*) FROM apscheduler_jobs") == [(1,)])
    finally:
        stop_daemon(process)
    planned = starts - dt.timedelta(hours=1)
    # down across the firing time, and for more than a 1 s grace
    time.sleep(max(0.0, (planned - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 2.5)
    assert count(engine) == 0
    process = start_daemon(db_url)
    try:
        wait_until(lambda: count(engine, f"status = '{expected}'") == 1)
    finally:
        stderr = stop_daemon(process)
    assert process.returncode == 0, stderr
    [(occurrence, error)] = sql(engine, "SELECT occurrence, error FROM deliveries")
    assert occurrence == f"at:{planned.isoformat()}"
    assert len(receiver.requests) == (1 if expected == "sent" else 0)
    if expected == "missed":
        assert error.startswith(f"missed: due at {planned.isoformat()}")


def test_a_thousand_reminders_due_in_the_same_second_each_arrive_once_and_none_early(engine, db_url, receiver):
    arrived = []
    receiver.route = lambda request: (arrived.append(time.time()), Reply(status=200))[1]
    add_workflow(engine, {"name": "r", "trigger": {"type": "appointment_starts", "offset": "-1m"},
                          "actions": [{"type": "webhook", "url": f"{receiver.url}/r",
                                       "json": {"id": "{{ appointment_id }}"}}]})
    ids = seed(engine)
    # The default lease: the 1 s of the crash tests would let a send queued behind 999 others be
    # reclaimed and resent, as documented for sends that outlive their lease.
    process = start_daemon(db_url, {"APPTFLOW_DAEMON_LEASE": "2m"})
    # time to start, consume and plan them all (a firing planned after its second would still run once)
    planned = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=5)
    try:
        with engine.begin() as conn:  # a morning's reminders: 1,000 bookings starting at the same second
            appointments = [insert(conn, "appointments", customer_id=ids["customer"], service_id=ids["service"],
                                   staff_id=ids["staff"], location_id=ids["location"], status="approved",
                                   starts_at=(planned + dt.timedelta(minutes=1)).isoformat(),
                                   ends_at=(planned + dt.timedelta(minutes=46)).isoformat())
                            for _ in range(1000)]
        wait_until(lambda: count(engine, "status = 'sent'") == 1000, timeout=120)
    finally:
        stderr = stop_daemon(process)
    assert process.returncode == 0, stderr
    assert sorted(int(r.json()["id"]) for r in receiver.requests) == sorted(appointments)  # each exactly once
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1000
    assert min(arrived) >= planned.timestamp(), "a reminder arrived before its time"
    assert sql(engine, "SELECT DISTINCT occurrence FROM deliveries") == [(f"at:{planned.isoformat()}",)]
    assert count(engine) == 1000


@pytest.mark.parametrize("command", [["status"], ["run"], ["workflow", "list"], ["db", "init"]])
def test_an_unreachable_database_is_one_line_and_exit_1(command):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "APPTFLOW_CONFIG": "",
           "APPTFLOW_DATABASE_URL": f"postgresql://apptflow@127.0.0.1:{port}/apptflow"}
    result = subprocess.run([sys.executable, "-m", "scheduler", *command], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot reach the database: connection failed:"), \
        result.stderr
    assert "Connection refused" in lines[0] and "Traceback" not in result.stderr
