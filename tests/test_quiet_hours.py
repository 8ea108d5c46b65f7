"""Quiet hours (send windows) through the pipeline, driven by plain SQL and the CLI, with time passed in."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from db import deliveries as outbox
from db import jobs as job_queries
from engine.windows import Window
from scheduler.cli import main
from scheduler.catalogue import Catalogue
from scheduler.consumer import EventConsumer
from scheduler.daemon import Daemon
from scheduler.planner import Planner, _Due
from tests.booking import book, seed
from tests.conftest import sql, utc
from tests.pipeline import Pipeline, add_workflow, make_config

UTC, PARIS = dt.timezone.utc, ZoneInfo("Europe/Paris")
WINDOW = {"from": "09:00", "to": "21:00"}


def paris(day: int, hour: int, minute: int = 0) -> dt.datetime:
    """A moment of November 2026 on the Paris clock (UTC+1), in UTC."""
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=PARIS).astimezone(UTC)


class Harness(Pipeline):
    """The pipeline with the planner attached; firings are handed to it with the time passed in."""

    def __init__(self, engine, config):
        super().__init__(engine, config)
        self.planner = Planner(engine, self.catalogue, clock=lambda: paris(20, 12),
                               send_window=config.get("workflows", "send_window"))
        self.consumer.after_commit = self.planner.after_batch

    def jobs(self) -> dict[str, dt.datetime]:
        with self.engine.connect() as conn:
            times = job_queries.run_times(conn, like="wf:%")
        return {i: dt.datetime.fromtimestamp(t, UTC) for i, t in times.items()}

    def fire(self, workflow: int, appointment: int, planned: dt.datetime, now: dt.datetime) -> None:
        """What APScheduler does at the job's time: hand the firing to the planner."""
        self.planner.fire_batch([_Due(missed=False, workflow_id=workflow, appointment_id=appointment,
                                      planned_at=planned)], now)


@pytest.fixture
def harness(engine, db_url):
    harness = Harness(engine, make_config(db_url))
    yield harness
    harness.close()


def reminder(offset: str, **action) -> dict:
    return {"name": f"Reminder {offset}", "trigger": {"type": "appointment_starts", "offset": offset},
            "actions": [{"type": "email", "to": ["customer"], "subject": "See you at {{ appointment_start_time }}",
                         "body": "b", "send_window": WINDOW, **action}]}


def booked(engine, start: dt.datetime, **extra) -> int:
    return book(engine, seed(engine), starts_at=start.isoformat(),
                ends_at=(start + dt.timedelta(minutes=45)).isoformat(), **extra)


def history(engine) -> list[tuple]:
    rows = sql(engine, "SELECT action_type, status, attempts, next_attempt_at, sent_at, error FROM deliveries "
                       "ORDER BY id")
    return [(kind, status, attempts, utc(due), sent and utc(sent), error)
            for kind, status, attempts, due, sent, error in rows]


def test_a_reminder_due_at_four_in_the_morning_is_sent_at_nine(engine, harness):
    workflow = add_workflow(engine, reminder("-6h"))
    appointment = booked(engine, paris(24, 10))  # due at 04:00, and the window opens at 09:00, before the start
    harness.consumer.drain(paris(20, 12))
    assert harness.jobs() == {f"wf:{workflow}:appt:{appointment}": paris(24, 9)}
    harness.fire(workflow, appointment, paris(24, 4), now=paris(24, 9))
    assert harness.worker.work_one(paris(24, 9)).status == "sent"
    [(_, status, _, _, sent_at, _)] = history(engine)
    assert (status, sent_at) == ("sent", paris(24, 9))
    [email] = harness.sent("smtp")
    assert email.subject == "See you at 10:00 AM"
    with engine.connect() as conn:
        moved = outbox.get_delivery(conn, 1).context["_send_window"]
    assert moved == {"due": paris(24, 4).isoformat(), "at": paris(24, 9).isoformat(), "how": "deferred",
                     "window": "09:00–21:00", "zone": "Europe/Paris"}


def test_a_reminder_due_inside_the_window_is_sent_when_due(engine, harness):
    workflow = add_workflow(engine, reminder("-12h"))
    appointment = booked(engine, paris(24, 8))  # due at 20:00 the day before
    harness.consumer.drain(paris(20, 12))
    assert harness.jobs() == {f"wf:{workflow}:appt:{appointment}": paris(23, 20)}
    harness.fire(workflow, appointment, paris(23, 20), now=paris(23, 20) + dt.timedelta(milliseconds=3))
    assert harness.worker.work_one(paris(23, 20) + dt.timedelta(milliseconds=5)).status == "sent"
    [(_, status, _, due, _, _)] = history(engine)
    assert (status, due) == ("sent", paris(23, 20))


