"""Fault injection: the database goes away at each step of the pipeline in turn, and still every
message arrives exactly once.

A real daemon (its threads, APScheduler, real SMTP and HTTP receivers) runs on
a real database. On PostgreSQL and MariaDB its connections go through a proxy that cuts
them all, and refuses new ones for a moment, when the daemon sends the
statement of the step under test (or when a receiver is reached, for the step
between a send and its record). On SQLite another writer takes the database's
lock for a while at that step, and the daemon's transactions meet "database is
locked". Afterwards: each expected message was accepted once by its receiver
(by webhook-id and by SMTP Message-ID), nothing is left `sending`, and the log
said what happened in a few one-line warnings, without a traceback.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from email import message_from_bytes

import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from db import deliveries
from db.connect import DEFAULT_PREFIX, connect
from db.prefix import OWN_TABLES
from scheduler.catalogue import Catalogue
from scheduler.consumer import EventConsumer
from scheduler.daemon import Daemon
from tests.booking import book, insert, seed
from tests.channels.servers import HttpServer, Reply, SmtpRecorder, smtp_controller
from tests.conftest import sql, wait_until
from tests.faults import CuttableProxy, SqliteLockHolder
from tests.pipeline import add_workflow, make_config

pytestmark = pytest.mark.faults

OUTAGE = 1.5  # seconds the database stays away after a cut
BOOKINGS = 3


class Receivers:
    """A webhook endpoint and an SMTP server, counting what each accepted."""

    def __init__(self):
        self.accepted: list[str] = []  # webhook-id of each request answered 2xx
        self.on_request = lambda request: None  # called before answering: a test places a cut here
        self.fail_first = False
        self._lock = threading.Lock()
        self.http = HttpServer(self._answer).start()
        self.smtp = SmtpRecorder()
        self.controller = smtp_controller(self.smtp)
        self.controller.start()

    def _answer(self, request):
        self.on_request(request)
        with self._lock:
            if self.fail_first:
                self.fail_first = False
                return Reply(status=503)
            self.accepted.append(request.headers["webhook-id"])
        return Reply(status=200)

    def message_ids(self) -> list[str]:
        return [message_from_bytes(e.content)["Message-ID"] for e in self.smtp.envelopes]

    def close(self) -> None:
        self.http.stop()
        self.controller.stop()


class Fault:
    """Takes the database away on demand: the proxy's cut (PostgreSQL) or another writer's lock (SQLite)."""

    def __init__(self, backend: str, db_url: str, proxy: CuttableProxy | None):
        self.backend, self.proxy = backend, proxy
        self.fired = threading.Event()
        if proxy is not None:
            self.url = proxy.url(make_url(db_url).database)
            self.engine = connect(self.url)
            self.holder = None
        else:
            self.url = db_url
            self.engine = connect(db_url, busy_timeout=0.2)  # the lock shows up as "database is locked"
            self.holder = SqliteLockHolder(make_url(db_url).database)
        self._pattern: re.Pattern | None = None
        self._down_for = OUTAGE
        if self.holder is not None:
            event.listen(self.engine, "before_cursor_execute", self._on_statement)

    def arm(self, pattern: str, down_for: float = OUTAGE) -> None:
        """Take the database away for *down_for* seconds when the daemon next sends a statement matching
        *pattern*."""
        pattern = as_sent(self.backend, pattern)
        self._down_for = down_for
        if self.proxy is not None:
            trigger = self.proxy.arm(pattern.encode(), down_for=down_for)
            threading.Thread(target=lambda: trigger.fired.wait(60) and self.fired.set(), daemon=True).start()
        else:
            self._pattern = re.compile(pattern, re.DOTALL)

    def now(self, seconds: float = OUTAGE) -> None:
        """Take the database away now, for *seconds*."""
        if self.proxy is not None:
            self.proxy.cut(seconds)
        else:
            self.holder.hold(seconds)
            self.holder.held.wait(10)
        self.fired.set()

    def _on_statement(self, conn, cursor, statement, parameters, context, executemany):
        pattern = self._pattern
        if pattern is not None and pattern.search(statement):
            self._pattern = None
            self.holder.hold(self._down_for)  # taken as soon as the daemon's own transaction ends
            self.fired.set()

    def restore(self) -> None:
        """Bring the database back now."""
        if self.proxy is not None:
            self.proxy.restore()
        else:
            self.holder.release()

    def close(self) -> None:
        if self.holder is not None:
            self.holder.join()
        self.engine.dispose()


@pytest.fixture
def receivers():
    receivers = Receivers()
    yield receivers
    receivers.close()


@pytest.fixture
def fault(backend, db_url, request):
    proxy = None
    if backend == "postgresql":
        proxy = CuttableProxy(request.getfixturevalue("pg_cluster").port)
    elif backend == "mariadb":
        proxy = CuttableProxy(request.getfixturevalue("mariadb_server").port, protocol="mysql")
    fault = Fault(backend, db_url, proxy)
    yield fault
    fault.close()
    if proxy is not None:
        proxy.close()


# MySQL/MariaDB: the same statements, as SQLAlchemy writes them there (apptflow's prefix, INSERT IGNORE, and
# the named lock instead of pg_locks).
_MYSQL_FORMS = {r"INSERT INTO deliveries": r"INSERT IGNORE INTO deliveries", r"pg_locks": r"IS_USED_LOCK"}
_OWN_NAME = re.compile(r"\b(" + "|".join(sorted(OWN_TABLES, key=len, reverse=True)) + r")\b")


def as_sent(backend: str, pattern: str) -> str:
    """A step's statement *pattern* as the daemon sends it on *backend*."""
    if backend != "mariadb":
        return pattern
    for postgresql, mysql in _MYSQL_FORMS.items():
        pattern = pattern.replace(postgresql, mysql)
    return _OWN_NAME.sub(DEFAULT_PREFIX + r"\1", pattern)


