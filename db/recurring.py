"""Queries of the recurring triggers: a schedule's targets and agendas, birthdays, customers' last visits.

Where the server compares times in SQL, ranges of ``starts_at`` and ``ends_at``
are asked of it (indexed on the reference tables, see revision 0004); SQLite
holds whatever ISO 8601 spelling the booking application wrote, so there the
rows are read and compared parsed, as :func:`db.booking.booking_pages` does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import and_, extract, func, or_, select
from sqlalchemy.engine import Connection

from db.booking import load_bookings
from db.records import Booking, Location, Staff
from db.servers import server_for
from db.tables import apscheduler_jobs, appointments, customers, deliveries, locations, staff

_CHUNK = 500


def _chunks(ids: Iterable[int]):
    wanted = sorted(set(ids))
    for start in range(0, len(wanted), _CHUNK):
        yield wanted[start:start + _CHUNK]


def _comparable(conn: Connection) -> bool:
    return server_for(conn).comparable_times


# --- schedule -----------------------------------------------------------------------------------------

def staff_ids(conn: Connection, only: Iterable[int] | None = None) -> list[int]:
    """Every staff member's id (those among *only*, if given)."""
    query = select(staff.c.id).order_by(staff.c.id)
    if only is not None:
        query = query.where(staff.c.id.in_(list(only)))
    return list(conn.execute(query).scalars())


def location_zones(conn: Connection, only: Iterable[int] | None = None) -> dict[int, str | None]:
    """Location id → its time zone's name (those among *only*, if given)."""
    query = select(locations.c.id, locations.c.timezone).order_by(locations.c.id)
    if only is not None:
        query = query.where(locations.c.id.in_(list(only)))
    return {row.id: row.timezone for row in conn.execute(query)}


def staff_zones(conn: Connection, ids: Iterable[int], now: dt.datetime) -> dict[int, str | None]:
    """Staff id → the time zone where they work: the location of their next appointment from *now*, else
    of their latest one; absent for a staff member with no appointment at a location."""
    zones = {}
    for member in ids:
        query = (select(appointments.c.starts_at, locations.c.timezone)
                 .join(locations, locations.c.id == appointments.c.location_id)
                 .where(appointments.c.staff_id == member))
        if _comparable(conn):
            ahead = conn.execute(query.where(appointments.c.starts_at >= now)
                                 .order_by(appointments.c.starts_at).limit(1)).first()
            found = ahead or conn.execute(query.order_by(appointments.c.starts_at.desc()).limit(1)).first()
        else:
            rows = conn.execute(query).all()
            ahead = sorted((r for r in rows if r.starts_at >= now), key=lambda r: r.starts_at)
            found = ahead[0] if ahead else max(rows, key=lambda r: r.starts_at, default=None)
        if found is not None:
            zones[member] = found.timezone
    return zones


def agenda(conn: Connection, column: str | None, target: int | None, start: dt.datetime,
           end: dt.datetime) -> list[int]:
    """The appointments starting in [*start*, *end*) whose *column* (staff_id, location_id; None: every
    appointment) is *target*, soonest first."""
    query = select(appointments.c.id, appointments.c.starts_at)
    if column is not None:
        query = query.where(appointments.c[column] == target)
    if _comparable(conn):
        query = query.where(appointments.c.starts_at >= start, appointments.c.starts_at < end)
        rows = conn.execute(query).all()
    else:
        rows = [r for r in conn.execute(query) if start <= r.starts_at < end]
    return [r.id for r in sorted(rows, key=lambda r: (r.starts_at, r.id))]


def load_staff_rows(conn: Connection, ids: Iterable[int]) -> dict[int, dict]:
    """Staff rows by id, as column → value."""
    found = {}
    for chunk in _chunks(ids):
        found.update((row.id, dict(row._mapping)) for row in conn.execute(select(staff).where(staff.c.id.in_(chunk))))
    return found


def load_location_rows(conn: Connection, ids: Iterable[int]) -> dict[int, dict]:
    """Location rows by id, as column → value."""
    found = {}
    for chunk in _chunks(ids):
        query = select(locations).where(locations.c.id.in_(chunk))
        found.update((row.id, dict(row._mapping)) for row in conn.execute(query))
    return found


AGENDA_TABLES = ("staff", "locations", "company")


def load_agenda(conn: Connection, subject_table: str, subject_id: int, appointment_ids: list[int]) -> Booking | None:
    """A schedule delivery's subject as it is now: the staff member or location (None if gone), or the
    company, with the bookings it lists (those still there, in the order listed)."""
    listed = tuple(load_bookings(conn, list(appointment_ids)))
    if subject_table == "company":
        return Booking(appointment=None, customer=None, agenda=listed)
    rows = (load_staff_rows if subject_table == "staff" else load_location_rows)(conn, [subject_id])
    if subject_id not in rows:
        return None
    if subject_table == "staff":
        return Booking(appointment=None, customer=None, staff=Staff(**rows[subject_id]), agenda=listed)
    return Booking(appointment=None, customer=None, location=Location(**rows[subject_id]), agenda=listed)


