"""Capture cost: how fast the application writes with apptflow's capture triggers on its tables, and without.

PostgreSQL: Cal.com's tables (the test suite's copy of its Prisma schema),
written the way Cal.com's booker writes: a booking and its attendee in one
transaction, then an update of each booking's status, one transaction each,
from one connection. MariaDB: Booknetic's tables (the test suite's
``wp_bkntc_`` tables), written the way Booknetic's AppointmentService writes:
the appointment in Unix seconds and its two price rows in one transaction, in
a session whose time zone is not UTC, then a status update per transaction.
The floor is the same writes on the same tables before ``apptflow db init``
installs the mapping (calcom, booknetic); the figure is after.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import text

from bench.harness import Figure
from db import mapping, schema
from db.connect import connect

CALCOM = Path(__file__).parents[1] / "tests" / "calcom" / "schema.sql"
BOOKNETIC = Path(__file__).parents[1] / "tests" / "booknetic" / "schema.sql"
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


def _booknetic_site(url: str) -> None:
    """Booknetic's tables, and a location, service, staff member and customer as its admin panel creates them."""
    app = connect(url, prefix="unused_")  # the site's own session: apptflow's names play no part
    script = "\n".join(line for line in BOOKNETIC.read_text().splitlines() if not line.startswith("--"))
    with app.begin() as conn:
        for statement in filter(str.strip, script.split(";")):
            conn.exec_driver_sql(statement)
        conn.exec_driver_sql("INSERT INTO wp_options (option_name, option_value) VALUES "
                             "('timezone_string', 'Europe/Paris')")
        conn.exec_driver_sql("INSERT INTO wp_bkntc_locations (id, name, address) VALUES "
                             "(1, 'Opéra', '12 rue de la Paix, Paris')")
        conn.exec_driver_sql("INSERT INTO wp_bkntc_service_categories (id, name) VALUES (4, 'Hair')")
        conn.exec_driver_sql("INSERT INTO wp_bkntc_services (id, name, price, category_id, duration, buffer_before) "
                             "VALUES (10, 'Haircut', 30, 4, 45, 15)")
        conn.exec_driver_sql("INSERT INTO wp_bkntc_staff (id, name, email) VALUES (1, 'Sam Staff', 'sam@bench.test')")
        conn.exec_driver_sql("INSERT INTO wp_bkntc_customers (id, first_name, last_name, email, created_at) VALUES "
                             "(7, 'Ada', 'Lovelace', 'ada@bench.test', '2025-11-23 09:00:00')")
    app.dispose()


def _booknetic_write(url: str, count: int) -> tuple[float, float]:
    """Bookings inserted per second (the appointment and its two price rows), then status updates per second."""
    app = connect(url, prefix="unused_", pool_size=1)
    ids = []
    with app.connect() as conn:
        conn.exec_driver_sql("SET time_zone = '+05:30'")  # not UTC, as a host may have it; the session keeps it
        conn.commit()
        began = time.perf_counter()
        for n in range(count):
            start = int((START + dt.timedelta(minutes=30 * n)).replace(tzinfo=dt.timezone.utc).timestamp())
            with conn.begin():
                appointment = conn.execute(text(
                    "INSERT INTO wp_bkntc_appointments (location_id, service_id, staff_id, customer_id, starts_at, "
                    "ends_at, busy_from, busy_to, status, weight, payment_method, payment_status, paid_amount, note, "
                    "locale, client_timezone, created_at) VALUES (1, 10, 1, 7, :start, :end, :busy_from, :end, "
                    "'approved', 2, 'local', 'not_paid', 5, 'Short at the back', 'fr_FR', 'America/New_York', "
                    ":created)"),
                    {"start": start, "end": start + 45 * 60, "busy_from": start - 15 * 60,
                     "created": start - 86400}).lastrowid
                conn.execute(text(
                    "INSERT INTO wp_bkntc_appointment_prices (appointment_id, unique_key, price, "
                    "negative_or_positive) VALUES (:a, 'service_price', 30, 1), (:a, 'discount', 3, -1)"),
                    {"a": appointment})
            ids.append(appointment)
        inserts = count / (time.perf_counter() - began)
        began = time.perf_counter()
        for appointment in ids:
            with conn.begin():
                conn.execute(text("UPDATE wp_bkntc_appointments SET status = 'canceled' WHERE id = :id"),
                             {"id": appointment})
        updates = count / (time.perf_counter() - began)
    app.dispose()
    return inserts, updates


def _db_init(url: str, mapping_name: str) -> None:
    """``apptflow db init`` with the mapping, as an operator runs it."""
    env = {**os.environ, "APPTFLOW_CONFIG": "", "APPTFLOW_DATABASE_URL": url,
           "APPTFLOW_DATABASE_MAPPING": mapping_name}
    subprocess.run([sys.executable, "-m", "scheduler", "db", "init"], env=env, check=True,
                   stdout=subprocess.DEVNULL)


def run(bare_url: str, captured_url: str, backend: str, count: int) -> list[Figure]:
    """*bare_url* and *captured_url*: two empty databases (PostgreSQL: Cal.com's; MariaDB: Booknetic's)."""
    if backend == "postgresql":
        return _calcom(bare_url, captured_url, backend, count)
    if backend == "mariadb":
        return _booknetic(bare_url, captured_url, backend, count)
    return []  # mappings, and so capture on an application's tables, need PostgreSQL or MySQL/MariaDB


def _without_and_with(write, bare_url: str, captured_url: str, count: int):
    """The same writes' rates on the database without capture and on the one with it, both warmed up alike."""
    write(bare_url, count // 10)
    write(captured_url, count // 10)
    return write(bare_url, count), write(captured_url, count)


def _calcom(bare_url: str, captured_url: str, backend: str, count: int) -> list[Figure]:
    for url in (bare_url, captured_url):
        _calcom_tables(url)
    engine = connect(captured_url)
    schema.upgrade(engine, mapping.load("calcom"))
    engine.dispose()
    bare, captured = _without_and_with(_write, bare_url, captured_url, count)
    return [
        Figure(scenario="capture", database=backend, figure=f"Cal.com booking + attendee inserts ({count})",
               value=captured[0], unit="tx/s", floor=bare[0], aim="≥ 0.5"),
        Figure(scenario="capture", database=backend, figure=f"Cal.com status updates ({count})",
               value=captured[1], unit="tx/s", floor=bare[1], aim="≥ 0.5"),
    ]


def _booknetic(bare_url: str, captured_url: str, backend: str, count: int) -> list[Figure]:
    for url in (bare_url, captured_url):
        _booknetic_site(url)
    _db_init(captured_url, "booknetic")
    bare, captured = _without_and_with(_booknetic_write, bare_url, captured_url, count)
    return [
        Figure(scenario="capture", database=backend, figure=f"Booknetic appointment + 2 price rows inserts ({count})",
               value=captured[0], unit="tx/s", floor=bare[0]),
        Figure(scenario="capture", database=backend, figure=f"Booknetic status updates ({count})",
               value=captured[1], unit="tx/s", floor=bare[1]),
    ]
