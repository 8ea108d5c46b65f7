"""apptflow attached to a self-hosted Cal.com's own tables through the shipped mapping (PostgreSQL only).

Cal.com's tables come from its Prisma schema (tests/calcom/schema.sql, vendored with its source named);
bookings, reschedules and cancellations are written with plain SQL the way Cal.com's Prisma client writes
them, and nothing of apptflow's is called but its CLI and its pipeline.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import inspect, text

from db.connect import connect
from scheduler.cli import main
from tests.conftest import _drop_pg_database, _pg_database, sql
from tests.pipeline import add_workflow, make_config
from tests.test_time_offset import Harness

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
START = dt.datetime(2026, 11, 25, 14, 0)  # naive UTC, as Cal.com stores it
SCHEMA = Path(__file__).with_name("calcom") / "schema.sql"
MAPPING = Path(__file__).parents[1] / "db" / "mappings" / "calcom.yaml"


def cli(url: str, *args: str, mapping: str = "calcom", code: int = 0):
    result = CliRunner().invoke(main, list(args), env={"APPTFLOW_DATABASE_URL": url,
                                                       "APPTFLOW_DATABASE_MAPPING": mapping})
    assert result.exit_code == code, result.output
    return result.output


def calcom_database(pg_cluster) -> str:
    """A new database holding Cal.com's tables, an organiser and an event type (as Cal.com creates them)."""
    url = pg_cluster.url(_pg_database(pg_cluster, "template0"))
    app = connect(url, schema="public")
    with app.begin() as conn:
        conn.exec_driver_sql(SCHEMA.read_text())
        conn.exec_driver_sql(
            "INSERT INTO users (id, username, name, email, \"timeZone\", locale, bio) VALUES "
            "(1, 'sam', 'Sam Organiser', 'sam@salon.test', 'Europe/Paris', 'en', 'Colourist since 2010')")
        conn.exec_driver_sql(
            "INSERT INTO \"EventType\" (id, title, slug, length, \"userId\", description, \"beforeEventBuffer\") "
            "VALUES (10, 'Haircut', 'haircut', 45, 1, 'Wash included', 15)")
    app.dispose()
    return url


@pytest.fixture
def calcom(pg_cluster, backend):
    if backend != "postgresql":
        pytest.skip("Cal.com runs on PostgreSQL")
    url = calcom_database(pg_cluster)
    cli(url, "db", "init")
    yield url
    _drop_pg_database(pg_cluster, url.rsplit("/", 1)[1])


def book(url: str, *, start: dt.datetime = START, minutes: int = 45, status: str = "accepted",
         reschedule_of: str | None = None, name: str = "Ada Lovelace") -> tuple[int, str]:
    """A booking as Cal.com's booker writes it: the booking and its attendee in one transaction."""
    uid = uuid.uuid4().hex
    app = connect(url, schema="public")
    with app.begin() as conn:
        booking = conn.execute(text(
            'INSERT INTO "Booking" (uid, "userId", "eventTypeId", title, description, "startTime", "endTime", '
            'location, status, "fromReschedule", "updatedAt") VALUES (:uid, 1, 10, :title, :description, :start, '
            ':end, :location, CAST(:status AS "BookingStatus"), :previous, now() AT TIME ZONE \'UTC\') RETURNING id'),
            {"uid": uid, "title": f"Haircut between Sam and {name}", "description": "Short at the back",
             "start": start, "end": start + dt.timedelta(minutes=minutes), "location": "12 rue de la Paix, Paris",
             "status": status, "previous": reschedule_of}).scalar_one()
        conn.execute(text('INSERT INTO "Attendee" (email, name, "timeZone", locale, "bookingId") '
                          "VALUES ('ada@example.test', :name, 'America/New_York', 'en', :booking)"),
                     {"name": name, "booking": booking})
    app.dispose()
    return booking, uid


def reschedule(url: str, uid: str, start: dt.datetime) -> int:
    """Cal.com's reschedule: a new booking continuing the old one, which is cancelled and marked rescheduled."""
    new, _ = book(url, start=start, reschedule_of=uid)
    app = connect(url, schema="public")
    with app.begin() as conn:
        conn.execute(text('UPDATE "Booking" SET status = \'cancelled\', rescheduled = true, '
                          '"updatedAt" = now() AT TIME ZONE \'UTC\' WHERE uid = :uid'), {"uid": uid})
    app.dispose()
    return new


@pytest.fixture
def harness(calcom):
    engine = connect(calcom)
    harness = Harness(engine, make_config(calcom))
    yield engine, harness
    harness.close()
    engine.dispose()


