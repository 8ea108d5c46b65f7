"""Idle cost: a daemon watching many appointments and pending firings while nothing happens.

The tables are filled to N and then 10 N appointments (one pending firing
each, planned by the daemon's own reconciliation), and C customers (a
birthday each, a past visit for a tenth) watched by the three recurring
workflows: a staff agenda, a birthday greeting, a six-month recall. The
periodic reconciliation (every ``reconcile_interval``, 10 minutes by default)
is reported as its share of that interval. The cost of one idle poll —
the consumer's look for events, a worker's look for due deliveries,
APScheduler's look for the next job and the housekeeping pass — is measured
in this process at both sizes: it must stay flat. Then a real daemon is
started on the large tables and, once its start-up reconciliation is done,
its CPU and resident memory are read from /proc over a quiet window.

On MariaDB, where the daemon polls every 200 ms (no NOTIFY), the same window
also gives what the polls cost the server: the statements it received per
second, and its CPU beside its CPU over a window with no daemon at all.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable

from sqlalchemy import text

from bench.customers import add_customers, recurring_workflows
from bench.harness import UTC, DaemonProcess, Figure, mark_events_processed, seed_services, settle
from bench.reconcile import book_future, offset_workflows, reconcile
from db import deliveries, events, instances
from db.connect import connect
from scheduler.catalogue import Catalogue
from scheduler.consumer import EventConsumer
from scheduler.jobstore import SafeJobStore
from scheduler.planner import Planner
from scheduler.workers import DeliveryWorker

ROUNDS = 200


def idle_poll(engine, now: dt.datetime) -> float:
    """Mean seconds of one idle round of the daemon's loops."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            # What autovacuum does soon after a bulk load. Until then, each event handled leaves a
            # dead entry in the index of unhandled events that the consumer's claim steps over.
            conn.exec_driver_sql("VACUUM ANALYZE")
    if engine.dialect.name == "mysql":
        _purged(engine)  # InnoDB's purge is MySQL's vacuum: the same dead entries, until it has run
    consumer = EventConsumer(engine, Catalogue())
    worker = DeliveryWorker(engine, transports=None, company={})
    store = SafeJobStore(engine, lambda: now)
    name = uuid.uuid4().hex
    with engine.begin() as conn:
        instances.register(conn, name, "bench", 0, now)
    began = time.perf_counter()
    for _ in range(ROUNDS):
        assert consumer.process_batch(now) == 0
        assert worker.work_one(now) is None
        store.get_next_run_time()
        with engine.begin() as conn:
            instances.heartbeat(conn, name, now)
            deliveries.reclaim_expired(conn, now)
            events.purge_processed(conn, now - dt.timedelta(days=7))
    return (time.perf_counter() - began) / ROUNDS