def daemon_config(fault: Fault, receivers: Receivers, **settings: str):
    return make_config(fault.url, **{
        "APPTFLOW_DAEMON_DRY_RUN": "false", "APPTFLOW_DAEMON_POLL_INTERVAL": "100ms",
        "APPTFLOW_DAEMON_HEARTBEAT": "200ms", "APPTFLOW_DAEMON_LEASE": "10s", "APPTFLOW_DAEMON_RETRY_BASE": "500ms",
        "APPTFLOW_DAEMON_WORKERS": "2", "APPTFLOW_SMTP_HOST": "127.0.0.1",
        "APPTFLOW_SMTP_PORT": str(receivers.controller.port), **settings})


def actions(receivers: Receivers) -> list[dict]:
    return [{"type": "webhook", "url": f"{receivers.http.url}/hook", "json": {"id": "{{ appointment_id }}"}},
            {"type": "email", "to": ["customer"], "subject": "Booking {{ appointment_id }}", "body": "b"}]


def in_a_moment(seconds: float) -> tuple[str, str]:
    starts = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(minutes=1, seconds=seconds)
    return starts.isoformat(), (starts + dt.timedelta(minutes=45)).isoformat()


# Each step: where the database goes away, and how the test gets the daemon there.
#   pattern: a statement the daemon sends at that step (None: the cut is placed by hand)
#   trigger: "created" (bookings set off the workflow at once) or "reminder" (a job fires a few seconds later)
#   armed:   when the cut is armed: "start" (before booking) or "planned" (once the jobs are in the jobstore)
STEPS = {
    "claiming an event": dict(pattern=r"FROM change_events\s+WHERE change_events\.processed_at IS NULL",
                              trigger="created", armed="start"),
    "writing deliveries": dict(pattern=r"INSERT INTO deliveries", trigger="created", armed="start"),
    "planning jobs": dict(pattern=r"INSERT INTO apscheduler_jobs", trigger="reminder", armed="start"),
    "reading due jobs": dict(pattern=r"FROM apscheduler_jobs\s+WHERE apscheduler_jobs\.next_run_time <=",
                             trigger="reminder", armed="planned"),
    "removing fired jobs": dict(pattern=r"DELETE FROM apscheduler_jobs", trigger="reminder", armed="planned"),
    "fire()": dict(pattern=r"INSERT INTO deliveries", trigger="reminder", armed="planned"),
    "claiming a delivery": dict(pattern=r"attempts=\(deliveries\.attempts \+", trigger="created", armed="start"),
    "between the send and its record": dict(pattern=None, trigger="created", armed="start"),
    "recording a retry": dict(pattern=None, trigger="created", armed="start"),
    "reclaiming": dict(pattern=r"deliveries\.lease_until <", trigger="crashed", armed="start"),
    "leadership confirmation": dict(pattern=r"pg_locks", trigger="created", armed="start"),
}