def email(name: str, trigger: dict, subject: str, body: str = "b", **extra) -> dict:
    return {"name": name, "trigger": trigger, **extra,
            "actions": [{"type": "email", "to": ["customer"], "subject": subject, "body": body}]}


def test_a_booking_fires_with_calcoms_data_in_the_keywords(harness, calcom):
    engine, pipeline = harness
    add_workflow(engine, email("confirm", {"type": "appointment_created"},
                               "{customer_first_name}: {service_name} with {staff_name} on {appointment_date_time}",
                               "{appointment_notes} at {location_address}, {appointment_start_time_client} for you; "
                               "{appointment_duration}, {appointment_buffer_before} before; {staff_about}; "
                               "{appointment_status} ({appointment_status_code})"))
    booking, _ = book(calcom)
    pipeline.run(NOW)
    [message] = pipeline.sent("smtp")
    # 14:00 UTC is 15:00 for the organiser in Paris and 9:00 for Ada in New York.
    assert message.subject == "Ada: Haircut with Sam Organiser on Nov 25, 2026, 3:00 PM"
    assert message.text == ("Short at the back at 12 rue de la Paix, Paris, 9:00 AM for you; 45m, 15m before; "
                            "Colourist since 2010; Approved (approved)")
    assert message.to == ("ada@example.test",)
    assert sql(engine, "SELECT row_id, op FROM change_events WHERE table_name = 'appointments' ORDER BY id")[0] \
        == (booking, "INSERT")


def test_a_calcom_reschedule_is_a_reschedule_and_the_reminder_follows(harness, calcom):
    engine, pipeline = harness
    moved = add_workflow(engine, email("moved", {"type": "appointment_rescheduled"},
                                       "Moved from {old_appointment_date_time} to {appointment_date_time}"))
    add_workflow(engine, email("cancelled", {"type": "appointment_status_changed", "to": ["canceled"]}, "Cancelled"))
    reminder = add_workflow(engine, email("reminder", {"type": "appointment_starts", "offset": "-1h"},
                                          "Soon: {appointment_start_time}", filters={"statuses": ["approved"]}))
    old, uid = book(calcom)
    pipeline.run(NOW)
    assert pipeline.jobs() == {f"wf:{reminder}:appt:{old}": START.replace(tzinfo=UTC) - dt.timedelta(hours=1)}

    new = reschedule(calcom, uid, START + dt.timedelta(days=1, hours=2))
    pipeline.run(NOW)
    subjects = [m.subject for m in pipeline.sent("smtp")]
    assert subjects == ["Moved from Nov 25, 2026, 3:00 PM to Nov 26, 2026, 5:00 PM"]  # no "Cancelled"
    assert sql(engine, "SELECT workflow_id, subject_id FROM deliveries") == [(moved, new)]
    assert pipeline.jobs() == {
        f"wf:{reminder}:appt:{new}": START.replace(tzinfo=UTC) + dt.timedelta(days=1, hours=1)}


def test_a_cancellation_fires_and_removes_the_reminder(harness, calcom):
    engine, pipeline = harness
    add_workflow(engine, email("cancelled", {"type": "appointment_status_changed", "to": ["canceled"]},
                               "Cancelled: {old_status} to {new_status}"))
    add_workflow(engine, email("reminder", {"type": "appointment_starts", "offset": "-1h"}, "Soon",
                               filters={"statuses": ["approved"]}))
    booking, _ = book(calcom)
    pipeline.run(NOW)
    assert len(pipeline.jobs()) == 1
    sql(engine, "UPDATE \"Booking\" SET status = 'cancelled' WHERE id = :id", id=booking)
    pipeline.run(NOW)
    assert [m.subject for m in pipeline.sent("smtp")] == ["Cancelled: approved to canceled"]
    assert pipeline.jobs() == {}


def test_a_deleted_booking_is_a_deleted_appointment(harness, calcom):
    engine, pipeline = harness
    reminder = add_workflow(engine, email("reminder", {"type": "appointment_starts", "offset": "-1h"}, "Soon"))
    booking, _ = book(calcom)
    pipeline.run(NOW)
    assert list(pipeline.jobs()) == [f"wf:{reminder}:appt:{booking}"]
    sql(engine, 'DELETE FROM "Booking" WHERE id = :id', id=booking)  # its attendee goes by ON DELETE CASCADE
    pipeline.run(NOW)
    assert pipeline.jobs() == {}
    assert sql(engine, "SELECT table_name, op FROM change_events WHERE op = 'DELETE' ORDER BY id") == [
        ("appointments", "DELETE"), ("customers", "DELETE")]
    assert sql(engine, "SELECT count(*) FROM capture_errors") == [(0,)]


