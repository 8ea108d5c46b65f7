"""apptflow attached to a self-hosted Cal.com's own tables through the shipped mapping (PostgreSQL only).

Cal.com's tables come from tests/calcom/schema.sql, a hand translation of its Prisma schema at the commit
the file names; bookings, reschedules and cancellations are written with plain SQL the way Cal.com's Prisma
client writes them, and nothing of apptflow's is called but its CLI and its pipeline.
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
from tests.pipeline import add_workflow, email, make_config
from tests.test_time_offset import Harness

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
START = dt.datetime(2026, 11, 25, 14, 0)  # naive UTC, as Cal.com stores it
SCHEMA = Path(__file__).with_name("calcom") / "schema.sql"
MAPPING = Path(__file__).parents[1] / "db" / "mappings" / "calcom.yaml"


def cli(url: str, *args: str, mapping: str = "calcom", schema: str = "apptflow", code: int = 0):
    environment = {"APPTFLOW_DATABASE_URL": url, "APPTFLOW_DATABASE_MAPPING": mapping,
                   "APPTFLOW_DATABASE_SCHEMA": schema}
    result = CliRunner().invoke(main, list(args), env=environment)
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


def _insert_booking(conn, *, start: dt.datetime, minutes: int, status: str, name: str,
                    reschedule_of: str | None = None) -> tuple[int, str]:
    """A booking and its attendee, as Cal.com's Prisma client inserts them (the attendee by a nested create)."""
    uid = uuid.uuid4().hex
    booking = conn.execute(text(
        'INSERT INTO "Booking" (uid, "userId", "eventTypeId", title, description, "startTime", "endTime", location, '
        'status, "fromReschedule", "rescheduledBy", "updatedAt") VALUES (:uid, 1, 10, :title, :description, :start, '
        ':end, :location, CAST(:status AS "BookingStatus"), :previous, :by, now() AT TIME ZONE \'UTC\') RETURNING id'),
        {"uid": uid, "title": f"Haircut between Sam and {name}", "description": "Short at the back",
         "start": start, "end": start + dt.timedelta(minutes=minutes), "location": "12 rue de la Paix, Paris",
         "status": status, "previous": reschedule_of, "by": "ada@example.test" if reschedule_of else None}
    ).scalar_one()
    conn.execute(text('INSERT INTO "Attendee" (email, name, "timeZone", locale, "bookingId") '
                      "VALUES ('ada@example.test', :name, 'America/New_York', 'en', :booking)"),
                 {"name": name, "booking": booking})
    return booking, uid


def book(url: str, *, start: dt.datetime = START, minutes: int = 45, status: str = "accepted",
         name: str = "Ada Lovelace") -> tuple[int, str]:
    """A booking as Cal.com's booker writes it: the booking and its attendee in one transaction."""
    app = connect(url, schema="public")
    with app.begin() as conn:
        booking = _insert_booking(conn, start=start, minutes=minutes, status=status, name=name)
    app.dispose()
    return booking


def _mark_rescheduled(conn, uid: str) -> None:
    conn.execute(text('UPDATE "Booking" SET status = \'cancelled\', rescheduled = true, '
                      '"updatedAt" = now() AT TIME ZONE \'UTC\' WHERE uid = :uid'), {"uid": uid})


def reschedule(url: str, uid: str, start: dt.datetime, *, new_first: bool = False) -> int:
    """Cal.com's reschedule in one transaction (createBooking.ts since October 2024): the old booking cancelled
    and marked rescheduled, then the new one continuing it (fromReschedule, rescheduledBy) with its attendee;
    or, *new_first*, the same statements the other way round."""
    app = connect(url, schema="public")
    with app.begin() as conn:
        if not new_first:
            _mark_rescheduled(conn, uid)
        new, _ = _insert_booking(conn, start=start, minutes=45, status="accepted", name="Ada Lovelace",
                                 reschedule_of=uid)
        if new_first:
            _mark_rescheduled(conn, uid)
    app.dispose()
    return new


def cancel_for_reschedule(url: str, uid: str) -> None:
    """The first transaction of a reschedule by Cal.com before October 2024: the old booking cancelled and
    marked rescheduled, committed before the new booking is written."""
    app = connect(url, schema="public")
    with app.begin() as conn:
        _mark_rescheduled(conn, uid)
    app.dispose()


def book_as_reschedule(url: str, uid: str, start: dt.datetime) -> int:
    """The second transaction of a reschedule by Cal.com before October 2024: the new booking and its attendee."""
    app = connect(url, schema="public")
    with app.begin() as conn:
        new, _ = _insert_booking(conn, start=start, minutes=45, status="accepted", name="Ada Lovelace",
                                 reschedule_of=uid)
    app.dispose()
    return new


