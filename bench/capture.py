"""Capture cost: how fast the application writes with apptflow's capture triggers on its tables, and without.

Cal.com's tables (the test suite's copy of its Prisma schema) on PostgreSQL,
written the way Cal.com's booker writes: a booking and its attendee in one
transaction, then an update of each booking's status, one transaction each,
from one connection. The floor is the same writes on the same tables before
`apptflow db init` installs the calcom mapping; the figure is after.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path

from sqlalchemy import text

from bench.harness import Figure
from db import mapping, schema
from db.connect import connect

CALCOM = Path(__file__).parents[1] / "tests" / "calcom" / "schema.sql"
START = dt.datetime(2030, 1, 7, 9, 0)


def _calcom_tables(url: str) -> None:
    app = connect(url, schema="public")
    with app.begin() as conn:
        conn.exec_driver_sql(CALCOM.read_text())
        conn.exec_driver_sql("INSERT INTO users (id, name, email) VALUES (1, 'Sam', 'sam@bench.test')")
        conn.exec_driver_sql("INSERT INTO \"EventType\" (id, title, slug, length, \"userId\") "
                             "VALUES (1, 'Call', 'call', 30, 1)")
    app.dispose()


def _write(url: str, count: int) -> tuple[float, float]:
    """Bookings inserted per second (with their attendee), then status updates per second."""
    app = connect(url, schema="public")
    ids = []
    began = time.perf_counter()
    for n in range(count):
        start = START + dt.timedelta(minutes=30 * n)
        with app.begin() as conn:
            booking = conn.execute(text(
                'INSERT INTO "Booking" (uid, "userId", "eventTypeId", title, "startTime", "endTime", "updatedAt") '
                "VALUES (:uid, 1, 1, 'Call', :start, :end, now()) RETURNING id"),
                {"uid": uuid.uuid4().hex, "start": start, "end": start + dt.timedelta(minutes=30)}).scalar_one()
            conn.execute(text('INSERT INTO "Attendee" (email, name, "timeZone", "bookingId") '
                              "VALUES ('a@bench.test', 'Ada Bench', 'UTC', :booking)"), {"booking": booking})
        ids.append(booking)
    inserts = count / (time.perf_counter() - began)
    began = time.perf_counter()
    for booking in ids:
        with app.begin() as conn:
            conn.execute(text("UPDATE \"Booking\" SET status = 'cancelled' WHERE id = :id"), {"id": booking})
    updates = count / (time.perf_counter() - began)
    app.dispose()
    return inserts, updates


def run(bare_url: str, captured_url: str, backend: str, count: int) -> list[Figure]:
    """*bare_url* and *captured_url*: two empty PostgreSQL databases."""
    if backend != "postgresql":
        return []  # mappings, and so capture on an application's tables, are PostgreSQL's
    for url in (bare_url, captured_url):
        _calcom_tables(url)
    engine = connect(captured_url)
    schema.upgrade(engine, mapping.load("calcom"))
    engine.dispose()
    _write(bare_url, count // 10)  # warm both up alike
    _write(captured_url, count // 10)
    bare = _write(bare_url, count)
    captured = _write(captured_url, count)
    return [
        Figure(scenario="capture", database=backend, figure=f"Cal.com booking + attendee inserts ({count})",
               value=captured[0], unit="tx/s", floor=bare[0], aim="≥ 0.5"),
        Figure(scenario="capture", database=backend, figure=f"Cal.com status updates ({count})",
               value=captured[1], unit="tx/s", floor=bare[1], aim="≥ 0.5"),
    ]