def leave_a_crashed_claim(engine, ids, receivers) -> int:
    """What a worker killed mid-send leaves: a delivery `sending` under a lease that has ended."""
    add_workflow(engine, {"name": "created", "trigger": {"type": "appointment_created"},
                          "actions": actions(receivers)})
    starts, ends = in_a_moment(600)
    for _ in range(BOOKINGS):
        book(engine, ids, starts_at=starts, ends_at=ends)
    long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    EventConsumer(engine, Catalogue()).drain(long_ago)
    with engine.begin() as conn:
        return len(deliveries.claim_due_batch(conn, long_ago + dt.timedelta(minutes=5), dt.timedelta(seconds=1),
                                              100))


@pytest.mark.parametrize("step", list(STEPS))
def test_the_database_going_away_at_each_step_loses_nothing_and_sends_nothing_twice(
        engine, backend, fault, receivers, caplog, step):
    spec = STEPS[step]
    if step == "leadership confirmation" and backend == "sqlite":
        pytest.skip("SQLite has one instance, which always leads: no lock to confirm")
    ids = seed(engine)
    if spec["trigger"] == "crashed":
        assert leave_a_crashed_claim(engine, ids, receivers) == 2 * BOOKINGS
    else:
        trigger = ({"type": "appointment_created"} if spec["trigger"] == "created"
                   else {"type": "appointment_starts", "offset": "-1m"})
        add_workflow(engine, {"name": step, "trigger": trigger, "actions": actions(receivers)})
    if step == "between the send and its record":
        receivers.on_request = lambda request: fault.fired.is_set() or fault.now()
    elif step == "recording a retry":
        receivers.fail_first = True
        receivers.on_request = lambda request: fault.fired.is_set() or fault.now()
    elif spec["armed"] == "start":
        fault.arm(spec["pattern"])

    caplog.set_level(logging.INFO)
    daemon = Daemon(daemon_config(fault, receivers), engine=fault.engine)
    daemon.start()
    try:
        if spec["trigger"] != "crashed":
            starts, ends = in_a_moment(2.5 if spec["trigger"] == "reminder" else 600)
            for _ in range(BOOKINGS):
                book(engine, ids, starts_at=starts, ends_at=ends)
        if spec["armed"] == "planned":
            wait_until(lambda: sql(engine, "SELECT count(*) FROM apscheduler_jobs") == [(BOOKINGS,)])
            fault.arm(spec["pattern"])
        wait_until(fault.fired.is_set)
        wait_until(lambda: sql(engine, "SELECT count(*) FROM deliveries WHERE status = 'sent'")
                   == [(2 * BOOKINGS,)], timeout=60)
        wait_until(lambda: sql(engine, "SELECT count(*) FROM apscheduler_jobs") == [(0,)])
    finally:
        daemon.stop()

    # every message arrived, each exactly once
    assert len(receivers.accepted) == BOOKINGS and len(set(receivers.accepted)) == BOOKINGS
    assert len(receivers.message_ids()) == BOOKINGS and len(set(receivers.message_ids())) == BOOKINGS
    assert sql(engine, "SELECT status, count(*) FROM deliveries GROUP BY status") == [("sent", 2 * BOOKINGS)]
    # the log: the outage said in one-line warnings, then its end; no traceback, no talk of a crash
    records = [r for r in caplog.records if r.name.startswith(("scheduler", "db", "channels", "engine"))]
    assert not [r for r in records if r.exc_info], "a traceback was logged"
    lines = [r.getMessage() for r in records]
    assert not [line for line in lines if "crash" in line or "failed unexpectedly" in line]
    assert any("database unavailable" in line or "lost the leader lock" in line
               or "cannot LISTEN" in line for line in lines), lines
    assert all("\n" not in line for line in lines)
    unavailable = [line for line in lines if "database unavailable" in line]
    assert len(unavailable) <= OUTAGE + 3, unavailable  # one a second at most


