"""Reconciling many time-offset firings: apptflow's batched jobstore writes vs bare APScheduler add_job.

    python bench/reconcile.py [--jobs N] [--url DATABASE_URL]

Both sides write the same N date jobs (same function reference, same
primitive arguments) into APScheduler 3's SQLAlchemy jobstore table on the
same database, in the same run; the figure that matters is the ratio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import text

from db import schema
from db.connect import connect
from scheduler.jobs import FIRE
from scheduler.jobstore import ArgsRecordingExecutor, SafeJobStore, date_job, make_scheduler

UTC = dt.timezone.utc


def bare_add_job(engine, count: int, start: dt.datetime) -> float:
    scheduler = BackgroundScheduler(timezone=UTC, jobstores={"default": SQLAlchemyJobStore(engine=engine)})
    scheduler.start(paused=True)
    began = time.perf_counter()
    for n in range(count):
        run_at = start + dt.timedelta(seconds=n)
        scheduler.add_job(FIRE, "date", run_date=run_at, id=f"wf:1:appt:{n}", args=(1, n, run_at.isoformat()),
                          replace_existing=True, misfire_grace_time=3600)
    elapsed = time.perf_counter() - began
    scheduler.shutdown(wait=False)
    return elapsed


def batched(engine, count: int, start: dt.datetime) -> float:
    store = SafeJobStore(engine, lambda: dt.datetime.now(UTC))
    scheduler = make_scheduler(store, ArgsRecordingExecutor(1))
    began = time.perf_counter()
    jobs = [date_job(scheduler, job_id=f"wf:1:appt:{n}", func=FIRE, args=(1, n, (start + dt.timedelta(seconds=n)).isoformat()),
                     run_at=start + dt.timedelta(seconds=n), grace=dt.timedelta(hours=1), name="bench")
            for n in range(count)]
    store.replace_jobs(jobs)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--url", default=None, help="database URL (default: a new SQLite file)")
    args = parser.parse_args()
    url = args.url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    engine = connect(url)
    schema.upgrade(engine)
    start = dt.datetime.now(UTC) + dt.timedelta(days=1)
    results = {}
    for name, run in (("bare add_job", bare_add_job), ("apptflow batch", batched)):
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM apscheduler_jobs"))
        results[name] = run(engine, args.jobs, start)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM apscheduler_jobs")).scalar() == args.jobs
    floor = results["bare add_job"]
    print(f"{engine.dialect.name}, {args.jobs} jobs")
    for name, seconds in results.items():
        print(f"  {name:<15} {seconds:8.3f}s  {args.jobs / seconds:10.0f} jobs/s  ratio to bare add_job {seconds / floor:6.3f}")
    engine.dispose()


if __name__ == "__main__":
    main()