def request_reschedule(url: str, uid: str, reason: str) -> None:
    """The organiser's "request reschedule": Cal.com cancels the booking, marks it rescheduled and emails the
    attendee a link to book again; no new booking yet."""
    app = connect(url, schema="public")
    with app.begin() as conn:
        conn.execute(text('UPDATE "Booking" SET rescheduled = true, "cancellationReason" = :reason, '
                          'status = \'cancelled\', "updatedAt" = now() AT TIME ZONE \'UTC\' WHERE uid = :uid'),
                     {"uid": uid, "reason": reason})
    app.dispose()


@pytest.fixture
def harness(calcom):
    engine = connect(calcom)
    harness = Harness(engine, make_config(calcom))
    yield engine, harness
    harness.close()
    engine.dispose()


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


def every_kind_of_workflow(engine) -> int:
    """A workflow of each kind a reschedule could set off; the reminder's id."""
    add_workflow(engine, email("created", {"type": "appointment_created"}, "Booked: {appointment_date_time}"))
    add_workflow(engine, email("moved", {"type": "appointment_rescheduled"},
                               "Moved from {old_appointment_date_time} to {appointment_date_time}"))
    add_workflow(engine, email("changed", {"type": "appointment_status_changed"}, "{old_status} to {new_status}"))
    add_workflow(engine, email("cancelled", {"type": "appointment_status_changed", "to": ["canceled"]}, "Cancelled"))
    return add_workflow(engine, email("reminder", {"type": "appointment_starts", "offset": "-1h"},
                                      "Soon: {appointment_start_time}", filters={"statuses": ["approved"]}))


def sent_since(pipeline, count: int) -> list[str]:
    """The subjects sent after the first *count*, sorted (one event's deliveries go out in no set order)."""
    return sorted(m.subject for m in pipeline.sent("smtp")[count:])


MOVED = "Moved from Nov 25, 2026, 3:00 PM to Nov 26, 2026, 5:00 PM"
NEW_START = START + dt.timedelta(days=1, hours=2)


@pytest.mark.parametrize("new_first", [False, True], ids=["cancel first, as Cal.com", "new booking first"])
def test_a_calcom_reschedule_is_one_reschedule_whatever_the_order_of_its_writes(harness, calcom, new_first):
    engine, pipeline = harness
    reminder = every_kind_of_workflow(engine)
    old, uid = book(calcom)
    pipeline.run(NOW)
    assert sent_since(pipeline, 0) == ["Booked: Nov 25, 2026, 3:00 PM"]
    assert pipeline.jobs() == {f"wf:{reminder}:appt:{old}": START.replace(tzinfo=UTC) - dt.timedelta(hours=1)}

    new = reschedule(calcom, uid, NEW_START, new_first=new_first)
    pipeline.run(NOW)
    # Not "Booked", nor "Cancelled", nor a status change: the booking moved, and stays approved.
    assert sent_since(pipeline, 1) == [MOVED]
    assert sql(engine, "SELECT w.name, d.subject_id FROM deliveries d JOIN workflows w ON w.id = d.workflow_id "
                       "WHERE w.name = 'moved'") == [("moved", new)]
    assert sql(engine, "SELECT count(*) FROM change_events WHERE table_name = 'appointments' AND op = 'UPDATE' "
                       "AND old->>'status' IS DISTINCT FROM new->>'status'") == [(0,)]
    assert pipeline.jobs() == {f"wf:{reminder}:appt:{new}": NEW_START.replace(tzinfo=UTC) - dt.timedelta(hours=1)}
    assert sql(engine, "SELECT id, status FROM appointments") == [(new, "approved")]
    assert sql(engine, "SELECT count(*) FROM capture_errors") == [(0,)]


@pytest.mark.parametrize("pause", [True, False], ids=["handled in between", "both written before handling"])
def test_a_reschedule_in_two_transactions_is_a_request_reschedule_then_a_booking_again(harness, calcom, pause):
    # Cal.com before October 2024 committed the cancellation before writing the new booking. Until the new
    # booking is written, the rows are those of an organiser's request reschedule, and read as one.
    engine, pipeline = harness
    reminder = every_kind_of_workflow(engine)
    old, uid = book(calcom)
    pipeline.run(NOW)
    assert len(pipeline.sent("smtp")) == 1 and list(pipeline.jobs()) == [f"wf:{reminder}:appt:{old}"]

    cancel_for_reschedule(calcom, uid)
    if pause:
        pipeline.run(NOW)
        assert sent_since(pipeline, 1) == ["Cancelled", "approved to canceled"]
        assert pipeline.jobs() == {}
    new = book_as_reschedule(calcom, uid, NEW_START)
    pipeline.run(NOW)
    # Handled after the new booking is written, the cancellation sets off nothing: the cancelled booking has
    # left the appointments by then. The new booking continues it from cancelled either way.
    assert sent_since(pipeline, 3 if pause else 1) == [MOVED, "canceled to approved"]
    assert pipeline.jobs() == {f"wf:{reminder}:appt:{new}": NEW_START.replace(tzinfo=UTC) - dt.timedelta(hours=1)}
    assert sql(engine, "SELECT id, status FROM appointments") == [(new, "approved")]