# --- customer_birthday ----------------------------------------------------------------------------------

def customers_born_on(conn: Connection, days: set[tuple[int, int]]) -> list[int]:
    """The customers whose birthday falls on one of these (month, day): one pass over the table, in the
    server, however many customers it holds (the periodic reconciliation asks two or three days)."""
    if not days:
        return []
    month, day = extract("month", customers.c.birthday), extract("day", customers.c.birthday)
    wanted = or_(*(and_(month == m, day == d) for m, d in sorted(days)))
    query = select(customers.c.id).where(customers.c.birthday.is_not(None), wanted).order_by(customers.c.id)
    return list(conn.execute(query).scalars())


def customer_dates(conn: Connection, ids: Iterable[int]) -> dict[int, tuple[dt.date | str | None, str | None]]:
    """Customer id → (birthday, time zone), for those that exist."""
    found = {}
    for chunk in _chunks(ids):
        query = select(customers.c.id, customers.c.birthday, customers.c.timezone).where(customers.c.id.in_(chunk))
        found.update((row.id, (row.birthday, row.timezone)) for row in conn.execute(query))
    return found


# --- customer_inactive -----------------------------------------------------------------------------------

def visits_ended_between(conn: Connection, statuses: Iterable[str], start: dt.datetime,
                         end: dt.datetime) -> set[int]:
    """The customers with an appointment in *statuses* that ended in [*start*, *end*] (an index range
    on ``ends_at``: the cost follows the visits of those days, not the size of the tables)."""
    query = select(appointments.c.customer_id, appointments.c.ends_at).where(
        appointments.c.status.in_(list(statuses)), appointments.c.customer_id.is_not(None))
    if _comparable(conn):
        rows = conn.execute(query.where(appointments.c.ends_at >= start, appointments.c.ends_at <= end))
        return {row.customer_id for row in rows}
    return {row.customer_id for row in conn.execute(query) if start <= row.ends_at <= end}


def last_visits(conn: Connection, ids: Iterable[int], statuses: Iterable[str]) -> dict[int, dt.datetime]:
    """Customer id → the end of their latest appointment in *statuses* (those with one)."""
    statuses, found = list(statuses), {}
    for chunk in _chunks(ids):
        where = (appointments.c.customer_id.in_(chunk), appointments.c.status.in_(statuses))
        if _comparable(conn):
            query = select(appointments.c.customer_id, func.max(appointments.c.ends_at).label("ends_at")).where(
                *where).group_by(appointments.c.customer_id)
            found.update((row.customer_id, _aware(row.ends_at)) for row in conn.execute(query))
            continue
        for row in conn.execute(select(appointments.c.customer_id, appointments.c.ends_at).where(*where)):
            if row.customer_id not in found or row.ends_at > found[row.customer_id]:
                found[row.customer_id] = row.ends_at
    return found


def booked_ahead(conn: Connection, ids: Iterable[int], now: dt.datetime, not_happening: Iterable[str]) -> set[int]:
    """The customers among *ids* with an appointment starting after *now* that is not in *not_happening*."""
    not_happening, found = list(not_happening), set()
    for chunk in _chunks(ids):
        query = select(appointments.c.customer_id, appointments.c.starts_at).where(
            appointments.c.customer_id.in_(chunk), appointments.c.status.not_in(not_happening))
        if _comparable(conn):
            found.update(conn.execute(query.where(appointments.c.starts_at > now)).scalars())
        else:
            found.update(row.customer_id for row in conn.execute(query) if row.starts_at > now)
    return found


def _aware(value: dt.datetime) -> dt.datetime:
    """MAX() of a time column may come back without the column's type (naive, meaning UTC)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


# --- what fired, what is planned --------------------------------------------------------------------------

def occurrence_recorded(conn: Connection, workflow_id: int, subject_table: str, subject_id: int,
                        occurrence: str) -> bool:
    """Whether an occurrence of this workflow for this subject fired (or was recorded missed or skipped)."""
    query = select(deliveries.c.id).where(
        deliveries.c.workflow_id == workflow_id, deliveries.c.subject_table == subject_table,
        deliveries.c.subject_id == subject_id, deliveries.c.occurrence == occurrence).limit(1)
    return conn.execute(query).first() is not None


def run_times_by_prefix(conn: Connection, prefixes: Iterable[str]) -> dict[str, float | None]:
    """Job id → next run time of the jobs whose id starts with one of *prefixes* (``sched:``, ...)."""
    query = select(apscheduler_jobs.c.id, apscheduler_jobs.c.next_run_time).where(
        or_(*(apscheduler_jobs.c.id.startswith(prefix, autoescape=True) for prefix in prefixes)))
    return {row.id: row.next_run_time for row in conn.execute(query)}