def test_set_status_writes_calcoms_own_status(calcom):
    engine = connect(calcom)
    pipeline = Harness(engine, make_config(calcom, APPTFLOW_DAEMON_DRY_RUN="false"))
    add_workflow(engine, {"name": "accept", "trigger": {"type": "appointment_created"},
                          "filters": {"statuses": ["pending"]},
                          "actions": [{"type": "set_status", "status": "approved"}]})
    booking, _ = book(calcom, status="pending")
    pipeline.run(NOW)
    pipeline.close()
    assert sql(engine, 'SELECT status::text FROM "Booking" WHERE id = :id', id=booking) == [("accepted",)]
    # The write is captured like Cal.com's own, and marked as a set_status chain.
    assert sql(engine, "SELECT op, old->>'status', new->>'status', depth FROM change_events "
                       "WHERE row_id = :id ORDER BY id DESC LIMIT 1", id=booking) == [
        ("UPDATE", "pending", "approved", 1)]
    assert sql(engine, "SELECT status, error FROM deliveries") == [("sent", None)]
    engine.dispose()


def test_keywords_and_statuses_the_mapping_cannot_serve_are_refused_at_add(calcom, tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text("name: w\ntrigger: {type: appointment_created}\nactions:\n"
                    "  - {type: email, to: [customer], subject: 'Happy {customer_birthday}', body: b}\n"
                    "  - {type: set_status, status: completed}\n")
    output = cli(calcom, "workflow", "add", str(path), code=1)
    assert ("actions[0].subject: keyword 'customer_birthday' has no data here: customers.birthday: Cal.com "
            "attendees have no birthday") in output
    assert "actions[1].status: unknown status 'completed'" in output and "the statuses of mapping calcom" in output


def test_a_read_only_mapping_refuses_set_status(pg_cluster, backend, tmp_path):
    if backend != "postgresql":
        pytest.skip("Cal.com runs on PostgreSQL")
    document = yaml.safe_load(MAPPING.read_text())
    del document["set_status"], document["statuses"]
    document["read_only"] = "the booking team decides statuses in Cal.com"
    mapping = tmp_path / "calcom-read-only.yaml"
    mapping.write_text(yaml.safe_dump(document))
    url = calcom_database(pg_cluster)
    cli(url, "db", "init", mapping=str(mapping))
    workflow = tmp_path / "w.yaml"
    workflow.write_text("name: w\ntrigger: {type: appointment_created}\nactions:\n"
                        "  - {type: set_status, status: approved}\n")
    output = cli(url, "workflow", "add", str(workflow), mapping=str(mapping), code=1)
    assert ("actions[0]: set_status cannot write here: mapping calcom is read-only: the booking team decides "
            "statuses in Cal.com") in output


def test_db_check_passes_on_calcom_and_names_what_a_broken_mapping_lacks(pg_cluster, calcom, tmp_path):
    output = cli(calcom, "db", "check")
    assert "appointments: every column apptflow reads" in output and "change capture on Attendee, Booking" in output
    assert "problem" not in output
    output = cli(calcom, "db", "check", mapping="", code=1)
    assert "[database] mapping is none but the database is installed with calcom" in output
    document = yaml.safe_load(MAPPING.read_text())
    document["views"]["appointments"] = document["views"]["appointments"].replace(
        "b.\"endTime\" AT TIME ZONE 'UTC' AS ends_at,", "")
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(document))
    url = calcom_database(pg_cluster)
    cli(url, "db", "init", mapping=str(broken), code=1)
    output = cli(url, "db", "check", mapping=str(broken), code=1)
    assert "appointments: lacks the column(s) ends_at" in output


def test_capture_never_fails_calcoms_own_writes(calcom):
    engine = connect(calcom)
    sql(engine, "ALTER TABLE change_events ADD CONSTRAINT refuse_all CHECK (false) NOT VALID")
    booking, _ = book(calcom)  # Cal.com's transaction commits
    assert sql(engine, 'SELECT count(*) FROM "Booking" WHERE id = :id', id=booking) == [(1,)]
    assert sql(engine, "SELECT DISTINCT table_name FROM capture_errors ORDER BY 1") == [("Attendee",), ("Booking",)]
    engine.dispose()


def test_install_then_uninstall_leaves_calcoms_database_byte_for_byte(pg_cluster, backend):
    if backend != "postgresql":
        pytest.skip("Cal.com runs on PostgreSQL")
    url = calcom_database(pg_cluster)
    book(url)
    database = url.rsplit("/", 1)[1]
    before = pg_cluster.dump(database)
    cli(url, "db", "init")
    engine = connect(url)
    assert set(inspect(engine).get_table_names(schema="public")) == {"users", "EventType", "Booking", "Attendee"}
    engine.dispose()
    cli(url, "db", "uninstall", "--yes")
    assert pg_cluster.dump(database) == before