# Restarts in a row: five on PostgreSQL, three on MariaDB (slower to stop and start), within the suite's time
RESTART_ROUNDS, RESTART_BOOKINGS, RESTART_DOWN = 5, 300, 5.0


def test_the_database_restarts_in_the_middle_of_bursts_and_every_webhook_arrives_exactly_once(
        engine, db_url, backend, request, receivers, caplog):
    """The outage of the issue: `pg_ctl -m fast stop` (MariaDB: SIGTERM, its normal shutdown) while sends are
    in flight, started again 5 s later."""
    if backend == "sqlite":
        pytest.skip("an embedded SQLite database cannot be restarted under the daemon")
    cluster = request.getfixturevalue("pg_cluster" if backend == "postgresql" else "mariadb_server")
    rounds = RESTART_ROUNDS if backend == "postgresql" else 3  # MariaDB takes seconds longer to stop and start
    add_workflow(engine, {"name": "hook", "trigger": {"type": "appointment_created"},
                          "actions": actions(receivers)[:1]})
    ids = seed(engine)
    restarted = threading.Event()
    in_flight_at_stop: list[int] = []

    def restart():
        cluster.stop()
        time.sleep(RESTART_DOWN)
        cluster.resume()
        restarted.set()

    stop_at = [0]
    lock = threading.Lock()

    def on_request(request):
        # the 60th request of a round stops the server while the others of the round are being sent
        with lock:
            if len(receivers.accepted) < stop_at[0] or in_flight_at_stop:
                return
            in_flight_at_stop.append(len(receivers.accepted))
        threading.Thread(target=restart, daemon=True).start()
        time.sleep(0.2)  # this send completes after the server is gone: its record meets the outage

    receivers.on_request = on_request
    caplog.set_level(logging.INFO)
    config = make_config(db_url, APPTFLOW_DAEMON_DRY_RUN="false", APPTFLOW_DAEMON_POLL_INTERVAL="100ms",
                         APPTFLOW_DAEMON_HEARTBEAT="200ms", APPTFLOW_DAEMON_LEASE="30s")
    daemon = Daemon(config, engine=connect(db_url))
    daemon.start()
    try:
        for round_ in range(1, rounds + 1):
            restarted.clear()
            stop_at[0] = (round_ - 1) * RESTART_BOOKINGS + 59
            in_flight_at_stop.clear()
            starts, ends = in_a_moment(600)
            with engine.begin() as conn:
                for _ in range(RESTART_BOOKINGS):
                    insert(conn, "appointments", customer_id=ids["customer"], service_id=ids["service"],
                           staff_id=ids["staff"], location_id=ids["location"], status="approved",
                           starts_at=starts, ends_at=ends)
            wait_until(restarted.is_set, timeout=60)
            engine.dispose()  # the test's own connections died with the server
            wait_until(lambda: sql(engine, "SELECT count(*) FROM deliveries WHERE status = 'sent'")
                       == [(round_ * RESTART_BOOKINGS,)], timeout=90)
            assert in_flight_at_stop and in_flight_at_stop[0] < RESTART_BOOKINGS * round_
            assert len(receivers.accepted) == round_ * RESTART_BOOKINGS, f"round {round_}: a webhook twice"
    finally:
        daemon.stop()
        daemon.engine.dispose()
    assert len(set(receivers.accepted)) == rounds * RESTART_BOOKINGS
    assert sql(engine, "SELECT status, count(*) FROM deliveries GROUP BY status") == [
        ("sent", rounds * RESTART_BOOKINGS)]
    records = [r for r in caplog.records if r.name.startswith("scheduler")]
    assert not [r for r in records if r.exc_info], "a traceback was logged"
    lines = [r.getMessage() for r in records]
    assert not [line for line in lines if "crash" in line or "reclaimed" in line], "a send was taken back"
    assert sum("database reachable again" in line for line in lines) >= rounds


