"""Queries on APScheduler's job table and on the jobs kept aside because they could not be restored."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from db.tables import apscheduler_failed_jobs, apscheduler_jobs


def run_times(conn: Connection, *, like: str | None = None) -> dict[str, float | None]:
    """Job id → next run time (UTC timestamp), for ids matching the SQL LIKE pattern *like*."""
    query = select(apscheduler_jobs.c.id, apscheduler_jobs.c.next_run_time)
    if like is not None:
        query = query.where(apscheduler_jobs.c.id.like(like))
    return {row.id: row.next_run_time for row in conn.execute(query)}


def run_times_of(conn: Connection, ids) -> dict[str, float | None]:
    """Job id → next run time, for the jobs among *ids* that exist (by primary key, whatever the table's size)."""
    wanted, found = sorted(ids), {}
    for start in range(0, len(wanted), 500):
        query = select(apscheduler_jobs.c.id, apscheduler_jobs.c.next_run_time).where(
            apscheduler_jobs.c.id.in_(wanted[start:start + 500]))
        found.update({row.id: row.next_run_time for row in conn.execute(query)})
    return found


def soonest(conn: Connection, limit: int) -> list[tuple[str, float]]:
    """(id, next run time) of the *limit* jobs due soonest."""
    query = (select(apscheduler_jobs.c.id, apscheduler_jobs.c.next_run_time)
             .where(apscheduler_jobs.c.next_run_time.is_not(None))
             .order_by(apscheduler_jobs.c.next_run_time).limit(limit))
    return [(row.id, row.next_run_time) for row in conn.execute(query)]


def job_ids_after(conn: Connection, last: str, limit: int) -> list[str]:
    """Up to *limit* job ids after *last* in id order: every job, a page at a time."""
    query = (select(apscheduler_jobs.c.id).where(apscheduler_jobs.c.id > last)
             .order_by(apscheduler_jobs.c.id).limit(limit))
    return list(conn.execute(query).scalars())


def job_states(conn: Connection, *conditions) -> list:
    """(id, job_state) of the jobs meeting APScheduler's *conditions*, soonest first."""
    query = select(apscheduler_jobs.c.id, apscheduler_jobs.c.job_state).order_by(apscheduler_jobs.c.next_run_time)
    if conditions:
        query = query.where(*conditions)
    return conn.execute(query).all()


def replace_jobs(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Write jobs (id, next_run_time, job_state), replacing those with the same ids, in the caller's transaction."""
    if not rows:
        return
    ids = [row["id"] for row in rows]
    for start in range(0, len(ids), 500):
        conn.execute(delete(apscheduler_jobs).where(apscheduler_jobs.c.id.in_(ids[start:start + 500])))
    conn.execute(insert(apscheduler_jobs), rows)


def remove_jobs(conn: Connection, ids: list[str]) -> int:
    """Delete jobs by id; return how many existed."""
    removed = 0
    for start in range(0, len(ids), 500):
        removed += conn.execute(
            delete(apscheduler_jobs).where(apscheduler_jobs.c.id.in_(ids[start:start + 500]))).rowcount
    return removed


def set_aside(conn: Connection, job_id: str, error: str, now: dt.datetime) -> None:
    """Move a job that cannot be restored out of APScheduler's way, keeping its state and the error."""
    row = conn.execute(select(apscheduler_jobs).where(apscheduler_jobs.c.id == job_id)).one_or_none()
    if row is None:
        return
    conn.execute(delete(apscheduler_failed_jobs).where(apscheduler_failed_jobs.c.id == job_id))
    conn.execute(insert(apscheduler_failed_jobs).values(
        id=row.id, next_run_time=row.next_run_time, job_state=row.job_state, error=error, failed_at=now))
    conn.execute(delete(apscheduler_jobs).where(apscheduler_jobs.c.id == job_id))


def failed_jobs(conn: Connection) -> list[tuple[str, float | None, str, dt.datetime]]:
    """Jobs set aside: (id, next run time, error, when)."""
    query = select(apscheduler_failed_jobs.c.id, apscheduler_failed_jobs.c.next_run_time,
                   apscheduler_failed_jobs.c.error, apscheduler_failed_jobs.c.failed_at)
    return [tuple(row) for row in conn.execute(query.order_by(apscheduler_failed_jobs.c.failed_at))]
