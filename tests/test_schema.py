"""Schema revisions: a database of the previous revision, with rows in it, is upgraded in place; the booking
fields behind Booknetic's keywords are read back from rows written with plain SQL."""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import replace

import pytest
from alembic import command
from sqlalchemy import Column, ForeignKey, Index, Integer, MetaData, Numeric, Table, Text, inspect

from db import schema
from db.booking import load_booking
from db.capture import WATCHES
from db.connect import connect, own_table
from db.servers import server_for
from db.tables import BOOKING_TABLES, metadata
from db.types import JSONDocument, UTCDateTime
from engine.context import build_context
from engine.templates import render
from tests.booking import book, insert, seed
from tests.conftest import sql

# The booking tables as revision 0001 created them; the other tables did not change since, but for those added.
_V1 = MetaData()
Table("locations", _V1, Column("id", Integer, primary_key=True), Column("name", Text, nullable=False),
      Column("address", Text), Column("timezone", Text, nullable=False, server_default="UTC"))
Table("services", _V1, Column("id", Integer, primary_key=True), Column("name", Text, nullable=False),
      Column("price", Numeric(12, 2)), Column("duration_minutes", Integer))
Table("staff", _V1, Column("id", Integer, primary_key=True), Column("name", Text, nullable=False),
      Column("email", Text), Column("phone", Text), Column("telegram_chat_id", Text))
Table("customers", _V1, Column("id", Integer, primary_key=True), Column("first_name", Text),
      Column("last_name", Text), Column("email", Text), Column("phone", Text), Column("locale", Text),
      Column("timezone", Text), Column("telegram_chat_id", Text), Column("custom", JSONDocument),
      Column("created_at", UTCDateTime(), nullable=False, server_default=metadata.tables["customers"]
             .c.created_at.server_default.arg))
Table("appointments", _V1, Column("id", Integer, primary_key=True),
      Column("customer_id", Integer, ForeignKey("customers.id")),
      Column("service_id", Integer, ForeignKey("services.id")),
      Column("staff_id", Integer, ForeignKey("staff.id")),
      Column("location_id", Integer, ForeignKey("locations.id")),
      Column("starts_at", UTCDateTime(), nullable=False), Column("ends_at", UTCDateTime(), nullable=False),
      Column("status", Text, nullable=False, server_default="pending"),
      Column("started_by", Text, nullable=False, server_default="frontend"),
      Column("locale", Text), Column("custom", JSONDocument),
      *(Column(name, UTCDateTime(), nullable=False, server_default=metadata.tables["appointments"]
               .c[name].server_default.arg) for name in ("created_at", "updated_at")))
_ADDED = {"capture_errors", "booking_mapping", "capture_snapshots",  # by 0003
          "inbound_messages", "optouts", "inbound_offsets"}  # by 0005
# The columns 0005 added to deliveries, and its indexes on them.
_RECEIPT_COLUMNS = {"provider_status", "provider_error", "provider_updated_at", "address"}
# The columns 0006 added (partitions).
_PARTITION_COLUMNS = {"change_events": {"partition_key"}, "apscheduler_jobs": {"partition_key"},
                      "instances": {"partitions", "leads"}}
for _table in metadata.sorted_tables:
    if _table in BOOKING_TABLES or _table.name in _ADDED:
        continue
    if _table.name in _PARTITION_COLUMNS:
        _v1 = Table(_table.name, _V1, *(c._copy() for c in _table.c if c.name not in _PARTITION_COLUMNS[_table.name]),
                    sqlite_autoincrement=_table.kwargs.get("sqlite_autoincrement", False))
        for _index in _table.indexes:
            if _index.name.startswith("ix_"):
                continue  # a column's own index=True: copied with the column
            Index(_index.name, *(_v1.c[c.name] for c in _index.columns))
        continue
    if _table.name != "deliveries":
        _table.to_metadata(_V1)
        continue
    _deliveries = Table("deliveries", _V1, *(c._copy() for c in _table.c if c.name not in _RECEIPT_COLUMNS),
                        sqlite_autoincrement=True)
    Index("deliveries_due", _deliveries.c.status, _deliveries.c.next_attempt_at)
    Index("deliveries_by_workflow", _deliveries.c.workflow_id, _deliveries.c.id)

NEW_KEYWORDS = ("appointment_notes", "appointment_sum_price", "appointment_paid_price", "appointment_discount_price",
                "appointment_payment_method", "appointment_total_attendees", "appointment_brought_people",
                "appointment_buffer_before", "appointment_buffer_after",
                "customer_birthday", "customer_notes", "customer_profile_image_url", "service_category_name",
                "service_notes", "service_color", "service_image_url", "staff_about", "staff_profile_image_url",
                "location_phone_number", "location_notes", "location_image_url", "location_google_maps_url")


# Booknetic's keywords read from columns of revision 0001, and the company's logo from [company].
CREATED_AND_LINKS = ("appointment_created_date", "appointment_created_time", "appointment_created_date_client",
                     "appointment_created_time_client", "company_image_url", "add_to_google_calendar_link")