def reminder_workflow(receivers: Receivers) -> dict:
    return {"name": "reminder", "trigger": {"type": "appointment_starts", "offset": "-1m"},
            "actions": actions(receivers)[:1]}


def book_a_reminder(engine, ids) -> None:
    starts, ends = in_a_moment(2.5)
    book(engine, ids, starts_at=starts, ends_at=ends)


@pytest.mark.parametrize("cut", ["the leader lock's session", "another connection"])
def test_a_leader_stops_scheduling_only_when_its_lock_is_gone_and_resumes_the_same_scheduler(
        engine, backend, fault, receivers, caplog, cut):
    if backend == "sqlite":
        pytest.skip("SQLite has one instance, which always leads")
    add_workflow(engine, reminder_workflow(receivers))
    ids = seed(engine)
    caplog.set_level(logging.INFO)
    daemon = Daemon(daemon_config(fault, receivers), engine=fault.engine)
    daemon.start()
    try:
        wait_until(lambda: daemon.leadership.leading)
        scheduler = daemon.planner.scheduler
        pattern = "pg_locks" if cut == "the leader lock's session" else "FROM change_events"
        trigger = fault.proxy.arm(as_sent(backend, pattern).encode(), down_for=OUTAGE, everything=False)
        wait_until(trigger.fired.is_set)
        time.sleep(OUTAGE)
        book_a_reminder(engine, ids)
        wait_until(lambda: len(receivers.accepted) == 1)
        assert daemon.leadership.leading
        assert daemon.planner.scheduler is scheduler, "APScheduler was built anew"
    finally:
        daemon.stop()
    lines = [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.exc_info and r.name.startswith("scheduler")]
    leads = [line for line in lines if line.startswith("this instance leads")]
    if cut == "the leader lock's session":  # paused at once, then led again with the same scheduler
        lost = next(i for i, line in enumerate(lines) if line.startswith("lost the leader lock's connection"))
        assert "Paused scheduler job processing" in lines[lost:]
        assert "Resumed scheduler job processing" in lines[lost:] and len(leads) == 2
    else:  # the lock's session lived: still leading throughout, nothing paused
        assert not [line for line in lines if "leader lock" in line or "Paused" in line] and len(leads) == 1
    assert len(receivers.accepted) == 1


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_apschedulers_loop_dying_is_noticed_and_restarted(engine, db_url, receivers, caplog):
    add_workflow(engine, reminder_workflow(receivers))
    ids = seed(engine)
    caplog.set_level(logging.INFO)
    daemon = Daemon(make_config(db_url, APPTFLOW_DAEMON_DRY_RUN="false", APPTFLOW_DAEMON_HEARTBEAT="200ms",
                                APPTFLOW_DAEMON_POLL_INTERVAL="100ms"), engine=engine)
    daemon.start()
    try:
        wait_until(lambda: daemon.planner.scheduler.running)  # once this instance leads
        first = daemon.planner.scheduler
        store = first._jobstores["default"]

        def a_bug():  # APScheduler 3 lets an error of its jobstore's next-run-time read end its loop
            raise RuntimeError("a bug in the jobstore")

        store.get_next_run_time = a_bug
        first.wakeup()
        wait_until(lambda: "APScheduler's loop died; restarting it" in caplog.messages)
        wait_until(lambda: daemon.planner.scheduler is not first and daemon.planner.scheduler.running)
        book_a_reminder(engine, ids)
        wait_until(lambda: len(receivers.accepted) == 1)
    finally:
        daemon.stop()
    assert sql(engine, "SELECT status, count(*) FROM deliveries GROUP BY status") == [("sent", 1)]