def test_a_reminder_that_would_wait_past_the_start_is_sent_at_the_end_of_the_last_window(engine, harness):
    workflow = add_workflow(engine, reminder("-2h"))
    appointment = booked(engine, paris(24, 8))  # due at 06:00; the window opens at 09:00, after the start
    harness.consumer.drain(paris(20, 12))
    assert harness.jobs() == {f"wf:{workflow}:appt:{appointment}": paris(23, 21)}
    run = paris(23, 21) + dt.timedelta(milliseconds=20)  # APScheduler runs it a moment after its time
    harness.fire(workflow, appointment, paris(24, 6), now=run)
    assert harness.worker.work_one(run + dt.timedelta(seconds=1)).status == "sent"
    [(_, status, _, _, sent_at, _)] = history(engine)
    assert (status, sent_at) == ("sent", run + dt.timedelta(seconds=1))
    # once fired early, re-planning the appointment does not plan it again
    sql(engine, "DELETE FROM apscheduler_jobs")  # as APScheduler removes the job it ran
    harness.planner.replan_appointments({appointment}, run + dt.timedelta(minutes=1))
    assert harness.jobs() == {}


def test_a_reminder_with_no_window_left_before_the_start_is_skipped(engine, harness):
    workflow = add_workflow(engine, reminder("-2h"))
    appointment = booked(engine, paris(24, 8))
    harness.consumer.drain(paris(23, 23))  # booked at 23:00: the last window before 06:00 has closed
    assert harness.jobs() == {f"wf:{workflow}:appt:{appointment}": paris(23, 23)}  # runs now, to say why not
    harness.fire(workflow, appointment, paris(24, 6), now=paris(23, 23))
    assert harness.worker.work_one(paris(23, 23)) is None
    [(_, status, _, _, _, error)] = history(engine)
    assert status == "skipped"
    assert error == ("outside its send window 09:00–21:00 (Europe/Paris): due 2026-11-24 06:00 CET, the window "
                     "opens at 2026-11-24 09:00 CET, after the appointment starts at 2026-11-24 08:00 CET, and "
                     "last closed at 2026-11-23 21:00 CET, before it could be sent")
    assert harness.sent("smtp") == []


@pytest.fixture
def quiet(engine, db_url):
    """The pipeline with [workflows] send_window set for every action."""
    pipeline = Harness(engine, make_config(db_url, APPTFLOW_WORKFLOWS_SEND_WINDOW="09:00-21:00"))
    yield pipeline
    pipeline.close()


def test_a_booking_made_at_night_is_confirmed_when_the_window_opens(engine, quiet):
    add_workflow(engine, {"name": "Confirmation", "trigger": {"type": "appointment_created"}, "actions": [
        {"type": "email", "to": ["customer"], "subject": "Booked", "body": "b"},
        {"type": "email", "to": ["staff"], "subject": "New booking", "body": "b", "send_window": False},
        {"type": "webhook", "url": "http://127.0.0.1:9/hook", "json": {"id": "{{ appointment_id }}"}},
    ]})
    booked(engine, paris(30, 10))
    night = paris(24, 4)
    quiet.consumer.drain(night)
    assert [o.status for o in quiet.run(night)] == ["sent", "sent"]  # the staff's, and the webhook: no window
    assert quiet.worker.work_one(paris(24, 9) - dt.timedelta(seconds=1)) is None
    assert quiet.worker.work_one(paris(24, 9)).status == "sent"
    assert [(kind, status, sent) for kind, status, _, _, sent, _ in history(engine)] == [
        ("email", "sent", paris(24, 9)), ("email", "sent", night), ("webhook", "sent", night)]
    assert [m.subject for m in quiet.sent("smtp")] == ["New booking", "Booked"]


def test_the_customers_own_time_zone_counts_and_staff_keep_the_locations(engine, quiet):
    add_workflow(engine, {"name": "Confirmation", "trigger": {"type": "appointment_created"}, "actions": [
        {"type": "sms", "to": ["customer", "staff"], "body": "Booked"}]})
    booked(engine, paris(30, 10))
    sql(engine, "UPDATE customers SET timezone = 'America/New_York'")
    quiet.consumer.drain(paris(24, 14))  # 14:00 in Paris, 08:00 in New York
    due = sql(engine, "SELECT recipient_index, status, next_attempt_at, error FROM deliveries ORDER BY id")
    assert [(index, status, utc(at)) for index, status, at, _ in due] == [
        (0, "pending", dt.datetime(2026, 11, 24, 14, tzinfo=UTC)), (1, "pending", paris(24, 14))]
    assert due[0][3] == ("waiting for its send window 09:00–21:00 (America/New_York): due 2026-11-24 08:00 EST, "
                         "sent at 2026-11-24 09:00 EST")