def test_a_request_reschedule_is_a_cancellation_and_the_booking_again_continues_it(harness, calcom):
    engine, pipeline = harness
    add_workflow(engine, email("created", {"type": "appointment_created"}, "Booked: {appointment_date_time}"))
    add_workflow(engine, email("cancelled", {"type": "appointment_status_changed", "to": ["canceled"]},
                               "Cancelled{{ ', please book again' if appointment.custom.reschedule_requested }}: "
                               "{{ appointment.custom.cancellation_reason }}"))
    add_workflow(engine, email("moved", {"type": "appointment_rescheduled"},
                               "Moved from {old_appointment_date_time} to {appointment_date_time}"))
    add_workflow(engine, email("back", {"type": "appointment_status_changed", "to": ["approved"]},
                               "{old_status} to {new_status}"))
    add_workflow(engine, email("confirmed", {"type": "appointment_status_changed", "from": ["pending"],
                                             "to": ["approved"]}, "Confirmed"))
    reminder = add_workflow(engine, email("reminder", {"type": "appointment_starts", "offset": "-1h"}, "Soon",
                                          filters={"statuses": ["approved"]}))
    old, uid = book(calcom)
    pipeline.run(NOW)
    assert len(pipeline.sent("smtp")) == 1 and list(pipeline.jobs()) == [f"wf:{reminder}:appt:{old}"]

    # The organiser asks Ada to pick another time: to Cal.com (and its webhooks) a cancellation.
    request_reschedule(calcom, uid, "Sam is away that day")
    pipeline.run(NOW)
    assert [m.subject for m in pipeline.sent("smtp")][1:] == ["Cancelled, please book again: Sam is away that day"]
    assert pipeline.jobs() == {}

    # Ada books again through the link: a new booking continuing the old one, which Cal.com marks again.
    new = reschedule(calcom, uid, START + dt.timedelta(days=1, hours=2))
    pipeline.run(NOW)
    assert [m.subject for m in pipeline.sent("smtp")][2:] == [
        "Moved from Nov 25, 2026, 3:00 PM to Nov 26, 2026, 5:00 PM", "canceled to approved"]
    assert sorted(sql(engine, "SELECT DISTINCT subject_id FROM deliveries")) == [(old,), (new,)]
    assert pipeline.jobs() == {
        f"wf:{reminder}:appt:{new}": START.replace(tzinfo=UTC) + dt.timedelta(days=1, hours=1)}
    assert sql(engine, "SELECT id FROM appointments ORDER BY id") == [(new,)]


def test_times_are_utc_whatever_the_database_time_zone(pg_cluster, calcom):
    database = calcom.rsplit("/", 1)[1]
    with pg_cluster.admin.connect() as conn:
        conn.exec_driver_sql(f"ALTER DATABASE {database} SET timezone = 'America/New_York'")
    engine = connect(calcom)  # new connections, Cal.com's and apptflow's, take the database's zone
    assert sql(engine, "SHOW timezone") == [("America/New_York",)]
    pipeline = Harness(engine, make_config(calcom))
    add_workflow(engine, email("confirm", {"type": "appointment_created"}, "{appointment_date_time}"))
    reminder = add_workflow(engine, email("reminder", {"type": "appointment_starts", "offset": "-1h"}, "Soon"))
    booking, _ = book(calcom)  # 14:00 in "startTime" is 14:00 UTC, whoever's session writes it
    pipeline.run(NOW)
    pipeline.close()
    assert [m.subject for m in pipeline.sent("smtp")] == ["Nov 25, 2026, 3:00 PM"]  # in Paris
    assert pipeline.jobs() == {f"wf:{reminder}:appt:{booking}": START.replace(tzinfo=UTC) - dt.timedelta(hours=1)}
    assert sql(engine, "SELECT starts_at FROM appointments") == [(START.replace(tzinfo=UTC),)]
    engine.dispose()


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


