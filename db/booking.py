"""Reads of the booking tables, and the one write apptflow makes there (set_status)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Text, cast, func, select, update
from sqlalchemy.engine import Connection

from db.events import stamp_chain_depth
from db.records import Appointment, Booking, Customer, Location, Service, Staff
from db.tables import appointments, change_events, customers, locations, services, staff, utcnow


def _custom(value: str | None) -> dict[str, Any]:
    """A custom-fields column; malformed or non-object JSON written by hand reads as no fields."""
    try:
        decoded = json.loads(value) if value else {}
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _columns(table):
    return [cast(c, Text).label(c.name) if c.name == "custom" else c for c in table.c]


def _one(conn: Connection, table, row_id: int | None):
    if row_id is None:
        return None
    return conn.execute(select(*_columns(table)).where(table.c.id == row_id)).one_or_none()


def load_customer(conn: Connection, customer_id: int | None) -> Customer | None:
    """A customer as it is now, or None."""
    row = _one(conn, customers, customer_id)
    if row is None:
        return None
    return Customer(**{**row._mapping, "custom": _custom(row.custom)})


def load_appointment(conn: Connection, appointment_id: int) -> Appointment | None:
    """An appointment as it is now, or None if it was deleted."""
    row = _one(conn, appointments, appointment_id)
    if row is None:
        return None
    return Appointment(**{**row._mapping, "custom": _custom(row.custom)})


def load_booking(conn: Connection, appointment_id: int) -> Booking | None:
    """An appointment with its customer, service, staff and location, or None if it is gone."""
    appointment = load_appointment(conn, appointment_id)
    if appointment is None:
        return None
    service, member, location = (
        _one(conn, table, row_id) for table, row_id in (
            (services, appointment.service_id), (staff, appointment.staff_id),
            (locations, appointment.location_id))
    )
    return Booking(
        appointment=appointment,
        customer=load_customer(conn, appointment.customer_id),
        service=Service(**service._mapping) if service else None,
        staff=Staff(**member._mapping) if member else None,
        location=Location(**location._mapping) if location else None,
    )


def load_customer_booking(conn: Connection, customer_id: int) -> Booking | None:
    """A customer alone (customer triggers have no appointment), or None if it is gone."""
    customer = load_customer(conn, customer_id)
    return Booking(appointment=None, customer=customer) if customer else None


def set_appointment_status(conn: Connection, appointment_id: int, status: str, depth: int) -> bool:
    """Set an appointment's status as a set_status action at chain *depth*; False if it is gone.

    The change is captured like any other, stamped with *depth* so that the
    workflows it triggers know how long the chain is.
    """
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        before = conn.execute(select(func.coalesce(func.max(change_events.c.id), 0))).scalar_one()
    else:
        stamp_chain_depth(conn, depth)
    result = conn.execute(
        update(appointments).where(appointments.c.id == appointment_id)
        .values(status=status, updated_at=utcnow())
    )
    if sqlite:
        # SQLite triggers cannot read a session setting; this transaction holds
        # the write lock, so the events after `before` are the ones it made.
        conn.execute(
            update(change_events)
            .where(change_events.c.id > before, change_events.c.table_name == "appointments",
                   change_events.c.row_id == appointment_id)
            .values(depth=depth)
        )
    return result.rowcount > 0


def _by_id(conn: Connection, table, ids: set[int]) -> dict[int, Any]:
    ids.discard(None)
    rows = {}
    chunk = sorted(ids)
    for start in range(0, len(chunk), 500):
        query = select(*_columns(table)).where(table.c.id.in_(chunk[start:start + 500]))
        rows.update({row.id: row for row in conn.execute(query)})
    return rows


def load_bookings(conn: Connection, appointment_ids: list[int]) -> list[Booking]:
    """Many bookings at once: one query per table, not per appointment."""
    found = _by_id(conn, appointments, set(appointment_ids))
    appts = [Appointment(**{**found[i]._mapping, "custom": _custom(found[i].custom)})
             for i in appointment_ids if i in found]
    people = _by_id(conn, customers, {a.customer_id for a in appts})
    related = {name: _by_id(conn, table, {getattr(a, key) for a in appts}) for name, table, key in (
        ("service", services, "service_id"), ("staff", staff, "staff_id"), ("location", locations, "location_id"))}
    kinds = {"service": Service, "staff": Staff, "location": Location}

    def one(name: str, row_id):
        row = related[name].get(row_id)
        return kinds[name](**row._mapping) if row is not None else None

    return [
        Booking(
            appointment=a,
            customer=Customer(**{**people[a.customer_id]._mapping, "custom": _custom(people[a.customer_id].custom)})
            if a.customer_id in people else None,
            service=one("service", a.service_id), staff=one("staff", a.staff_id),
            location=one("location", a.location_id),
        )
        for a in appts
    ]


def bookings_by_id(conn: Connection, appointment_ids: set[int]) -> dict[int, Booking]:
    """The bookings of these appointments that exist, by appointment id (one query per table)."""
    return {b.appointment.id: b for b in load_bookings(conn, sorted(appointment_ids))}


def booking_pages(conn: Connection, anchor: str, earliest, size: int) -> Iterator[list[Booking]]:
    """Every appointment whose *anchor* column (starts_at or ends_at) is at or after *earliest*,
    *size* bookings at a time in id order, so that memory holds one page whatever the table's size."""
    column, last = appointments.c[anchor], 0
    while True:
        query = select(appointments.c.id, column).where(appointments.c.id > last).order_by(appointments.c.id)
        if conn.dialect.name == "sqlite":
            # SQLite holds whatever ISO 8601 spelling the booking application wrote, which does
            # not sort as text: compare the parsed values.
            rows = conn.execute(query.limit(size)).all()
            ids = [row.id for row in rows if row[1] >= earliest]
        else:
            rows = conn.execute(query.where(column >= earliest).limit(size)).all()
            ids = [row.id for row in rows]
        if not rows:
            return
        last = rows[-1].id
        if ids:
            yield load_bookings(conn, ids)


def existing_appointments(conn: Connection, ids: set[int]) -> set[int]:
    """Which of these appointment ids exist."""
    wanted, found = sorted(ids), set()
    for start in range(0, len(wanted), 500):
        query = select(appointments.c.id).where(appointments.c.id.in_(wanted[start:start + 500]))
        found.update(conn.execute(query).scalars())
    return found


def appointment_ids_of_customer(conn: Connection, customer_id: int) -> list[int]:
    """The appointments of one customer."""
    return list(conn.execute(select(appointments.c.id).where(appointments.c.customer_id == customer_id)).scalars())
