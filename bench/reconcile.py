"""Reconcile: every future firing of many appointments planned into APScheduler's SQL jobstore.

apptflow's full reconciliation (what the daemon does at start and every
``reconcile_interval``) of N appointments × 2 time-offset workflows, against
bare APScheduler ``add_job(..., replace_existing=True)`` writing the same kind
of date jobs into a jobstore on the same database in the same run. The bare
side runs on a sample (it needs one transaction per job); the ratio is of
firings per second.
"""

from __future__ import annotations

import datetime as dt
import time

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import text

from bench.harness import UTC, Figure, insert_appointments, mark_events_processed, seed_services
from db.connect import connect, own_table
from scheduler.catalogue import Catalogue
from scheduler.jobs import FIRE
from scheduler.planner import Planner
from tests.pipeline import add_workflow


def offset_workflows(engine, service: int, count: int = 2) -> None:
    """*count* time-offset workflows on *service* (a day before the start, an hour after the end, ...)."""
    for n, (kind, offset) in enumerate((("appointment_starts", "-1d"), ("appointment_ends", "1h"))[:count]):
        add_workflow(engine, {"name": f"reminder {n}", "trigger": {"type": kind, "offset": offset},
                              "filters": {"services": [service]},
                              "actions": [{"type": "webhook", "url": "https://hooks.example.com/x",
                                           "json": {"id": "{{ appointment_id }}"}}]})


def book_future(engine, ids: dict[str, int], count: int, now: dt.datetime) -> None:
    """*count* approved appointments, a minute apart from two days on; their change events taken as consumed."""
    for start in range(0, count, 100_000):
        times = [now + dt.timedelta(days=2, minutes=n) for n in range(start, min(count, start + 100_000))]
        insert_appointments(engine, ids, ids["service"], times)
    mark_events_processed(engine)


def reconcile(engine, now: dt.datetime) -> tuple[float, int]:
    """(seconds, jobs written) of one full reconciliation, as the daemon starts it."""
    planner = Planner(engine, Catalogue(), clock=lambda: now)
    began = time.perf_counter()
    written, _ = planner.reconcile(now)
    return time.perf_counter() - began, written


def bare_add_job(engine, count: int, now: dt.datetime) -> float:
    """Seconds for bare ``add_job`` to write *count* date jobs into a jobstore table of its own."""
    store = SQLAlchemyJobStore(engine=engine, tablename="bench_bare_jobs")
    scheduler = BackgroundScheduler(timezone=UTC, jobstores={"default": store})
    scheduler.start(paused=True)
    began = time.perf_counter()
    for n in range(count):
        run_at = now + dt.timedelta(days=2, minutes=n)
        scheduler.add_job(FIRE, "date", run_date=run_at, id=f"wf:1:appt:{n}", args=(1, n, run_at.isoformat()),
                          replace_existing=True, misfire_grace_time=3600)
    elapsed = time.perf_counter() - began
    scheduler.shutdown(wait=False)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE bench_bare_jobs"))
    return elapsed


def run(url: str, backend: str, appointments: int, sample: int) -> list[Figure]:
    engine = connect(url)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    ids = seed_services(engine, 1)
    offset_workflows(engine, ids["service"])
    book_future(engine, ids, appointments, now)
    first, written = reconcile(engine, now)
    again, rewritten = reconcile(engine, now)
    with engine.connect() as conn:
        jobs = conn.execute(text(f"SELECT count(*) FROM {own_table(conn, 'apscheduler_jobs')}")).scalar_one()
    assert jobs == written == 2 * appointments and rewritten == 0, (jobs, written, rewritten)
    floor = sample / bare_add_job(engine, sample, now)
    engine.dispose()
    what = f"{appointments} appointments × 2 workflows"
    return [
        Figure(scenario="reconcile", database=backend, figure=f"{what}: firings planned/s",
               value=written / first, unit="/s", floor=floor, aim="≥ 10,000/s and ≥ 10 × floor"),
        Figure(scenario="reconcile", database=backend, figure=f"{what}, nothing changed: firings checked/s",
               value=written / again, unit="/s", floor=floor),
    ]
