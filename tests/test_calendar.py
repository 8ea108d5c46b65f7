"""Calendar invites: a booking, a reschedule and a cancellation, written with plain SQL, put the appointment in
the customer's calendar, move it and remove it, through a real SMTP server, on every database."""

from __future__ import annotations

import datetime as dt
import json
from email import message_from_bytes
from email.policy import default as default_policy
from zoneinfo import ZoneInfo

import icalendar
import pytest
import yaml
from click.testing import CliRunner

from engine.errors import InvalidWorkflow
from engine.invites import EPOCH, uid
from engine.validation import parse_workflow
from scheduler.cli import main
from tests.booking import book, seed
from tests.channels.servers import SmtpRecorder, smtp_controller
from tests.conftest import sql
from tests.pipeline import NOW, Pipeline, make_config

PARIS = ZoneInfo("Europe/Paris")


def email(name: str, trigger: dict, **action) -> dict:
    return {"name": name, "trigger": trigger,
            "actions": [{"type": "email", "to": ["customer"], "subject": name, "body": "See the invitation.",
                         **action}]}


WORKFLOWS = [
    email("Confirmation", {"type": "appointment_created"}, calendar="request", calendar_alarm="-1h"),
    email("Moved", {"type": "appointment_rescheduled", "on": ["time"]}, calendar="request"),
    email("Cancelled", {"type": "appointment_status_changed", "to": ["canceled"]}, calendar="cancel"),
]


@pytest.fixture
def smtp():
    recorder = SmtpRecorder()
    controller = smtp_controller(recorder)
    controller.start()
    yield recorder, controller.port
    controller.stop()


def add_with_the_cli(db_url: str, tmp_path, document: dict) -> None:
    path = tmp_path / "workflow.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    result = CliRunner().invoke(main, ["workflow", "add", str(path)], env={"APPTFLOW_DATABASE_URL": db_url,
                                                                          "APPTFLOW_CONFIG": ""})
    assert result.exit_code == 0, result.output


def invites(recorder: SmtpRecorder) -> list[tuple[str, icalendar.Calendar, bytes]]:
    """(the text/calendar part's method, its calendar, the invite.ics attachment) of each email received."""
    found = []
    for envelope in recorder.envelopes:
        message = message_from_bytes(envelope.content, policy=default_policy)
        [part] = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
        [attached] = [p for p in message.iter_attachments() if p.get_filename() == "invite.ics"]
        assert attached.get_content_type() == "application/ics"
        found.append((part.get_param("method"), icalendar.Calendar.from_ical(part.get_payload(decode=True)),
                      attached.get_payload(decode=True)))
    return found


def seconds_since_2020(moment: dt.datetime) -> int:
    return int((moment - EPOCH).total_seconds())


def test_a_booking_a_reschedule_and_a_cancellation_add_move_and_remove_the_event(engine, db_url, tmp_path, smtp):
    recorder, port = smtp
    for document in WORKFLOWS:
        add_with_the_cli(db_url, tmp_path, document)
    ids = seed(engine)
    pipeline = Pipeline(engine, make_config(db_url, APPTFLOW_DAEMON_DRY_RUN="false", APPTFLOW_SMTP_HOST="127.0.0.1",
                                            APPTFLOW_SMTP_PORT=str(port),
                                            APPTFLOW_COMPANY_WEBSITE="https://www.salon-lumiere.example/"))
    appointment = book(engine, ids, starts_at="2026-12-01T10:00:00+00:00", ends_at="2026-12-01T10:45:00+00:00")
    pipeline.run(NOW)
    sql(engine, "UPDATE appointments SET starts_at = :start, ends_at = :end WHERE id = :id", id=appointment,
        start="2026-12-02T15:30:00+00:00", end="2026-12-02T16:15:00+00:00")
    pipeline.run(NOW + dt.timedelta(hours=1))
    sql(engine, "UPDATE appointments SET status = 'canceled' WHERE id = :id", id=appointment)
    pipeline.run(NOW + dt.timedelta(hours=2))
    pipeline.close()

    received = invites(recorder)
    assert [method for method, _, _ in received] == ["REQUEST", "REQUEST", "CANCEL"]
    assert [str(calendar["METHOD"]) for _, calendar, _ in received] == ["REQUEST", "REQUEST", "CANCEL"]
    events = [calendar.walk("VEVENT")[0] for _, calendar, _ in received]
    assert {str(e["UID"]) for e in events} == {f"appointment-{appointment}@www.salon-lumiere.example"}
    assert [int(e["SEQUENCE"]) for e in events] == [
        seconds_since_2020(NOW + dt.timedelta(hours=h)) for h in (0, 1, 2)]
    # the times in the location's zone, with its rules
    assert [(e["DTSTART"].dt, e["DTEND"].dt) for e in events] == [
        (dt.datetime(2026, 12, 1, 11, 0, tzinfo=PARIS), dt.datetime(2026, 12, 1, 11, 45, tzinfo=PARIS)),
        (dt.datetime(2026, 12, 2, 16, 30, tzinfo=PARIS), dt.datetime(2026, 12, 2, 17, 15, tzinfo=PARIS)),
        (dt.datetime(2026, 12, 2, 16, 30, tzinfo=PARIS), dt.datetime(2026, 12, 2, 17, 15, tzinfo=PARIS))]
    assert all(e["DTSTART"].params["TZID"] == "Europe/Paris" for e in events)
    assert all([str(z["TZID"]) for z in calendar.walk("VTIMEZONE")] == ["Europe/Paris"]
               for _, calendar, _ in received)
    assert [str(e["STATUS"]) for e in events] == ["CONFIRMED", "CONFIRMED", "CANCELLED"]
    first = events[0]
    assert (str(first["SUMMARY"]), str(first["LOCATION"])) == ("Haircut", "1 Main St")
    assert str(first["ORGANIZER"]) == "mailto:bookings@example.com"  # the sender, as iMIP wants
    assert first["ORGANIZER"].params["CN"] == "Salon Lumière"
    assert str(first["ATTENDEE"]) == "mailto:ada@example.test" and first["ATTENDEE"].params["CN"] == "Ada Lovelace"
    [alarm] = first.walk("VALARM")
    assert alarm["TRIGGER"].dt == dt.timedelta(hours=-1)
    assert not events[1].walk("VALARM") and not events[2].walk("VALARM")
    assert all(attached == calendar.to_ical() for _, calendar, attached in received)
    rendered = [r if isinstance(r, dict) else json.loads(r)  # PostgreSQL's json column reads as an object
                for r, in sql(engine, "SELECT rendered FROM deliveries ORDER BY id")]
    assert [r["calendar"]["method"] for r in rendered] == ["REQUEST", "REQUEST", "CANCEL"]


