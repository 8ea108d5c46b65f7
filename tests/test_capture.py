"""Change capture: plain SQL on the booking tables leaves exactly the expected change_events."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from db import schema
from db.connect import connect
from tests.booking import book, insert, seed
from tests.conftest import sql


def events(engine):
    rows = sql(engine, "SELECT table_name, row_id, op, old, new FROM change_events ORDER BY id")
    decode = lambda v: json.loads(v) if isinstance(v, str) else v  # noqa: E731 - SQLite gives text
    return [(t, r, op, decode(old), decode(new)) for t, r, op, old, new in rows]


def clear(engine):
    sql(engine, "DELETE FROM change_events")


def test_db_init_creates_schema_and_is_idempotent(empty_db_url):
    engine = connect(empty_db_url)
    before, after = schema.upgrade(engine)
    assert before is None and after == schema.head_revision()
    assert schema.upgrade(engine) == (after, after)
    for table in ("locations", "services", "staff", "customers", "appointments",
                  "workflows", "workflow_actions", "change_events", "deliveries"):
        assert sql(engine, f"SELECT count(*) FROM {table}") == [(0,)]
    engine.dispose()


def test_db_init_keeps_existing_booking_rows(empty_db_url):
    engine = connect(empty_db_url)
    sql(engine, "CREATE TABLE locations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                "address TEXT, timezone TEXT NOT NULL DEFAULT 'UTC')")
    sql(engine, "INSERT INTO locations (id, name) VALUES (7, 'Pre-existing')")
    schema.upgrade(engine)
    assert sql(engine, "SELECT id, name FROM locations") == [(7, "Pre-existing")]
    sql(engine, "UPDATE locations SET name = 'Renamed' WHERE id = 7")
    assert events(engine) == []  # locations are not watched
    engine.dispose()


def test_inserting_a_customer_and_an_appointment_records_both(engine):
    ids = seed(engine)
    appointment = book(engine, ids, starts_at="2026-12-01T10:00:00+00:00",
                       ends_at="2026-12-01T10:45:00+00:00")
    recorded = events(engine)
    assert [(t, r, op) for t, r, op, _, _ in recorded] == [
        ("customers", ids["customer"], "INSERT"),
        ("appointments", appointment, "INSERT"),
    ]
    _, _, _, old, new = recorded[1]
    assert old is None
    assert new["status"] == "pending" and new["staff_id"] == ids["staff"]
    assert new["customer_id"] == ids["customer"]


def test_status_and_time_updates_record_old_and_new(engine):
    ids = seed(engine)
    appointment = book(engine, ids, starts_at="2026-12-01T10:00:00+00:00",
                       ends_at="2026-12-01T10:45:00+00:00")
    clear(engine)
    sql(engine, "UPDATE appointments SET status = 'approved' WHERE id = :id", id=appointment)
    sql(engine, "UPDATE appointments SET starts_at = :s, ends_at = :e WHERE id = :id",
        id=appointment, s="2026-12-02T10:00:00+00:00", e="2026-12-02T10:45:00+00:00")
    recorded = events(engine)
    assert len(recorded) == 2
    assert (recorded[0][3]["status"], recorded[0][4]["status"]) == ("pending", "approved")
    assert recorded[1][3]["starts_at"].startswith("2026-12-01")
    assert recorded[1][4]["starts_at"].startswith("2026-12-02")


def test_unwatched_or_unchanged_updates_record_nothing(engine):
    ids = seed(engine)
    appointment = book(engine, ids, starts_at="2026-12-01T10:00:00+00:00",
                       ends_at="2026-12-01T10:45:00+00:00", custom={"note": "a"})
    clear(engine)
    sql(engine, "UPDATE appointments SET custom = :c WHERE id = :id", id=appointment,
        c=json.dumps({"note": "b"}))
    sql(engine, "UPDATE appointments SET status = status WHERE id = :id", id=appointment)
    sql(engine, "UPDATE customers SET first_name = 'Augusta' WHERE id = :id", id=ids["customer"])
    assert events(engine) == []


def test_two_status_changes_in_one_transaction_are_two_events(engine):
    ids = seed(engine)
    appointment = book(engine, ids, starts_at="2026-12-01T10:00:00+00:00",
                       ends_at="2026-12-01T10:45:00+00:00")
    clear(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE appointments SET status = 'approved' WHERE id = :id"),
                     {"id": appointment})
        conn.execute(text("UPDATE appointments SET status = 'canceled' WHERE id = :id"),
                     {"id": appointment})
    transitions = [(old["status"], new["status"]) for _, _, _, old, new in events(engine)]
    assert transitions == [("pending", "approved"), ("approved", "canceled")]


def test_a_rolled_back_change_leaves_no_event(engine):
    ids = seed(engine)
    appointment = book(engine, ids, starts_at="2026-12-01T10:00:00+00:00",
                       ends_at="2026-12-01T10:45:00+00:00")
    clear(engine)
    with engine.connect() as conn:
        conn.begin()
        conn.execute(text("UPDATE appointments SET status = 'approved' WHERE id = :id"),
                     {"id": appointment})
        conn.rollback()
    assert events(engine) == []
    assert sql(engine, "SELECT status FROM appointments") == [("pending",)]


def test_deletes_record_the_old_row(engine):
    ids = seed(engine)
    appointment = book(engine, ids, starts_at="2026-12-01T10:00:00+00:00",
                       ends_at="2026-12-01T10:45:00+00:00")
    clear(engine)
    sql(engine, "DELETE FROM appointments WHERE id = :id", id=appointment)
    sql(engine, "DELETE FROM customers WHERE id = :id", id=ids["customer"])
    recorded = events(engine)
    assert [(t, r, op) for t, r, op, _, _ in recorded] == [
        ("appointments", appointment, "DELETE"), ("customers", ids["customer"], "DELETE")]
    assert recorded[0][3]["status"] == "pending" and recorded[0][4] is None


def test_workflow_edits_by_sql_are_captured(engine):
    workflow = insert(engine, "workflows", name="w", trigger_type="appointment_created")
    sql(engine, "UPDATE workflows SET enabled = false WHERE id = :id", id=workflow)
    sql(engine, "UPDATE workflows SET error = 'x' WHERE id = :id", id=workflow)  # apptflow's own column
    action = insert(engine, "workflow_actions", workflow_id=workflow, position=0, type="email")
    recorded = [(t, r, op) for t, r, op, _, _ in events(engine)]
    assert recorded == [("workflows", workflow, "INSERT"), ("workflows", workflow, "UPDATE"),
                        ("workflow_actions", action, "INSERT")]


@pytest.mark.parametrize("written", ["2026-12-01T11:00:00+01:00", "2026-12-01 10:00:00Z"])
def test_times_read_back_as_utc_whatever_offset_was_written(engine, written):
    from sqlalchemy import select

    from db.tables import appointments

    ids = seed(engine)
    appointment = book(engine, ids, starts_at=written, ends_at="2026-12-01T10:45:00+00:00")
    with engine.connect() as conn:
        starts_at = conn.execute(select(appointments.c.starts_at).where(
            appointments.c.id == appointment)).scalar_one()
    assert starts_at.isoformat() == "2026-12-01T10:00:00+00:00"


def test_event_ids_are_never_reused_after_old_events_are_deleted(engine):
    ids = seed(engine)
    book(engine, ids, starts_at="2026-12-01T10:00:00+00:00", ends_at="2026-12-01T10:45:00+00:00")
    [(highest,)] = sql(engine, "SELECT max(id) FROM change_events")
    clear(engine)
    book(engine, ids, starts_at="2026-12-01T10:00:00+00:00", ends_at="2026-12-01T10:45:00+00:00")
    assert sql(engine, "SELECT min(id) FROM change_events") == [(highest + 1,)]
