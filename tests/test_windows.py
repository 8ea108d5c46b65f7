"""Send windows (quiet hours): the arithmetic alone, with ``now`` passed in."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from engine.document import to_document
from engine.errors import InvalidWorkflow
from engine.validation import parse_workflow
from engine.windows import (
    ALLOWANCE,
    DEFERRED,
    EARLY,
    ON_TIME,
    Send,
    Skip,
    Window,
    WindowError,
    decide,
    parse_window,
)
from scheduler.config import ConfigError, load_config

PARIS = ZoneInfo("Europe/Paris")
DAY = Window(opens=dt.time(9), closes=dt.time(21))
NIGHT = Window(opens=dt.time(22), closes=dt.time(6))


def paris(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, second, tzinfo=PARIS)


def test_a_message_due_at_four_in_the_morning_waits_for_nine():
    assert decide(paris(24, 4), DAY, PARIS, now=paris(24, 4)) == Send(at=paris(24, 9), how=DEFERRED)


def test_a_message_due_inside_the_window_goes_when_due():
    assert decide(paris(23, 20), DAY, PARIS, now=paris(23, 9)) == Send(at=paris(23, 20), how=ON_TIME)
    assert decide(paris(23, 21), DAY, PARIS, now=paris(23, 9)).at == paris(23, 21)  # the closing time is inside


def test_a_reminder_that_would_wait_past_the_start_goes_at_the_end_of_the_last_window():
    start = paris(24, 8)  # 2h before: due 06:00; the window opens at 09:00, after the start
    assert decide(paris(24, 6), DAY, PARIS, now=paris(23, 10), deadline=start) == Send(at=paris(23, 21), how=EARLY)


def test_a_reminder_with_no_window_left_before_the_start_is_skipped():
    start = paris(24, 8)
    decision = decide(paris(24, 6), DAY, PARIS, now=paris(23, 23), deadline=start)  # booked after 21:00
    assert isinstance(decision, Skip)
    assert decision.reason == ("outside its send window 09:00–21:00 (Europe/Paris): due 2026-11-24 06:00 CET, the "
                               "window opens at 2026-11-24 09:00 CET, after the appointment starts at 2026-11-24 "
                               "08:00 CET, and last closed at 2026-11-23 21:00 CET, before it could be sent")


def test_a_reminder_whose_next_opening_is_before_the_start_just_waits():
    assert decide(paris(24, 4), DAY, PARIS, now=paris(24, 4), deadline=paris(24, 10)).at == paris(24, 9)


def test_a_message_meant_for_the_window_may_leave_a_little_late_but_not_much():
    closing = paris(23, 21)
    assert decide(closing, DAY, PARIS, now=closing + dt.timedelta(seconds=3)).at == closing
    assert decide(closing, DAY, PARIS, now=closing + ALLOWANCE).at == closing
    assert decide(closing, DAY, PARIS, now=closing + ALLOWANCE + dt.timedelta(seconds=1)).at == paris(24, 9)


def test_an_early_reminder_fired_a_moment_after_the_close_still_goes():
    start, closing = paris(24, 8), paris(23, 21)
    late = closing + dt.timedelta(milliseconds=20)
    assert decide(paris(24, 6), DAY, PARIS, now=late, deadline=start) == Send(at=closing, how=EARLY)
    # and the worker, seeing it due at the close, sends it
    assert decide(closing, DAY, PARIS, now=late + dt.timedelta(seconds=1), deadline=start).at == closing


def test_nothing_goes_after_the_start():
    decision = decide(paris(24, 7), DAY, PARIS, now=paris(24, 8, 30), deadline=paris(24, 8))
    assert isinstance(decision, Skip) and "the appointment started at 2026-11-24 08:00 CET" in decision.reason


def test_a_window_may_span_midnight():
    assert decide(paris(23, 23), NIGHT, PARIS, now=paris(23, 9)).at == paris(23, 23)
    assert decide(paris(24, 5), NIGHT, PARIS, now=paris(23, 9)).at == paris(24, 5)
    assert decide(paris(24, 12), NIGHT, PARIS, now=paris(23, 9)).at == paris(24, 22)


def test_the_window_follows_the_local_clock_across_daylight_saving():
    # Paris moves to summer time on 29 March 2026 at 02:00: 09:00 is then 07:00 UTC, not 08:00
    opening = decide(paris(29, 4, month=3), DAY, PARIS, now=paris(29, 4, month=3)).at
    assert opening == dt.datetime(2026, 3, 29, 7, tzinfo=dt.timezone.utc)
    early = decide(paris(29, 3, month=3), DAY, PARIS, now=paris(28, 12, month=3), deadline=paris(29, 5, month=3))
    assert early.at == dt.datetime(2026, 3, 28, 20, tzinfo=dt.timezone.utc)  # 21:00 winter time


def test_an_opening_in_the_skipped_hour_is_the_first_moment_after_it():
    window = Window(opens=dt.time(2, 30), closes=dt.time(5))
    opening = decide(paris(29, 1, month=3), window, PARIS, now=paris(29, 1, month=3)).at
    assert opening == dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.timezone.utc)  # 03:30 summer time


@pytest.mark.parametrize("value, expected", [
    ({"from": "09:00", "to": "21:00"}, DAY), ("09:00-21:00", DAY), (" 9:00 – 21:00 ", DAY),
    ("22:00-06:00", NIGHT), ("", None), ("none", None), (False, None), (None, None),
])
def test_windows_are_written_as_a_mapping_or_text(value, expected):
    assert parse_window(value) == expected


@pytest.mark.parametrize("value, message", [
    ({"from": "9h", "to": "21:00"}, "expected a time of day as HH:MM"),
    ({"from": "09:00"}, "expected a mapping with 'from' and 'to'"),
    ({"from": "09:00", "to": "21:00", "zone": "UTC"}, "expected a mapping with 'from' and 'to'"),
    ("09:00-09:00", "is empty"), ("24:00-06:00", "expected a time of day"), (9, "expected {from"),
])
def test_a_wrong_window_says_what_is_expected(value, message):
    with pytest.raises(WindowError, match=message):
        parse_window(value)


def email_with(**fields) -> dict:
    return {"name": "w", "trigger": {"type": "appointment_created"},
            "actions": [{"type": "email", "to": ["customer"], "subject": "Hi", "body": "Hello", **fields}]}


@pytest.mark.parametrize("written, stored", [
    ({"from": "9:00", "to": "21:00"}, {"from": "09:00", "to": "21:00"}),
    ("22:00-06:00", {"from": "22:00", "to": "06:00"}),
    (False, False), ("none", False),
])
def test_any_action_takes_a_send_window_and_export_writes_it_back(written, stored):
    parsed = parse_workflow(email_with(send_window=written))
    assert parsed.actions[0].fields["send_window"] == stored
    assert to_document(parsed)["actions"][0]["send_window"] == stored
    assert parse_workflow(to_document(parsed)) == parsed


def test_a_wrong_send_window_is_refused_with_its_place():
    with pytest.raises(InvalidWorkflow) as caught:
        parse_workflow(email_with(send_window={"from": "9h", "to": "21:00"}))
    assert [str(p) for p in caught.value.problems] == [
        "actions[0].send_window: expected a time of day as HH:MM (24-hour, e.g. \"09:00\"), got '9h'"]


def test_the_default_send_window_is_configured_as_text():
    assert load_config(None, environ={}).get("workflows", "send_window") is None
    config = load_config(None, environ={"APPTFLOW_WORKFLOWS_SEND_WINDOW": "09:00-21:00"})
    assert config.get("workflows", "send_window") == DAY
    assert config.shown("workflows", "send_window") == "09:00-21:00"
    with pytest.raises(ConfigError, match=r"APPTFLOW_WORKFLOWS_SEND_WINDOW: \[workflows\] send_window: expected a "
                                          r"window such as \"09:00-21:00\", or none"):
        load_config(None, environ={"APPTFLOW_WORKFLOWS_SEND_WINDOW": "9 to 5"})
