"""When the recurring triggers fire (``schedule``, ``customer_birthday``, ``customer_inactive``): pure
functions, ``now`` passed in.

Each (workflow, target) has at most one job: a staff member's, a location's or
the company's next cron occurrence, a customer's next birthday, a customer's
lapse since their last visit. Its id names the workflow and the target; the
occurrence (the cron time, the birthday's date, the end of the last visit)
goes into the deliveries' idempotency key, so a restart or a second instance
never sends one occurrence twice.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from engine.durations import parse_duration

UTC = dt.timezone.utc

# Job ids: sched:{workflow}:{staff|location|company}:{id}, bday:{workflow}:cust:{id}, recall:{workflow}:cust:{id}.
SCHEDULE, BIRTHDAY, RECALL = "sched", "bday", "recall"
PREFIXES = (SCHEDULE, BIRTHDAY, RECALL)
TARGETS = ("staff", "location", "company", "cust")
# The deliveries' subject table of each kind of target.
SUBJECT_TABLES = {"staff": "staff", "location": "locations", "company": "company", "cust": "customers"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Who a recurring job fires for: a staff member, a location, the company (id 0) or a customer."""

    kind: str  # staff | location | company | cust
    id: int

    @property
    def subject_table(self) -> str:
        return SUBJECT_TABLES[self.kind]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecurringFiring:
    """A recurring job to have: run at ``run_at`` for the occurrence planned at ``planned_at``."""

    prefix: str
    workflow_id: int
    target: Target
    planned_at: dt.datetime
    run_at: dt.datetime
    grace: dt.timedelta
    occurrence: str

    @property
    def job_id(self) -> str:
        return job_id(self.prefix, self.workflow_id, self.target)


def job_id(prefix: str, workflow_id: int, target: Target) -> str:
    return f"{prefix}:{workflow_id}:{target.kind}:{target.id}"


def parse_job_id(value: str) -> tuple[str, int, Target] | None:
    """(prefix, workflow id, target) of a recurring job's id, else None (an offset job, a stranger)."""
    parts = value.split(":")
    if len(parts) != 4 or parts[0] not in PREFIXES or parts[2] not in TARGETS:
        return None
    if not (parts[1].isdigit() and parts[3].isdigit()):
        return None
    return parts[0], int(parts[1]), Target(kind=parts[2], id=int(parts[3]))


def decide(firing_at: dt.datetime, now: dt.datetime, grace: dt.timedelta) -> dt.datetime | None:
    """When to run an occurrence planned at *firing_at*: then, now (late, within grace), or never (None)."""
    if firing_at >= now:
        return firing_at
    return now if now - firing_at <= grace else None


# --- times of day, in a zone -------------------------------------------------------------------------

_TIME_OF_DAY = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_time_of_day(text: object) -> dt.time:
    """``"09:00"`` → 09:00; ValueError saying what is accepted."""
    match = _TIME_OF_DAY.match(str(text).strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a time of day: write HH:MM on a 24-hour clock, e.g. \"09:00\"")
    return dt.time(int(match.group(1)), int(match.group(2)))


def local_moment(day: dt.date, at: dt.time, zone: ZoneInfo) -> dt.datetime:
    """*at* on *day* in *zone*, in UTC (a time skipped by daylight saving is read with the offset before)."""
    return dt.datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


# --- customer_birthday ---------------------------------------------------------------------------------

def birthday_in(birthday: dt.date, year: int) -> dt.date:
    """The day a birthday is kept in *year*: 29 February is kept on 28 February in other years."""
    if birthday.month == 2 and birthday.day == 29:
        try:
            return dt.date(year, 2, 29)
        except ValueError:
            return dt.date(year, 2, 28)
    return birthday.replace(year=year)


def next_birthday(birthday: dt.date, at: dt.time, zone: ZoneInfo, since: dt.datetime) -> tuple[dt.date, dt.datetime]:
    """The first birthday firing at or after *since*: (the day kept, the moment in UTC)."""
    year = since.astimezone(zone).year - 1
    while True:
        day = birthday_in(birthday, year)
        moment = local_moment(day, at, zone)
        if moment >= since:
            return day, moment
        year += 1