def _purged(engine, timeout: float = 600) -> None:
    """Wait until InnoDB's purge has caught up with the bulk load (its history list nearly empty)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            history = conn.execute(text("SELECT count FROM information_schema.innodb_metrics "
                                        "WHERE name = 'trx_rseg_history_len'")).scalar()
        if history is None or history < 1000:
            return
        time.sleep(1.0)


def _questions(conn) -> int:
    """Statements the MySQL/MariaDB server has received from clients so far, this one included."""
    return int(conn.execute(text("SHOW GLOBAL STATUS LIKE 'Questions'")).one()[1])


def periodic_reconcile(engine, now: dt.datetime) -> float:
    """Seconds of one periodic reconciliation, as the daemon runs it every reconcile_interval (10 min)."""
    planner = Planner(engine, Catalogue(), clock=lambda: now)
    began = time.perf_counter()
    planner.reconcile(now, until=now + 2 * dt.timedelta(minutes=10))
    return time.perf_counter() - began


def run(url: str, backend: str, small: int, window: float, customers: int = 0,
        server_cpu: Callable[[], float | None] = lambda: None) -> list[Figure]:
    """*server_cpu*: the database server's CPU seconds so far, where it is one process of ours (MariaDB)."""
    engine = connect(url)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    ids = seed_services(engine, 1)
    offset_workflows(engine, ids["service"], count=1)
    book_future(engine, ids, small, now)
    reconcile(engine, now)
    poll_small = idle_poll(engine, now)
    book_future(engine, ids, 9 * small, now + dt.timedelta(days=365))
    add_customers(engine, ids, customers, now)
    recurring_workflows(engine)
    mark_events_processed(engine)
    reconcile_seconds, _ = reconcile(engine, now)
    periodic = periodic_reconcile(engine, now)
    poll_large = idle_poll(engine, now)
    server = server_cpu() is not None
    if server:
        settle(server_cpu)  # the load's background work done
        server_alone = _share(server_cpu, window)
    daemon = DaemonProcess(url)
    try:
        daemon.wait_ready()
        started = time.monotonic()
        # Polling every 200 ms, a quiet daemon on MySQL/MariaDB uses 1-2 % of a core, more in some seconds.
        daemon.settle(quiet=0.05 if engine.dialect.name == "mysql" else 0.02)
        startup = time.monotonic() - started
        cpu, statements, server_busy = _quiet(daemon, engine, server_cpu, window)
        rss, peak = daemon.memory()
    finally:
        daemon.stop()
        engine.dispose()
    large = f"{10 * small} appointments, {10 * small} pending firings, {customers} customers"
    figures = [
        Figure(scenario="idle", database=backend, figure=f"one idle poll at {large} (floor: at a tenth)",
               value=poll_large * 1000, unit="ms", floor=poll_small * 1000, aim="flat (≈ 1 ×)"),
        Figure(scenario="idle", database=backend, figure=f"daemon CPU, quiet, {large}", value=cpu,
               unit="% of a core", aim="< 1 %"),
    ]
    if statements is not None:
        figures.append(Figure(scenario="idle", database=backend, figure=f"statements the server received, quiet "
                              f"daemon, {large}", value=statements, unit="/s"))
    if server:
        figures += [Figure(scenario="idle", database=backend, figure="server CPU, no daemon", value=server_alone,
                           unit="% of a core"),
                    Figure(scenario="idle", database=backend, figure=f"server CPU, quiet daemon, {large}",
                           value=server_busy, unit="% of a core")]
    return figures + [
        Figure(scenario="idle", database=backend, figure=f"daemon RSS after start-up, {large}", value=rss,
               unit="MB", aim="< 150 MB"),
        Figure(scenario="idle", database=backend, figure=f"daemon peak RSS (start-up reconciliation), {large}",
               value=peak, unit="MB"),
        Figure(scenario="idle", database=backend, figure=f"daemon start-up until quiet, {large}", value=startup,
               unit="s"),
        Figure(scenario="idle", database=backend, figure=f"full reconciliation in-process, {large}",
               value=reconcile_seconds, unit="s"),
        Figure(scenario="idle", database=backend, figure=f"periodic reconciliation (every 10 min), {large}",
               value=periodic, unit="s", aim="< 6 s (1 % of 10 min)"),
        Figure(scenario="idle", database=backend, figure=f"periodic reconciliation's share of its interval, {large}",
               value=periodic / 600 * 100, unit="%", aim="< 1 %"),
    ]


def _quiet(daemon: DaemonProcess, engine, server_cpu, window: float) -> tuple[float, float | None, float | None]:
    """Over *window* seconds: the daemon's CPU (% of a core), the statements the server received per second
    (MySQL/MariaDB) and the server's CPU (% of a core, where *server_cpu* knows it)."""
    mysql, server = engine.dialect.name == "mysql", server_cpu() is not None
    with engine.connect() as conn:  # one connection, one statement at each end of the window
        before, server_before = daemon.cpu_seconds(), server_cpu()
        questions = _questions(conn) if mysql else 0
        time.sleep(window)
        cpu = (daemon.cpu_seconds() - before) / window * 100
        statements = (_questions(conn) - questions - 1) / window if mysql else None
        server_busy = (server_cpu() - server_before) / window * 100 if server else None
    return cpu, statements, server_busy


def _share(cpu_seconds: Callable[[], float], window: float) -> float:
    """The percentage of a core *cpu_seconds* grows by over *window* seconds."""
    before = cpu_seconds()
    time.sleep(window)
    return (cpu_seconds() - before) / window * 100
