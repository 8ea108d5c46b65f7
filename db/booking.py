"""Reads of the booking tables, and the one write apptflow makes there (set_status)."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from typing import Any

from sqlalchemy import Text, cast, func, select, update
from sqlalchemy.engine import Connection

from db import mapping
from db.events import stamp_chain_depth, unstamp_chain_depth
from db.partitions import in_partitions
from db.records import Appointment, Booking, Customer, Location, Service, Staff
from db.servers import among, server_for
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


def names_before(conn: Connection, context: dict[str, Any]) -> dict[str, str]:
    """The names of the staff member, location and service an appointment had before a reschedule
    (their ids in *context*, as ``old_staff_id`` ...), as ``old_staff_name`` ...; empty when gone."""
    names = {}
    for what, table in (("staff", staff), ("location", locations), ("service", services)):
        row = _one(conn, table, context.get(f"old_{what}_id"))
        names[f"old_{what}_name"] = (row.name or "") if row is not None else ""
    return names


def load_customer(conn: Connection, customer_id: int | None) -> Customer | None:
    """A customer as it is now, or None."""
    row = _one(conn, customers, customer_id)
    if row is None:
        return None
    return Customer(**{**row._mapping, "custom": _custom(row.custom)})


def load_booking(conn: Connection, appointment_id: int) -> Booking | None:
    """An appointment with its customer, service, staff and location, or None if it is gone."""
    found = load_bookings(conn, [appointment_id])
    return found[0] if found else None


def load_customer_booking(conn: Connection, customer_id: int) -> Booking | None:
    """A customer alone (customer triggers have no appointment), or None if it is gone."""
    customer = load_customer(conn, customer_id)
    return Booking(appointment=None, customer=customer) if customer else None


def set_appointment_status(conn: Connection, appointment_id: int, status: str, depth: int) -> bool:
    """Set an appointment's status as a set_status action at chain *depth*; False if it is gone.

    The change is captured like any other, stamped with *depth* so that the
    workflows it triggers know how long the chain is. On an application's own
    tables the mapping writes the application's status column, translated.
    """
    mapped = mapping.installed(conn)
    if mapped is None and not server_for(conn).depth_in_session:
        return _set_status_stamping_after(conn, appointment_id, status, depth)
    stamp_chain_depth(conn, depth)
    try:
        if mapped is not None:
            return mapping.set_status(conn, mapped, appointment_id, status)
        return _write_status(conn, appointment_id, status)
    finally:
        unstamp_chain_depth(conn)


def _write_status(conn: Connection, appointment_id: int, status: str) -> bool:
    result = conn.execute(
        update(appointments).where(appointments.c.id == appointment_id).values(status=status, updated_at=utcnow())
    )
    return result.rowcount > 0


def _set_status_stamping_after(conn: Connection, appointment_id: int, status: str, depth: int) -> bool:
    """Where triggers cannot read a session setting (SQLite): write, then stamp the events the write made.
    This transaction holds the write lock, so the events after ``before`` are its own."""
    before = conn.execute(select(func.coalesce(func.max(change_events.c.id), 0))).scalar_one()
    written = _write_status(conn, appointment_id, status)
    conn.execute(
        update(change_events)
        .where(change_events.c.id > before, change_events.c.table_name == "appointments",
               change_events.c.row_id == appointment_id)
        .values(depth=depth)
    )
    return written


class _Joined:
    """One query that reads bookings: the appointment and some of the rows it refers to, each row's columns
    side by side in the order of *parts* (a Booking's field and its table, record class and foreign key)."""

    def __init__(self, *parts: tuple[str, Any, type, Any]):
        self.layout, start = [], 0
        joined = appointments
        for field, table, kind, key in parts:
            names = table.c.keys()
            self.layout.append((field, kind, names, start, start + len(names), "custom" in names))
            start += len(names)
            if key is not None:
                joined = joined.outerjoin(table, table.c.id == key)
        self.query = select(*(column for _, table, _, _ in parts for column in _columns(table))).select_from(joined)

    def booking(self, row) -> Booking:
        records = {}
        for field, kind, names, start, end, custom in self.layout:
            values = dict(zip(names, row[start:end]))
            if values["id"] is None:  # a dangling or empty reference
                records[field] = None
                continue
            if custom:
                values["custom"] = _custom(values["custom"])
            records[field] = kind(**values)
        return Booking(**records)


_WHOLE = _Joined(("appointment", appointments, Appointment, None),
                 ("customer", customers, Customer, appointments.c.customer_id),
                 ("service", services, Service, appointments.c.service_id),
                 ("staff", staff, Staff, appointments.c.staff_id),
                 ("location", locations, Location, appointments.c.location_id))
# What planning a time-offset firing reads (engine/planning.py): the appointment (its times, filters),
# the customer's locale and time zone and the location's time zone (send windows). The firing itself
# reads the whole booking again.
_FOR_PLANNING = _Joined(("appointment", appointments, Appointment, None),
                        ("customer", customers, Customer, appointments.c.customer_id),
                        ("location", locations, Location, appointments.c.location_id))


def load_bookings(conn: Connection, appointment_ids: list[int], joined: _Joined = _WHOLE) -> list[Booking]:
    """Many bookings at once, in the order asked (the gone ones left out): one query per 500."""
    found = {}
    for start in range(0, len(appointment_ids), 500):
        query = joined.query.where(among(conn, appointments.c.id, appointment_ids[start:start + 500]))
        found.update((b.appointment.id, b) for b in map(joined.booking, conn.execute(query)))
    return [found[i] for i in appointment_ids if i in found]


def bookings_by_id(conn: Connection, appointment_ids: set[int]) -> dict[int, Booking]:
    """The bookings of these appointments that exist, by appointment id (one query per table)."""
    return {b.appointment.id: b for b in load_bookings(conn, sorted(appointment_ids))}


def booking_pages(conn: Connection, anchor: str, earliest, size: int, latest=None,
                  partitions: tuple[int, Collection[int]] = (1, (0,))) -> Iterator[list[Booking]]:
    """Every appointment whose *anchor* column (starts_at or ends_at) is at or after *earliest* (and at
    or before *latest*, if given), *size* bookings at a time in id order, so that memory holds one page
    whatever the table's size; only those of the given partitions (how many, which). Each booking holds
    what planning reads: the appointment, its customer and its location."""
    column, last = appointments.c[anchor], 0
    mine = in_partitions(appointments.c.id, *partitions)
    while True:
        query = (select(appointments.c.id, column).where(appointments.c.id > last, mine)
                 .order_by(appointments.c.id))
        if not server_for(conn).comparable_times:
            # SQLite holds whatever ISO 8601 spelling the booking application wrote, which does
            # not sort as text: compare the parsed values.
            rows = conn.execute(query.limit(size)).all()
            ids = [row.id for row in rows if row[1] >= earliest and (latest is None or row[1] <= latest)]
        else:
            if latest is not None:
                query = query.where(column <= latest)
            rows = conn.execute(query.where(column >= earliest).limit(size)).all()
            ids = [row.id for row in rows]
        if not rows:
            return
        last = rows[-1].id
        if ids:
            yield load_bookings(conn, ids, _FOR_PLANNING)


def existing_appointments(conn: Connection, ids: set[int]) -> set[int]:
    """Which of these appointment ids exist."""
    wanted, found = sorted(ids), set()
    for start in range(0, len(wanted), 500):
        query = select(appointments.c.id).where(among(conn, appointments.c.id, wanted[start:start + 500]))
        found.update(conn.execute(query).scalars())
    return found


def appointment_ids_of_customer(conn: Connection, customer_id: int) -> list[int]:
    """The appointments of one customer."""
    return list(conn.execute(select(appointments.c.id).where(appointments.c.customer_id == customer_id)).scalars())
