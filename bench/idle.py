"""Idle cost: a daemon watching many appointments and pending firings while nothing happens.

The tables are filled to N and then 10 N appointments (one pending firing
each, planned by the daemon's own reconciliation). The cost of one idle poll —
the consumer's look for events, a worker's look for due deliveries,
APScheduler's look for the next job and the housekeeping pass — is measured
in this process at both sizes: it must stay flat. Then a real daemon is
started on the large tables and, once its start-up reconciliation is done,
its CPU and resident memory are read from /proc over a quiet window.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

from bench.harness import UTC, DaemonProcess, Figure, seed_services
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


def periodic_reconcile(engine, now: dt.datetime) -> float:
    """Seconds of one periodic reconciliation, as the daemon runs it every reconcile_interval (10 min)."""
    planner = Planner(engine, Catalogue(), clock=lambda: now)
    began = time.perf_counter()
    planner.reconcile(now, until=now + 2 * dt.timedelta(minutes=10))
    return time.perf_counter() - began


def run(url: str, backend: str, small: int, window: float) -> list[Figure]:
    engine = connect(url)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    ids = seed_services(engine, 1)
    offset_workflows(engine, ids["service"], count=1)
    book_future(engine, ids, small, now)
    reconcile(engine, now)
    poll_small = idle_poll(engine, now)
    book_future(engine, ids, 9 * small, now + dt.timedelta(days=365))
    reconcile_seconds, _ = reconcile(engine, now)
    periodic = periodic_reconcile(engine, now)
    poll_large = idle_poll(engine, now)
    engine.dispose()
    daemon = DaemonProcess(url)
    try:
        daemon.wait_ready()
        started = time.monotonic()
        daemon.settle()
        startup = time.monotonic() - started
        before = daemon.cpu_seconds()
        time.sleep(window)
        cpu = (daemon.cpu_seconds() - before) / window * 100
        rss, peak = daemon.memory()
    finally:
        daemon.stop()
    large = f"{10 * small} appointments, {10 * small} pending firings"
    return [
        Figure(scenario="idle", database=backend, figure=f"one idle poll at {large} (floor: at a tenth)",
               value=poll_large * 1000, unit="ms", floor=poll_small * 1000, aim="flat (≈ 1 ×)"),
        Figure(scenario="idle", database=backend, figure=f"daemon CPU, quiet, {large}", value=cpu,
               unit="% of a core", aim="< 1 %"),
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
    ]