def test_a_resent_invite_keeps_its_sequence():
    """The sequence is the moment the delivery was written, kept with it: a retry sends the same one."""
    from db.records import Appointment, Booking
    from engine.context import OCCURRED_AT
    from engine.invites import sequence

    appointment = Appointment(id=1, customer_id=None, service_id=None, staff_id=None, location_id=None,
                              starts_at=NOW, ends_at=NOW, status="approved", started_by="frontend", locale=None,
                              custom={}, created_at=NOW, updated_at=NOW + dt.timedelta(seconds=5))
    booking = Booking(appointment=appointment, customer=None)
    assert sequence({OCCURRED_AT: NOW.isoformat()}, booking) == seconds_since_2020(NOW)
    assert sequence({}, booking) == seconds_since_2020(NOW) + 5  # a preview: the appointment's updated_at


@pytest.mark.parametrize("website, host", [("https://salon.example/book", "salon.example"),
                                           ("salon.example", "salon.example"), ("", "apptflow"), (None, "apptflow")])
def test_the_uid_names_the_appointment_at_the_companys_host(website, host):
    assert uid(7, website) == f"appointment-7@{host}"


def problems(document) -> list[str]:
    with pytest.raises(InvalidWorkflow) as caught:
        parse_workflow(document)
    return [str(p) for p in caught.value.problems]


def test_an_invite_needs_an_appointment_and_an_alarm_needs_a_request():
    assert problems(email("w", {"type": "customer_created"}, calendar="request")) == [
        "actions[0].calendar: customer_created has no appointment to invite to"]
    assert problems(email("w", {"type": "appointment_created"}, calendar="cancel", calendar_alarm="-1h")) == [
        "actions[0].calendar_alarm: an alarm goes with 'calendar: request'"]
    assert problems(email("w", {"type": "appointment_created"}, calendar="publish")) == [
        "actions[0].calendar: expected one of: request, cancel; got 'publish'"]
    [bad_alarm] = problems(email("w", {"type": "appointment_created"}, calendar="request", calendar_alarm="soon"))
    assert bad_alarm.startswith("actions[0].calendar_alarm: 'soon' is not a duration")


def test_workflow_test_shows_the_invite_it_would_send(engine, db_url, tmp_path):
    add_with_the_cli(db_url, tmp_path, WORKFLOWS[0])
    appointment = book(engine, seed(engine), starts_at="2026-12-01T10:00:00+00:00", ends_at="2026-12-01T10:45:00+00:00")
    result = CliRunner().invoke(main, ["workflow", "test", "1", "--appointment", str(appointment)],
                                env={"APPTFLOW_DATABASE_URL": db_url, "APPTFLOW_CONFIG": ""})
    assert result.exit_code == 0, result.output
    assert f'calendar: {{"method": "REQUEST", "uid": "appointment-{appointment}@apptflow"' in result.output
    assert '"timezone": "Europe/Paris", "summary": "Haircut", "location": "1 Main St"' in result.output