def _text(names) -> str:
    return "|".join(f"{{{{ {name} }}}}" for name in names)


def _rendered(engine, appointment: int, names=NEW_KEYWORDS, company=None) -> list[str]:
    with engine.connect() as conn:
        booking = load_booking(conn, appointment)
    return render(_text(names), build_context(booking, company=company or {}, extra={})).split("|")


def _columns(engine, table: str) -> list[str]:
    return [column["name"] for column in inspect(engine).get_columns(table)]


def _install_revision_0001(url: str) -> None:
    """A database as apptflow 0.1 installed it: on PostgreSQL every table, and the capture function, in public."""
    legacy = connect(url, schema="public")
    with legacy.begin() as conn:
        _V1.create_all(conn)
        # the capture of that time: customers' birthday came with revision 0002
        server_for(conn).install_capture(conn, [replace(w, watched=tuple(c for c in w.watched if c != "birthday"))
                                                for w in WATCHES])
        command.stamp(schema._alembic_config(conn), "0001")
    legacy.dispose()


def test_a_database_of_revision_0001_is_upgraded_with_its_rows_kept(empty_db_url, backend):
    if backend == "mariadb":
        pytest.skip("MySQL/MariaDB support begins at revision 0003: no database of 0001 exists there")
    _install_revision_0001(empty_db_url)
    engine = connect(empty_db_url)
    ids = seed(engine)
    appointment = book(engine, ids, starts_at="2026-12-01T10:00:00+00:00", ends_at="2026-12-01T10:45:00+00:00",
                       status="approved", custom={"room": "2"})
    before = {table.name: sql(engine, f"SELECT * FROM {table.name} ORDER BY id") for table in BOOKING_TABLES}
    assert "notes" not in _columns(engine, "appointments")

    assert schema.upgrade(engine) == ("0001", schema.head_revision())

    if backend == "postgresql":  # apptflow's tables moved to their own schema, the booking tables stayed
        assert set(inspect(engine).get_table_names(schema="public")) == {t.name for t in BOOKING_TABLES}
        assert set(inspect(engine).get_table_names(schema="apptflow")) == {
            t.name for t in metadata.sorted_tables if t not in BOOKING_TABLES} | {"alembic_version"}
        assert sql(engine, "SELECT count(*) FROM pg_proc WHERE proname = 'apptflow_capture'") == [(1,)]

    for table in BOOKING_TABLES:  # the same columns as a database created new, in the same order
        assert _columns(engine, table.name) == list(table.c.keys())
        rows = sql(engine, f"SELECT * FROM {table.name} ORDER BY id")
        assert [row[:len(before[table.name][0])] for row in rows] == before[table.name]
    # Rows written before read as one attendee and no notes, prices or images.
    assert _rendered(engine, appointment) == [
        "", "30.00", "", "", "", "1", "0", "", "", "", "", "", "", "", "", "", "", "", "", "", "",
        "https://maps.google.com/?q=1%20Main%20St"]
    with engine.connect() as conn:
        assert load_booking(conn, appointment).appointment.custom == {"room": "2"}
    # Capture still works on the altered tables, and an upgraded database upgrades no further.
    sql(engine, "DELETE FROM change_events")
    sql(engine, "UPDATE appointments SET notes = 'Bring the form', starts_at = '2026-12-02T10:00:00+00:00'")
    assert sql(engine, "SELECT table_name, op FROM change_events") == [("appointments", "UPDATE")]
    assert schema.upgrade(engine) == (schema.head_revision(), schema.head_revision())
    engine.dispose()


def test_a_first_init_completes_booking_tables_the_application_created_from_an_older_schema(empty_db_url):
    engine = connect(empty_db_url)
    with engine.begin() as conn:
        _V1.tables["locations"].create(conn)
    sql(engine, "INSERT INTO locations (id, name) VALUES (7, 'Pre-existing')")
    schema.upgrade(engine)
    assert set(_columns(engine, "locations")) == set(metadata.tables["locations"].c.keys())
    assert sql(engine, "SELECT id, name, timezone, phone, latitude FROM locations") == [
        (7, "Pre-existing", "UTC", None, None)]
    engine.dispose()


