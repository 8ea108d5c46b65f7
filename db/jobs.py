"""Queries on APScheduler's job table and on the jobs kept aside because they could not be restored."""

from __future__ import annotations

import datetime as dt
import pickle
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from db.codes import CapturedTable, DeliveryStatus
from db.partitions import in_partitions as partition_filter
from db.servers import among
from db.tables import (apscheduler_failed_jobs, apscheduler_jobs, appointments, customers, deliveries, locations,
                       workflows)


def job_id(workflow_id: int, appointment_id: int) -> str:
    """The id of the one job of a (workflow, appointment) pair: its time-offset firing."""
    return f"wf:{workflow_id}:appt:{appointment_id}"


def partition_key(value: str) -> int:
    """What a job's partition is the remainder of: the id of its subject (an appointment, a customer, a
    schedule's staff member or location; 0 for the company), the last part of every apptflow job id."""
    last = value.rsplit(":", 1)[-1]
    return int(last) if last.isdigit() else 0


def parse_job_id(value: str) -> tuple[int, int] | None:
    """(workflow id, appointment id) of a job id made by :func:`job_id`, else None."""
    parts = value.split(":")
    if len(parts) == 4 and parts[0] == "wf" and parts[2] == "appt" and parts[1].isdigit() and parts[3].isdigit():
        return int(parts[1]), int(parts[3])
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class UpcomingFiring:
    """A planned time-offset firing, with what ``apptflow jobs`` shows of it."""

    run_at: dt.datetime
    workflow_id: int
    workflow_name: str | None  # None: the workflow is gone
    appointment_id: int
    timezone: str | None  # the appointment's location's; None when it has none, or the appointment is gone
    customer: str | None  # the customer's full name; None when there is none, or the appointment is gone
    # The firing's planned time, when the job runs at another (its send window moves it, or it runs late)
    planned_at: dt.datetime | None = None


def _firings(conn: Connection, *columns) -> list:
    """Every job (id, next run time, *columns*), soonest first: ids are parsed here, never matched with LIKE."""
    query = (select(apscheduler_jobs.c.id, apscheduler_jobs.c.next_run_time, *columns)
             .order_by(apscheduler_jobs.c.next_run_time, apscheduler_jobs.c.id))
    return [row for row in conn.execute(query) if parse_job_id(row.id) is not None]


def _planned_at(state: bytes) -> dt.datetime | None:
    """The planned time a firing job carries (its last argument, ISO 8601); None if it cannot be read (a job
    that cannot be restored is reported on its own)."""
    try:
        return dt.datetime.fromisoformat(pickle.loads(state)["args"][2])
    except Exception:  # noqa: BLE001 - any unreadable state is just not shown
        return None


def count_firings(conn: Connection) -> int:
    """How many time-offset firings are planned."""
    return len(_firings(conn))


def upcoming_firings(conn: Connection, *, workflow_id: int | None = None,
                     appointment_id: int | None = None) -> list[UpcomingFiring]:
    """The planned time-offset firings, soonest first, optionally of one workflow or appointment.

    A fixed number of queries whatever the number of jobs: the jobs, then the
    appointments (500 to a query) and the workflows they name.
    """
    planned = []
    for job, timestamp, state in _firings(conn, apscheduler_jobs.c.job_state):
        ids = parse_job_id(job)
        if timestamp is None or workflow_id not in (None, ids[0]) or appointment_id not in (None, ids[1]):
            continue
        planned.append((dt.datetime.fromtimestamp(timestamp, dt.timezone.utc), *ids, _planned_at(state)))
    names = _workflow_names(conn, {wf for _, wf, _, _ in planned})
    people = _people(conn, sorted({appt for _, _, appt, _ in planned}))
    firings = []
    for at, wf, appt, due in planned:
        timezone, customer = people.get(appt, (None, None))
        firings.append(UpcomingFiring(run_at=at, workflow_id=wf, workflow_name=names.get(wf), appointment_id=appt,
                                      timezone=timezone, customer=customer, planned_at=_moved(due, at)))
    return firings


def _moved(planned: dt.datetime | None, run_at: dt.datetime) -> dt.datetime | None:
    """*planned*, when the job runs at another time (beyond the float timestamp's rounding)."""
    return planned if planned is not None and abs((planned - run_at).total_seconds()) >= 0.001 else None


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitingDelivery:
    """A pending delivery due later (a retry, or one waiting for its send window), for ``apptflow jobs``."""

    id: int
    next_attempt_at: dt.datetime
    workflow_id: int
    workflow_name: str | None  # None: the workflow is gone
    action_type: str
    appointment_id: int | None  # None: its subject is a customer
    customer: str | None
    context: dict[str, Any]