def birthday_days(start: dt.datetime, end: dt.datetime) -> set[tuple[int, int]]:
    """The (month, day) of every birthday whose firing, at any time of day in any zone, can fall within
    [*start*, *end*]: the calendar days from 14 hours before to 12 hours after, with 29 February beside
    28 February in years without it."""
    days, day = set(), (start - dt.timedelta(hours=14)).date()
    while day <= (end + dt.timedelta(hours=12)).date():
        days.add((day.month, day.day))
        if (day.month, day.day) == (2, 28) and birthday_in(dt.date(2000, 2, 29), day.year) == day:
            days.add((2, 29))
        day += dt.timedelta(days=1)
    return days


# --- customer_inactive ---------------------------------------------------------------------------------

def lapse_at(last_end: dt.datetime, after: dt.timedelta, at: dt.time | None, zone: ZoneInfo) -> dt.datetime:
    """When a customer whose last visit ended at *last_end* has been away *after*: then, or at the first
    *at* of the day in their zone from then on."""
    due = last_end + after
    if at is None:
        return due
    day = due.astimezone(zone).date()
    moment = local_moment(day, at, zone)
    return moment if moment >= due else local_moment(day + dt.timedelta(days=1), at, zone)


def lapse_ends(now_from: dt.datetime, now_to: dt.datetime, after: dt.timedelta, timed: bool) -> tuple[dt.datetime, dt.datetime]:
    """The ends of last visits whose lapse can fall within [*now_from*, *now_to*] (a day earlier when
    the firing waits for a time of day)."""
    return now_from - after - (dt.timedelta(days=1, hours=1) if timed else dt.timedelta(0)), now_to - after


# --- schedule ------------------------------------------------------------------------------------------

def cron(expression: str, zone: ZoneInfo) -> CronTrigger:
    """A five-field crontab expression in *zone*; ValueError when it is not one."""
    if len(str(expression).split()) != 5:
        raise ValueError(f"{expression!r} is not a cron expression of five fields (minute hour day month "
                         "weekday), e.g. \"0 18 * * *\"")
    return CronTrigger.from_crontab(expression, timezone=zone)


def next_cron(expression: str, zone: ZoneInfo, after: dt.datetime) -> dt.datetime | None:
    """The first occurrence strictly after *after*, in UTC (None if it never comes again)."""
    found = cron(expression, zone).get_next_fire_time(None, after + dt.timedelta(microseconds=1))
    return found.astimezone(UTC) if found is not None else None


WINDOW_ANCHORS = ("now", "today", "tomorrow")
_WINDOW = re.compile(r"^\s*(\S+)(?:\s+from\s+(\w+))?\s*$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """Which appointments a schedule lists: those starting within ``length`` from ``anchor``."""

    length: dt.timedelta
    anchor: str = "now"  # now (the occurrence) | today | tomorrow (local midnight, in the schedule's zone)

    def bounds(self, fired: dt.datetime, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
        """[start, end) for the occurrence at *fired*; from a midnight, days are calendar days."""
        if self.anchor == "now":
            return fired, fired + self.length
        day = fired.astimezone(zone).date() + dt.timedelta(days=1 if self.anchor == "tomorrow" else 0)
        start = dt.datetime.combine(day, dt.time(0))
        return (start.replace(tzinfo=zone).astimezone(UTC),
                (start + self.length).replace(tzinfo=zone).astimezone(UTC))


DEFAULT_WINDOW = Window(length=dt.timedelta(days=1))


def parse_window(text: object) -> Window:
    """``12h`` (from the occurrence), ``1d from tomorrow``, ``2d from today``; ValueError otherwise."""
    match = _WINDOW.match(text) if isinstance(text, str) else None
    if isinstance(text, int) and not isinstance(text, bool):
        match = _WINDOW.match(str(text))
    if match is None or (match.group(2) or "now") not in WINDOW_ANCHORS:
        raise ValueError(f"{text!r} is not a window: write a duration, optionally followed by 'from now', "
                         "'from today' or 'from tomorrow' (e.g. \"12h\", \"1d from tomorrow\")")
    length = parse_duration(match.group(1))
    if length <= dt.timedelta(0):
        raise ValueError(f"{text!r}: a window's length must be positive")
    return Window(length=length, anchor=match.group(2) or "now")