def test_the_booking_fields_written_with_plain_sql_fill_booknetics_keywords(engine):
    ids = seed(engine)
    sql(engine, "UPDATE customers SET birthday = '1990-05-17', notes = 'Prefers mornings', "
                "image_url = 'https://salon.test/ada.jpg', timezone = 'America/New_York'")
    sql(engine, "UPDATE services SET category = 'Hair', notes = 'Wash included', color = '#53d56c', "
                "image_url = 'https://salon.test/cut.jpg'")
    sql(engine, "UPDATE staff SET about = 'Ten years here', image_url = 'https://salon.test/sam.jpg'")
    sql(engine, "UPDATE locations SET phone = '+33 1 40 00 00 00', notes = 'Second floor', "
                "image_url = 'https://salon.test/shop.jpg', latitude = 48.8708, longitude = 2.332401")
    appointment = insert(engine, "appointments", customer_id=ids["customer"], service_id=ids["service"],
                         staff_id=ids["staff"], location_id=ids["location"],
                         starts_at="2026-12-01T10:00:00+00:00", ends_at="2026-12-01T10:45:00+00:00",
                         notes="Short at the back", total_price=25, paid_price=10.5, discount_price=5,
                         payment_method="local", attendees=3, buffer_before_minutes=10,
                         buffer_after_minutes=75, created_at="2026-11-01T03:30:00+00:00")
    assert _rendered(engine, appointment) == [
        "Short at the back", "25.00", "10.50", "5.00", "local", "3", "2", "10m", "1h 15m", "May 17, 1990",
        "Prefers mornings",
        "https://salon.test/ada.jpg", "Hair", "Wash included", "#53d56c", "https://salon.test/cut.jpg",
        "Ten years here", "https://salon.test/sam.jpg", "+33 1 40 00 00 00", "Second floor",
        "https://salon.test/shop.jpg", "https://maps.google.com/?q=48.8708,2.332401"]
    # booked at 04:30 in Paris, the evening before for the customer in New York
    assert _rendered(engine, appointment, CREATED_AND_LINKS, company={"image_url": "https://salon.test/logo.png"}) == [
        "Nov 1, 2026", "4:30 AM", "Oct 31, 2026", "11:30 PM", "https://salon.test/logo.png",
        "https://www.google.com/calendar/render?action=TEMPLATE&text=Haircut&dates=20261201T100000Z/20261201T104500Z"
        "&location=1%20Main%20St"]
    with engine.connect() as conn:
        booking = load_booking(conn, appointment)
    assert booking.customer.birthday == dt.date(1990, 5, 17)
    assert decimal.Decimal(booking.appointment.total_price) == 25
    assert isinstance(booking.location.latitude, float)


def test_a_database_of_revision_0004_gets_the_conversation_tables_with_its_deliveries_kept(db_url):
    engine = connect(db_url)
    with engine.begin() as conn:  # back to 0004, as the release before it left databases
        command.downgrade(schema._alembic_config(conn), "0004")
    assert "provider_status" not in _columns(engine, "deliveries")
    added = {own_table(engine, name) for name in ("optouts", "inbound_messages", "inbound_offsets")}
    assert not added & set(inspect(engine).get_table_names())
    sql(engine, "INSERT INTO deliveries (idempotency_key, workflow_id, action_position, action_type, subject_table, "
                "subject_id, occurrence, status, provider_id, recipients) VALUES ('k', 1, 0, 'sms', 'appointments', "
                "7, 'event:1:appointment_created', 'sent', 'SM0123', '+15550002222')")

    assert schema.upgrade(engine) == ("0004", "0006")

    assert sql(engine, "SELECT status, provider_id, provider_status, address FROM deliveries") == [
        ("sent", "SM0123", None, None)]
    assert added <= set(inspect(engine).get_table_names())
    indexes = {index["name"] for index in inspect(engine).get_indexes("deliveries")}
    assert {"deliveries_by_address", "deliveries_by_provider_id"} <= indexes
    sql(engine, "INSERT INTO optouts (channel, address, since, reason) VALUES ('sms', '+15550002222', :since, "
                "'replied STOP')", since="2026-11-23T09:00:00+00:00")
    assert schema.upgrade(engine) == ("0006", "0006")
    engine.dispose()


def test_a_database_of_revision_0005_gets_partition_keys_with_its_jobs_keyed_by_their_subject(db_url):
    engine = connect(db_url)
    with engine.begin() as conn:  # back to 0005, as the release before it left databases
        command.downgrade(schema._alembic_config(conn), "0005")
    assert "partition_key" not in _columns(engine, "apscheduler_jobs")
    assert "leads" not in _columns(engine, "instances")
    for job_id, at in (("wf:3:appt:17", 1.0), ("bday:4:cust:22", 2.0), ("sched:5:company:0", 3.0), ("stranger", 4.0)):
        sql(engine, "INSERT INTO apscheduler_jobs (id, next_run_time, job_state) VALUES (:id, :at, :state)",
            id=job_id, at=at, state=b"state")
    sql(engine, "INSERT INTO change_events (table_name, row_id, op, depth) VALUES ('appointments', 17, 'INSERT', 0)")

    assert schema.upgrade(engine) == ("0005", "0006")

    assert sorted(sql(engine, "SELECT id, partition_key, next_run_time FROM apscheduler_jobs")) == [
        ("bday:4:cust:22", 22, 2.0), ("sched:5:company:0", 0, 3.0), ("stranger", 0, 4.0), ("wf:3:appt:17", 17, 1.0)]
    assert sql(engine, "SELECT row_id, partition_key FROM change_events") == [(17, None)]
    assert {"partitions", "leads"} <= set(_columns(engine, "instances"))
    assert schema.upgrade(engine) == ("0006", "0006")
    engine.dispose()
