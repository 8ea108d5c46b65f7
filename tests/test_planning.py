"""Planning time-offset firings: pure, time passed in."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from db.jobs import job_id, parse_job_id
from db.records import Appointment, Booking, Customer
from engine.planning import Firing, TooLate, plan, still_planned
from engine.validation import parse_workflow

UTC = dt.timezone.utc
START = dt.datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
END = START + dt.timedelta(minutes=45)
EARLY = START - dt.timedelta(days=30)


def booking(status="approved", starts_at=START, ends_at=END) -> Booking:
    appointment = Appointment(id=7, customer_id=1, service_id=1, staff_id=1, location_id=1, starts_at=starts_at,
                              ends_at=ends_at, status=status, started_by="frontend", locale=None, custom={},
                              created_at=EARLY, updated_at=EARLY)
    customer = Customer(id=1, first_name="Ada", last_name="L", email="a@b.c", phone=None, locale="en",
                        timezone=None, telegram_chat_id=None, custom={}, created_at=EARLY)
    return Booking(appointment=appointment, customer=customer)


def workflow(kind="appointment_starts", offset="-30m", grace=None, **filters):
    trigger = {"type": kind, "offset": offset, **({"grace": grace} if grace else {})}
    parsed = parse_workflow({"name": "w", "trigger": trigger, "filters": filters or None,
                             "actions": [{"type": "set_status", "status": "x"}]})
    return replace(parsed, id=3)


@pytest.mark.parametrize("kind, offset, expected", [
    ("appointment_starts", "-30m", START - dt.timedelta(minutes=30)),
    ("appointment_starts", "2h", START + dt.timedelta(hours=2)),
    ("appointment_starts", "-1d", START - dt.timedelta(days=1)),
    ("appointment_starts", "0", START),
    ("appointment_ends", "-10m", END - dt.timedelta(minutes=10)),
    ("appointment_ends", "30m", END + dt.timedelta(minutes=30)),
    ("appointment_ends", "1d", END + dt.timedelta(days=1)),
    ("appointment_ends", "-2h", END - dt.timedelta(hours=2)),
    ("appointment_ends", "30d", END + dt.timedelta(days=30)),
])
def test_before_and_after_start_and_end(kind, offset, expected):
    firing = plan(workflow(kind, offset), booking(), EARLY)
    assert firing == Firing(workflow_id=3, appointment_id=7, planned_at=expected, run_at=expected,
                            grace=dt.timedelta(hours=1))


def test_booked_inside_the_window_fires_at_once():
    now = START - dt.timedelta(minutes=10)  # booked 10 minutes before a "30 minutes before" reminder
    firing = plan(workflow(offset="-30m"), booking(), now)
    assert isinstance(firing, Firing)
    assert firing.run_at == now and firing.planned_at == START - dt.timedelta(minutes=30)


def test_a_day_before_reminder_booked_three_hours_ahead_still_fires_at_once():
    now = START - dt.timedelta(hours=3)  # 21 hours past the planned time, far beyond the grace
    assert plan(workflow(offset="-1d"), booking(), now).run_at == now


def test_late_within_grace_after_the_anchor_fires_at_once():
    now = END + dt.timedelta(minutes=40)  # "30m after the end", 10 minutes late, grace 1h
    assert plan(workflow("appointment_ends", "30m"), booking(), now).run_at == now


def test_past_both_anchor_and_grace_is_too_late():
    now = END + dt.timedelta(hours=3)
    result = plan(workflow("appointment_ends", "30m", grace="1h"), booking(), now)
    assert isinstance(result, TooLate)
    assert result.planned_at == END + dt.timedelta(minutes=30)
    assert "past the 1h grace and the appointment's end" in result.reason


def test_filters_and_enabled_decide_whether_there_is_a_firing():
    assert plan(workflow(statuses=["approved"]), booking("canceled"), EARLY) is None
    assert isinstance(plan(workflow(statuses=["approved"]), booking("approved"), EARLY), Firing)
    assert plan(replace(workflow(), enabled=False), booking(), EARLY) is None
    assert plan(workflow(), None, EARLY) is None


def test_job_ids_are_deterministic_and_parse_back():
    assert job_id(3, 7) == "wf:3:appt:7"
    assert parse_job_id("wf:3:appt:7") == (3, 7)
    assert parse_job_id("something-else") is None


def test_a_job_still_stands_however_late_while_its_time_and_filters_hold():
    reminder, planned = workflow(offset="-30m", statuses=["approved"]), START - dt.timedelta(minutes=30)
    assert still_planned(reminder, booking(), planned)  # lateness is APScheduler's to judge
    assert not still_planned(reminder, booking(starts_at=START + dt.timedelta(hours=1)), planned)
    assert not still_planned(reminder, booking("canceled"), planned)
    assert not still_planned(replace(reminder, enabled=False), booking(), planned)
    assert not still_planned(reminder, None, planned)