def test_an_outage_longer_than_the_lease_gives_the_outcome_up_and_says_so(engine, fault, receivers, caplog):
    """The documented limit: a worker keeps trying to record until its lease is about to end, then
    leaves the delivery to be reclaimed, which sends it again (same webhook-id)."""
    from scheduler.transports import Transports
    from scheduler.workers import DeliveryWorker

    add_workflow(engine, {"name": "hook", "trigger": {"type": "appointment_created"},
                          "actions": actions(receivers)[:1]})
    starts, ends = in_a_moment(600)
    book(engine, seed(engine), starts_at=starts, ends_at=ends)
    now = dt.datetime.now(dt.timezone.utc)
    EventConsumer(engine, Catalogue()).drain(now)
    config = daemon_config(fault, receivers)
    transports = Transports(config)
    worker = DeliveryWorker(fault.engine, transports, company={}, lease=dt.timedelta(seconds=1))
    receivers.on_request = lambda request: fault.fired.is_set() or fault.now(2.0)  # longer than the lease
    caplog.set_level(logging.INFO)
    try:
        [outcome] = worker.work(now)
        assert outcome.status == "lost" and "the database was away" in outcome.error
        assert sql(engine, "SELECT status FROM deliveries") == [("sending",)]
        wait_until(lambda: not (fault.proxy and fault.proxy.down))
        if fault.holder is not None:
            fault.holder.join()
        with fault.engine.begin() as conn:
            assert deliveries.reclaim_expired(conn, now + dt.timedelta(seconds=2)) == (1, 0)
        assert worker.work(now + dt.timedelta(seconds=3))[0].status == "sent"
    finally:
        transports.close()
    assert len(receivers.accepted) == 2 and len(set(receivers.accepted)) == 1
    assert any("could not be recorded before its lease ended" in m for m in caplog.messages)


def jobs_waiting(engine) -> int:
    return sql(engine, "SELECT count(*) FROM apscheduler_jobs")[0][0]


@pytest.mark.parametrize("grace", ["1h", "1s"])
def test_a_firing_held_through_a_stop_is_fired_within_its_grace_or_recorded_missed_at_the_next_start(
        engine, backend, fault, receivers, caplog, grace):
    """Nothing vanishes: the job of a firing that waits for the database is deleted only once the firing
    is written, so a stop meanwhile leaves it for the next start."""
    if backend == "sqlite":
        pytest.skip("on SQLite another writer's lock also stops APScheduler's read of due jobs: no firing can "
                    "be held by the firing thread alone")
    add_workflow(engine, {"name": "reminder", "trigger": {"type": "appointment_starts", "offset": "-1m",
                                                         "grace": grace}, "actions": actions(receivers)[:1]})
    ids = seed(engine)
    caplog.set_level(logging.INFO)
    daemon = Daemon(daemon_config(fault, receivers), engine=fault.engine)
    daemon.start()
    try:
        starts, ends = in_a_moment(2.5)
        book(engine, ids, starts_at=starts, ends_at=ends)
        wait_until(lambda: jobs_waiting(engine) == 1)
        fault.arm(r"INSERT INTO deliveries", down_for=600)  # the firing thread's write: away until restored
        wait_until(fault.fired.is_set)
    finally:
        daemon.stop()
    assert any("1 due firings not written: the daemon stopped" in m for m in caplog.messages)
    fault.restore()
    assert jobs_waiting(engine) == 1 and sql(engine, "SELECT count(*) FROM deliveries") == [(0,)]
    if grace == "1s":  # the next start comes after the grace has passed
        due = dt.datetime.fromisoformat(starts) - dt.timedelta(minutes=1)
        wait_until(lambda: dt.datetime.now(dt.timezone.utc) > due + dt.timedelta(seconds=2))
    daemon = Daemon(daemon_config(fault, receivers), engine=fault.engine)
    daemon.start()
    try:
        wait_until(lambda: sql(engine, "SELECT count(*) FROM deliveries WHERE status IN ('sent', 'missed')")
                   == [(1,)])
        wait_until(lambda: jobs_waiting(engine) == 0)
    finally:
        daemon.stop()
    [(status, error)] = sql(engine, "SELECT status, error FROM deliveries")
    if grace == "1h":
        assert status == "sent" and len(receivers.accepted) == 1
    else:
        assert status == "missed" and error.startswith("missed: due at") and not receivers.accepted


