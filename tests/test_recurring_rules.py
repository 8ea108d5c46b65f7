"""When the recurring triggers fire: pure rules, time passed in."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from engine.recurring import (
    birthday_days, lapse_at, next_birthday, next_cron, parse_job_id, parse_time_of_day, parse_window)

UTC = dt.timezone.utc
PARIS = ZoneInfo("Europe/Paris")


def test_a_cron_occurrence_is_at_second_zero_in_its_zone_and_strictly_after():
    assert next_cron("* * * * *", PARIS, dt.datetime(2026, 11, 23, 9, 0, 0, tzinfo=UTC)) == \
        dt.datetime(2026, 11, 23, 9, 1, tzinfo=UTC)
    assert next_cron("0 18 * * *", PARIS, dt.datetime(2026, 11, 23, 9, 0, 30, tzinfo=UTC)) == \
        dt.datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    assert next_cron("0 18 * * *", PARIS, dt.datetime(2026, 7, 1, 12, 0, tzinfo=UTC)) == \
        dt.datetime(2026, 7, 1, 16, 0, tzinfo=UTC)  # summer time


def test_windows_count_from_the_occurrence_or_from_a_local_midnight():
    fired = dt.datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # 18:00 in Paris
    assert parse_window("12h").bounds(fired, PARIS) == (fired, fired + dt.timedelta(hours=12))
    assert parse_window("1d from tomorrow").bounds(fired, PARIS) == (
        dt.datetime(2026, 11, 23, 23, 0, tzinfo=UTC), dt.datetime(2026, 11, 24, 23, 0, tzinfo=UTC))
    # a calendar day across the change to summer time is 23 hours long
    start, end = parse_window("1d from today").bounds(dt.datetime(2026, 3, 29, 8, 0, tzinfo=UTC), PARIS)
    assert end - start == dt.timedelta(hours=23)
    for wrong in ("0h", "1d from yesterday", "soon"):
        with pytest.raises(ValueError):
            parse_window(wrong)


def test_a_29_february_birthday_is_kept_on_28_february_in_other_years():
    at = parse_time_of_day("09:00")
    day, moment = next_birthday(dt.date(2000, 2, 29), at, PARIS, dt.datetime(2027, 1, 1, tzinfo=UTC))
    assert (day, moment) == (dt.date(2027, 2, 28), dt.datetime(2027, 2, 28, 8, 0, tzinfo=UTC))
    assert next_birthday(dt.date(2000, 2, 29), at, PARIS, dt.datetime(2028, 1, 1, tzinfo=UTC))[0] == \
        dt.date(2028, 2, 29)
    assert (2, 29) in birthday_days(dt.datetime(2027, 2, 28, 8, tzinfo=UTC), dt.datetime(2027, 2, 28, 9, tzinfo=UTC))
    assert (2, 29) not in birthday_days(dt.datetime(2028, 2, 28, 8, tzinfo=UTC),
                                        dt.datetime(2028, 2, 28, 9, tzinfo=UTC))


def test_a_lapse_waits_for_the_time_of_day_in_the_customers_zone():
    ended = dt.datetime(2026, 5, 1, 16, 0, tzinfo=UTC)  # 18:00 in Paris
    assert lapse_at(ended, dt.timedelta(days=180), None, PARIS) == ended + dt.timedelta(days=180)
    assert lapse_at(ended, dt.timedelta(days=180), parse_time_of_day("10:00"), PARIS) == \
        dt.datetime(2026, 10, 29, 9, 0, tzinfo=UTC)  # the next 10:00 in Paris, in winter time


def test_job_ids_name_the_workflow_and_the_target():
    assert parse_job_id("sched:3:staff:7")[2].kind == "staff"
    assert parse_job_id("bday:3:cust:7")[:2] == ("bday", 3)
    assert parse_job_id("wf:3:appt:7") is None and parse_job_id("sched:x:staff:7") is None