def waiting_deliveries(conn: Connection, now: dt.datetime, *, workflow_id: int | None = None,
                       appointment_id: int | None = None) -> list[WaitingDelivery]:
    """The pending deliveries due after *now*, soonest first, optionally of one workflow or appointment."""
    query = (select(deliveries.c.id, deliveries.c.next_attempt_at, deliveries.c.workflow_id,
                    deliveries.c.action_type, deliveries.c.subject_table, deliveries.c.subject_id,
                    deliveries.c.context)
             .where(deliveries.c.status == DeliveryStatus.PENDING, deliveries.c.next_attempt_at > now)
             .order_by(deliveries.c.next_attempt_at, deliveries.c.id))
    if workflow_id is not None:
        query = query.where(deliveries.c.workflow_id == workflow_id)
    if appointment_id is not None:
        query = query.where(deliveries.c.subject_table == CapturedTable.APPOINTMENTS,
                            deliveries.c.subject_id == appointment_id)
    rows = conn.execute(query).all()
    names = _workflow_names(conn, {row.workflow_id for row in rows})
    people = _people(conn, sorted({_appointment(row) for row in rows} - {None}))
    return [WaitingDelivery(id=row.id, next_attempt_at=row.next_attempt_at, workflow_id=row.workflow_id,
                            workflow_name=names.get(row.workflow_id), action_type=row.action_type,
                            appointment_id=_appointment(row), customer=people.get(_appointment(row), (None, None))[1],
                            context=row.context or {})
            for row in rows]


def _appointment(row) -> int | None:
    return row.subject_id if row.subject_table == CapturedTable.APPOINTMENTS else None


def _workflow_names(conn: Connection, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    query = select(workflows.c.id, workflows.c.name).where(workflows.c.id.in_(sorted(ids)))
    return {row.id: row.name for row in conn.execute(query)}


def _people(conn: Connection, ids: list[int]) -> dict[int, tuple[str | None, str | None]]:
    """Appointment id → (its location's time zone, its customer's full name)."""
    found = {}
    joined = (appointments.outerjoin(customers, customers.c.id == appointments.c.customer_id)
              .outerjoin(locations, locations.c.id == appointments.c.location_id))
    for start in range(0, len(ids), 500):
        query = (select(appointments.c.id, locations.c.timezone, customers.c.id.label("customer_id"),
                        customers.c.first_name, customers.c.last_name)
                 .select_from(joined).where(appointments.c.id.in_(ids[start:start + 500])))
        for row in conn.execute(query):
            name = (" ".join(n for n in (row.first_name, row.last_name) if n)
                    if row.customer_id is not None else None)
            found[row.id] = (row.timezone, name)
    return found


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
            among(conn, apscheduler_jobs.c.id, wanted[start:start + 500]))
        found.update({row.id: row.next_run_time for row in conn.execute(query)})
    return found


def in_partitions(partitions: int, held: Collection[int]) -> ColumnElement:
    """A condition: the job is in one of the *held* partitions (a job of before 0006 without a key: 0's)."""
    return partition_filter(func.coalesce(apscheduler_jobs.c.partition_key, 0), partitions, held)


def soonest(conn: Connection, limit: int, *conditions) -> list[tuple[str, float]]:
    """(id, next run time) of the *limit* jobs due soonest (among those meeting *conditions*)."""
    query = (select(apscheduler_jobs.c.id, apscheduler_jobs.c.next_run_time)
             .where(apscheduler_jobs.c.next_run_time.is_not(None), *conditions)
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
    """Write jobs (id, next_run_time, job_state), replacing those with the same ids, in the caller's transaction;
    each with its partition key."""
    if not rows:
        return
    rows = [{**row, "partition_key": partition_key(row["id"])} for row in rows]
    ids = [row["id"] for row in rows]
    for start in range(0, len(ids), 500):
        conn.execute(delete(apscheduler_jobs).where(among(conn, apscheduler_jobs.c.id, ids[start:start + 500])))
    conn.execute(insert(apscheduler_jobs), rows)


def remove_jobs(conn: Connection, ids: list[str]) -> int:
    """Delete jobs by id; return how many existed."""
    removed = 0
    for start in range(0, len(ids), 500):
        removed += conn.execute(
            delete(apscheduler_jobs).where(among(conn, apscheduler_jobs.c.id, ids[start:start + 500]))).rowcount
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