# Small enough to keep the test short: a statement's answer is given up after 1 s + 2 s.
BLACK_HOLE_TIMEOUTS = {"APPTFLOW_DATABASE_DEAD_PEER_TIMEOUT": "2s", "APPTFLOW_DATABASE_STATEMENT_TIMEOUT": "1s"}


def test_a_black_hole_between_a_send_and_its_record_is_noticed_and_every_message_arrives_once(
        engine, backend, fault, receivers, caplog):
    """A partition that drops packets: no reset, no answer. The daemon gives up each connection within its
    timeouts while the path is still dead, reconnects once it returns, and sends nothing twice."""
    if backend == "sqlite":
        pytest.skip("SQLite is a file: there is no network path to lose")
    proxy = fault.proxy
    add_workflow(engine, {"name": "hole", "trigger": {"type": "appointment_created"}, "actions": actions(receivers)})
    ids = seed(engine)
    receivers.on_request = lambda request: proxy.cuts or proxy.black_hole()  # the first send opens it
    caplog.set_level(logging.INFO)
    # its own engine, from the configuration: the daemon's timeouts apply (a lease beyond the outage)
    daemon = Daemon(daemon_config(fault, receivers, APPTFLOW_DAEMON_LEASE="1m", **BLACK_HOLE_TIMEOUTS))
    daemon.start()
    try:
        starts, ends = in_a_moment(600)
        with engine.begin() as conn:  # one transaction: one worker claims them all
            for _ in range(BOOKINGS):
                insert(conn, "appointments", customer_id=ids["customer"], service_id=ids["service"],
                       staff_id=ids["staff"], location_id=ids["location"], status="approved",
                       starts_at=starts, ends_at=ends)
        wait_until(lambda: proxy.cuts)
        # noticed by the daemon itself, the path still dead (the kernel would wait for many minutes)
        wait_until(lambda: [m for m in caplog.messages if "database unavailable" in m])
        assert not proxy.flowing.is_set()
        proxy.heal()
        wait_until(lambda: sql(engine, "SELECT count(*) FROM deliveries WHERE status = 'sent'")
                   == [(2 * BOOKINGS,)], timeout=60)
    finally:
        daemon.stop()
        daemon.engine.dispose()
    assert len(receivers.accepted) == BOOKINGS and len(set(receivers.accepted)) == BOOKINGS
    assert len(receivers.message_ids()) == BOOKINGS and len(set(receivers.message_ids())) == BOOKINGS
    assert sql(engine, "SELECT status, count(*) FROM deliveries GROUP BY status") == [("sent", 2 * BOOKINGS)]
    records = [r for r in caplog.records if r.name.startswith(("scheduler", "db", "channels", "engine"))]
    assert not [r for r in records if r.exc_info], "a traceback was logged"
    unavailable = [r.getMessage() for r in records if "database unavailable" in r.getMessage()]
    assert any("within 3s" in line or "timed out" in line for line in unavailable), unavailable
