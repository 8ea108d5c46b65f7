"""Write booking rows the way a booking application does: plain SQL, nothing of apptflow's."""

from __future__ import annotations

import datetime as dt
import json
import re

from sqlalchemy import text
from sqlalchemy.engine import Engine

_AWARE = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)")


def as_written(bind, value):
    """*value* as the booking application writes it on this database: on MySQL/MariaDB, whose DATETIME
    columns hold no offset, a time is written in UTC (``2026-12-01 09:00:00``); elsewhere as given."""
    if bind.dialect.name == "mysql" and isinstance(value, str) and _AWARE.fullmatch(value.strip()):
        return dt.datetime.fromisoformat(value.strip()).astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def insert(conn_or_engine, table: str, **values) -> int:
    """INSERT one row with plain SQL and return its id."""
    columns = ", ".join(conn_or_engine.dialect.identifier_preparer.quote(name) for name in values)  # `trigger`
    placeholders = ", ".join(f":{name}" for name in values)
    params = {k: json.dumps(v) if isinstance(v, dict) else as_written(conn_or_engine, v) for k, v in values.items()}
    prefix = conn_or_engine.get_execution_options().get("apptflow_prefix") or ""
    if prefix and table in ("workflows", "workflow_actions"):  # an admin names apptflow's tables as they are
        table = prefix + table
    statement = text(f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) RETURNING id")
    if isinstance(conn_or_engine, Engine):
        with conn_or_engine.begin() as conn:
            return conn.execute(statement, params).scalar_one()
    return conn_or_engine.execute(statement, params).scalar_one()


def seed(engine) -> dict[str, int]:
    """One location, service, staff member and customer; returns their ids."""
    with engine.begin() as conn:
        return {
            "location": insert(conn, "locations", name="Downtown", address="1 Main St",
                               timezone="Europe/Paris"),
            "service": insert(conn, "services", name="Haircut", price=30, duration_minutes=45),
            "staff": insert(conn, "staff", name="Sam Staff", email="sam@salon.test",
                            phone="+15550001111", telegram_chat_id="1001"),
            "customer": insert(conn, "customers", first_name="Ada", last_name="Lovelace",
                               email="ada@example.test", phone="+15550002222", locale="en",
                               custom={"parent_phone": "+15550003333"}),
        }


def book(engine, ids: dict[str, int], *, starts_at: str, ends_at: str,
         status: str = "pending", started_by: str = "frontend", **extra) -> int:
    """Insert an appointment for the seeded customer, service, staff and location."""
    return insert(
        engine, "appointments", customer_id=ids["customer"], service_id=ids["service"],
        staff_id=ids["staff"], location_id=ids["location"], starts_at=starts_at,
        ends_at=ends_at, status=status, started_by=started_by, **extra,
    )