def test_a_retry_that_comes_due_at_night_waits_without_counting_an_attempt(engine, quiet):
    add_workflow(engine, {"name": "Confirmation", "trigger": {"type": "appointment_created"}, "actions": [
        {"type": "email", "to": ["customer"], "subject": "Booked", "body": "b"}]})
    booked(engine, paris(30, 10))
    quiet.consumer.drain(paris(23, 20, 59))  # written inside the window ...
    late = paris(23, 21, 10)  # ... and attempted past it and its allowance (as a retry at night would be)
    outcome = quiet.worker.work_one(late)
    assert outcome.status == "pending" and outcome.error.startswith("waiting for its send window")
    [(_, status, attempts, due, _, _)] = history(engine)
    assert (status, attempts, due) == ("pending", 0, paris(24, 9))
    assert quiet.worker.work_one(paris(24, 9)).status == "sent"
    [(_, status, attempts, _, sent_at, error)] = history(engine)
    assert (status, attempts, sent_at, error) == ("sent", 1, paris(24, 9), None)


def test_jobs_shows_the_deferred_time_beside_the_due_time(engine, quiet, db_url):
    day = (dt.datetime.now(UTC) + dt.timedelta(days=3)).astimezone(PARIS).date()  # the command reads the clock

    def local(hour: int) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(hour), tzinfo=PARIS).astimezone(UTC)

    workflow = add_workflow(engine, reminder("-6h"))
    add_workflow(engine, {"name": "Confirmation", "trigger": {"type": "appointment_created"}, "actions": [
        {"type": "email", "to": ["customer"], "subject": "Booked", "body": "b"}]})
    appointment = booked(engine, local(10))
    quiet.consumer.drain(local(3))
    result = CliRunner().invoke(main, ["jobs"], env={"APPTFLOW_DATABASE_URL": db_url, "APPTFLOW_CONFIG": ""})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()

    def when(moment: dt.datetime) -> str:
        shown = moment.astimezone(PARIS)
        return f"{moment:%Y-%m-%d %H:%M:%S}  {shown:%Y-%m-%d %H:%M:%S} {shown.tzname()}"

    def due(moment: dt.datetime, end: str) -> list[str]:
        date, time, name = when(moment).split("  ")[1].split()
        return ["[due", date, time, f"{name}{end}"]

    assert lines[1].split() == [*when(local(9)).split(), str(workflow), "Reminder", "-6h", str(appointment), "Ada",
                                "Lovelace", *due(local(4), "]")]
    assert lines[2] == "deliveries waiting for their send window:"
    assert lines[3].split() == [*when(local(9)).split(), str(workflow + 1), "Confirmation", str(appointment), "Ada",
                                "Lovelace", *due(local(3), ";"), "delivery", "1,", "email]"]


def test_the_polling_worker_wakes_when_a_waiting_delivery_comes_due(engine, db_url):
    clock = {"now": paris(24, 8, 59)}
    daemon = Daemon(make_config(db_url, APPTFLOW_DAEMON_POLL_INTERVAL="30s"), engine=engine,
                    clock=lambda: clock["now"])
    try:
        said = daemon.reload(make_config(db_url, APPTFLOW_DAEMON_POLL_INTERVAL="30s",
                                         APPTFLOW_WORKFLOWS_SEND_WINDOW="09:00-21:00"))
        assert said == ["[workflows] send_window: None → 09:00-21:00"]
        assert daemon.consumer.send_window == daemon.planner.send_window == daemon.worker.send_window \
            == Window(opens=dt.time(9), closes=dt.time(21))
        assert daemon._until_due(30.0) == 30.0  # nothing pending: a whole poll
        add_workflow(engine, {"name": "Confirmation", "trigger": {"type": "appointment_created"}, "actions": [
            {"type": "email", "to": ["customer"], "subject": "Booked", "body": "b"}]})
        booked(engine, paris(30, 10))
        # at 08:59: it waits for 09:00 (consumed as the leader of its partition would)
        EventConsumer(engine, Catalogue(), send_window=daemon.consumer.send_window).drain(clock["now"])
        clock["now"] += dt.timedelta(seconds=40)
        assert daemon._until_due(30.0) == 20.0  # not a poll (30 s) but the 20 s left until 09:00
        clock["now"] += dt.timedelta(seconds=20)
        assert daemon._until_due(30.0) == 30.0  # due: a worker claims it now, the poll waits as ever
    finally:
        daemon.transports.close()
        daemon.metrics.close()