@pytest.mark.parametrize(("code", "value"), [("approved", "accepted"), ("canceled", "cancelled")])
def test_set_status_writes_calcoms_own_status(calcom, code, value):
    engine = connect(calcom)
    pipeline = Harness(engine, make_config(calcom, APPTFLOW_DAEMON_DRY_RUN="false"))
    add_workflow(engine, {"name": "decide", "trigger": {"type": "appointment_created"},
                          "filters": {"statuses": ["pending"]},
                          "actions": [{"type": "set_status", "status": code}]})
    booking, _ = book(calcom, status="pending")
    pipeline.run(NOW)
    pipeline.close()
    assert sql(engine, 'SELECT status::text FROM "Booking" WHERE id = :id', id=booking) == [(value,)]
    # The write is captured like Cal.com's own, reads back as the code written, and is marked as a chain.
    assert sql(engine, "SELECT op, old->>'status', new->>'status', depth FROM change_events "
                       "WHERE row_id = :id ORDER BY id DESC LIMIT 1", id=booking) == [("UPDATE", "pending", code, 1)]
    assert sql(engine, "SELECT status FROM appointments WHERE id = :id", id=booking) == [(code,)]
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


def test_recipients_and_filters_the_mapping_has_no_data_for_are_refused_at_add(calcom, tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text("name: w\ntrigger: {type: appointment_created}\nfilters: {started_by: [backend]}\nactions:\n"
                    "  - {type: sms, to: [customer, staff], body: b}\n"
                    "  - {type: telegram, chat_id: [customer, staff, '-100200300'], text: t}\n"
                    "  - {type: email, to: [customer, staff], subject: s, body: b}\n")
    output = cli(calcom, "workflow", "add", str(path), code=1)
    assert ("filters.started_by: filter 'started_by' has no data here: appointments.started_by: Cal.com does not "
            "record whether the attendee or the organiser made a booking") in output
    assert "actions[0].to[1]: 'staff' has no phone number here: staff.phone: Cal.com users have no phone number" \
        in output
    assert ("actions[1].chat_id[0]: 'customer' has no Telegram chat id here: customers.telegram_chat_id: Cal.com "
            "attendees have no Telegram chat") in output
    assert "actions[1].chat_id[1]: 'staff' has no Telegram chat id here: staff.telegram_chat_id" in output
    # Attendees have phone numbers, organisers and attendees email addresses; a literal chat id is a chat id.
    for place in ("actions[0].to[0]", "actions[1].chat_id[2]", "actions[2]"):
        assert place not in output
    path.write_text("name: w\ntrigger: {type: appointment_created}\nfilters: {locales: [fr]}\nactions:\n"
                    "  - {type: sms, to: [customer], body: b}\n  - {type: email, to: [customer, staff], "
                    "subject: s, body: b}\n")
    assert "added workflow" in cli(calcom, "workflow", "add", str(path))


def test_a_locale_filter_is_refused_where_the_mapping_has_no_locale(pg_cluster, backend, tmp_path):
    if backend != "postgresql":
        pytest.skip("Cal.com runs on PostgreSQL")
    document = yaml.safe_load(MAPPING.read_text())
    for view, expression in (("appointments", "first_attendee.locale AS locale"), ("customers", "a.locale,")):
        document["views"][view] = document["views"][view].replace(
            expression, "NULL::text AS locale" + ("," if expression.endswith(",") else ""))
    document["absent"].update({"appointments.locale": "not asked", "customers.locale": "not asked either"})
    mapping = tmp_path / "calcom-no-locale.yaml"
    mapping.write_text(yaml.safe_dump(document))
    url = calcom_database(pg_cluster)
    cli(url, "db", "init", mapping=str(mapping))
    workflow = tmp_path / "w.yaml"
    for trigger in ("appointment_created", "customer_created"):
        workflow.write_text(f"name: w\ntrigger: {{type: {trigger}}}\nfilters: {{locales: [fr]}}\nactions:\n"
                            "  - {type: email, to: [customer], subject: s, body: b}\n")
        output = cli(url, "workflow", "add", str(workflow), mapping=str(mapping), code=1)
        why = "customers.locale: not asked either" + ("; appointments.locale: not asked"
                                                      if trigger == "appointment_created" else "")
        assert f"filters.locales: filter 'locales' has no data here: {why}\n" in output
    _drop_pg_database(pg_cluster, url.rsplit("/", 1)[1])


def test_a_read_only_mapping_refuses_set_status(pg_cluster, backend, tmp_path):
    if backend != "postgresql":
        pytest.skip("Cal.com runs on PostgreSQL")
    document = yaml.safe_load(MAPPING.read_text())
    del document["set_status"]  # its statuses still say how Cal.com's read
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
    book(url)
    engine = connect(url)
    assert sql(engine, "SELECT status FROM appointments") == [("approved",)]
    engine.dispose()
    _drop_pg_database(pg_cluster, url.rsplit("/", 1)[1])


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


def test_db_check_reads_the_statuses_back_through_the_installed_view(calcom, tmp_path):
    output = cli(calcom, "db", "check")
    assert ("ok: statuses: each one written reads back as itself (approved = accepted, awaiting_host = "
            "awaiting_host, canceled = cancelled, pending = pending, rejected = rejected)") in output
    engine = connect(calcom)
    with engine.begin() as conn:  # a hand edit of the translation apptflow generated
        conn.exec_driver_sql("CREATE OR REPLACE FUNCTION apptflow.status_code(value text) RETURNS text LANGUAGE sql "
                             "IMMUTABLE AS $$ SELECT CASE value WHEN 'accepted' THEN 'approved' ELSE value END $$")
    output = cli(calcom, "db", "check", code=1)
    assert "problem: statuses: canceled is written as 'cancelled', which reads back as 'cancelled'" in output
    # A view of its own, translating statuses apart from the list set_status writes by.
    view = yaml.safe_load(MAPPING.read_text())["views"]["appointments"].replace(
        "status_code(b.status::text)", "CASE b.status WHEN 'accepted' THEN 'approved' ELSE b.status::text END")
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE OR REPLACE VIEW apptflow.appointments AS {view}")
    output = cli(calcom, "db", "check", code=1)
    assert "problem: appointments: the view does not read its status through apptflow.status_code()" in output
    cli(calcom, "db", "upgrade")  # installs the mapping again
    assert "problem" not in cli(calcom, "db", "check")
    engine.dispose()
    # Such a view is refused in a mapping file already.
    document = yaml.safe_load(MAPPING.read_text())
    document["views"]["appointments"] = view
    mapping = tmp_path / "own-case.yaml"
    mapping.write_text(yaml.safe_dump(document))
    output = cli(calcom, "db", "upgrade", mapping=str(mapping), code=1)
    assert ("views.appointments: give the status as status_code(<the application's status>) AS status, so that "
            "it reads through the same statuses set_status writes") in output


def test_capture_never_fails_calcoms_own_writes(calcom):
    engine = connect(calcom)
    sql(engine, "ALTER TABLE change_events ADD CONSTRAINT refuse_all CHECK (false) NOT VALID")
    booking, uid = book(calcom)  # Cal.com's transaction commits
    assert sql(engine, 'SELECT count(*) FROM "Booking" WHERE id = :id', id=booking) == [(1,)]
    assert sql(engine, "SELECT DISTINCT table_name FROM capture_errors ORDER BY 1") == [("Attendee",), ("Booking",)]
    request_reschedule(calcom, uid, "Sam is away")  # captured at commit: the commit goes through too
    assert sql(engine, 'SELECT status::text FROM "Booking" WHERE id = :id', id=booking) == [("cancelled",)]
    assert sql(engine, "SELECT op FROM capture_errors WHERE table_name = 'Booking' ORDER BY id DESC LIMIT 1") == [
        ("UPDATE",)]
    engine.dispose()


@pytest.mark.parametrize("schema", ["apptflow", "flow"])
def test_install_then_uninstall_leaves_calcoms_database_byte_for_byte(pg_cluster, backend, schema):
    if backend != "postgresql":
        pytest.skip("Cal.com runs on PostgreSQL")
    url = calcom_database(pg_cluster)
    book(url)
    database = url.rsplit("/", 1)[1]
    before = pg_cluster.dump(database)
    cli(url, "db", "init", schema=schema)
    engine = connect(url, schema=schema)
    assert set(inspect(engine).get_table_names(schema="public")) == {"users", "EventType", "Booking", "Attendee"}
    assert {"appointments", "customers"} <= set(inspect(engine).get_view_names(schema=schema))
    assert "workflows" in inspect(engine).get_table_names(schema=schema)
    assert "problem" not in cli(url, "db", "check", schema=schema)
    # apptflow works from that schema: Cal.com's writes are captured there.
    sql(engine, """UPDATE "Booking" SET status = 'cancelled'""")
    sql(engine, """UPDATE "Booking" SET status = 'accepted'""")
    assert sql(engine, "SELECT op, new->>'status' FROM change_events ORDER BY id") == [
        ("UPDATE", "canceled"), ("UPDATE", "approved")]
    engine.dispose()
    assert f"removed schema {schema}" in cli(url, "db", "uninstall", "--yes", schema=schema)
    assert pg_cluster.dump(database) == before
