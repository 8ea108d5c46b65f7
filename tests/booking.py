"""Write booking rows the way a booking application does: plain SQL, nothing of apptflow's."""

from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.engine import Engine


def insert(conn_or_engine, table: str, **values) -> int:
    """INSERT one row with plain SQL and return its id."""
    columns = ", ".join(values)
    placeholders = ", ".join(f":{name}" for name in values)
    params = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in values.items()}
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
