"""Send windows (quiet hours): when a message due at some moment may go out, on a local clock.

Pure arithmetic on aware datetimes, ``now`` passed in. A window is a daily
span of local time, ``from`` to ``to`` (both included, to the second); ``from``
after ``to`` spans midnight (``22:00``–``06:00``). Times are compared on the
wall clock of the recipient's zone, so a window stays 09:00–21:00 across a
daylight-saving change; an opening that falls in a skipped hour is the first
moment after it.

A message due inside its window goes out when due. One due outside waits for
the next opening; but one with a *deadline* (a reminder before an appointment,
which must not arrive after it starts) whose next opening is not before the
deadline goes out at the end of the last window before its due time instead,
and is skipped when that moment has passed.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc
# How long after its window closed a message meant for inside it may still leave: the workers may be
# a little behind (a burst of reminders at one closing time, a slow channel). Beyond it, it waits again.
ALLOWANCE = dt.timedelta(minutes=5)

ON_TIME, DEFERRED, EARLY = "on time", "deferred", "early"
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_TEXT = re.compile(r"^\s*(\S+)\s*[-–]\s*(\S+)\s*$")


class WindowError(ValueError):
    """Not a send window."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """A daily span of local time; ``opens`` after ``closes`` spans midnight."""

    opens: dt.time
    closes: dt.time

    def __post_init__(self):
        if self.opens == self.closes:
            raise WindowError(f"a send window from {self.opens:%H:%M} to the same time is empty")

    def __str__(self) -> str:
        return f"{self.opens:%H:%M}–{self.closes:%H:%M}"

    def as_document(self) -> dict[str, str]:
        return {"from": f"{self.opens:%H:%M}", "to": f"{self.closes:%H:%M}"}

    def contains(self, moment: dt.datetime, zone: ZoneInfo) -> bool:
        """Whether *moment* is inside the window on *zone*'s wall clock."""
        local = moment.astimezone(zone).time().replace(tzinfo=None)
        if self.opens < self.closes:
            return self.opens <= local <= self.closes
        return local >= self.opens or local <= self.closes

    def open_late(self, moment: dt.datetime, zone: ZoneInfo) -> bool:
        """Inside the window, or closed no longer than ALLOWANCE before *moment*."""
        return self.contains(moment, zone) or self.contains(moment - ALLOWANCE, zone)

    def opening_after(self, moment: dt.datetime, zone: ZoneInfo) -> dt.datetime:
        """The first opening after *moment*."""
        return min(t for t in self._instants(moment, zone, self.opens, fold=0) if t > moment)

    def close_before(self, moment: dt.datetime, zone: ZoneInfo) -> dt.datetime:
        """The last closing time before *moment* (the later one when the clock goes back over it)."""
        return max(t for t in self._instants(moment, zone, self.closes, fold=1) if t < moment)

    @staticmethod
    def _instants(moment: dt.datetime, zone: ZoneInfo, clock: dt.time, fold: int) -> list[dt.datetime]:
        """*clock* on the local days around *moment*, in UTC."""
        day = moment.astimezone(zone).date()
        return [dt.datetime.combine(day + dt.timedelta(days=n), clock, tzinfo=zone).replace(fold=fold)
                .astimezone(UTC) for n in (-2, -1, 0, 1, 2)]


def parse_clock(value: Any) -> dt.time:
    """``HH:MM`` (24-hour) as a time."""
    match = _CLOCK.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise WindowError(f"expected a time of day as HH:MM (24-hour, e.g. \"09:00\"), got {value!r}")
    return dt.time(int(match.group(1)), int(match.group(2)))


def parse_window(value: Any) -> Window | None:
    """A window from ``{from: "09:00", to: "21:00"}`` or ``"09:00-21:00"``; None for no window (``""``,
    ``none``, ``false``). WindowError says what is wrong otherwise."""
    if value is False or value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    if isinstance(value, str):
        match = _TEXT.match(value)
        if not match:
            raise WindowError(f"expected a window such as \"09:00-21:00\", or none; got {value!r}")
        return Window(opens=parse_clock(match.group(1)), closes=parse_clock(match.group(2)))
    if isinstance(value, Mapping):
        unknown = sorted(str(k) for k in value if k not in ("from", "to"))
        if unknown or "from" not in value or "to" not in value:
            raise WindowError(f"expected a mapping with 'from' and 'to' (HH:MM), got {dict(value)!r}")
        return Window(opens=parse_clock(value["from"]), closes=parse_clock(value["to"]))
    raise WindowError(f"expected {{from: \"09:00\", to: \"21:00\"}}, or false; got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """Send at ``at`` (a moment already past means now: it was meant for then); ``how`` says why then."""

    at: dt.datetime
    how: str = ON_TIME


@dataclass(frozen=True, slots=True, kw_only=True)
class Skip:
    """No moment inside the window before the deadline is left."""

    reason: str


def send_time(due: dt.datetime, window: Window, zone: ZoneInfo,
              deadline: dt.datetime | None = None) -> Send:
    """When a message due at *due* is meant to go out, whatever the time now: when due (inside the
    window), at the next opening, or, when that is not before *deadline*, at the last close before *due*."""
    if window.contains(due, zone):
        return Send(at=due)
    opening = window.opening_after(due, zone)
    if deadline is None or opening < deadline:
        return Send(at=opening, how=DEFERRED)
    return Send(at=window.close_before(due, zone), how=EARLY)


def decide(due: dt.datetime, window: Window, zone: ZoneInfo, *, now: dt.datetime,
           deadline: dt.datetime | None = None) -> Send | Skip:
    """When a message due at *due* goes out, looked at *now*; or why it never can.

    Its moment (:func:`send_time`) if still ahead. If passed, it goes now while the window is open (or
    closed less than ALLOWANCE ago) and the deadline is ahead; else it waits for the next opening, unless
    that is not before the deadline: then it is skipped.
    """
    meant = send_time(due, window, zone, deadline)
    if meant.at >= now:
        return meant
    if deadline is not None and now >= deadline:
        return Skip(reason=f"outside its send window {window} ({zone.key}): the appointment started at "
                           f"{local(deadline, zone)} before it could be sent")
    if window.open_late(now, zone):
        return meant
    opening = window.opening_after(now, zone)
    if deadline is None or opening < deadline:
        return Send(at=opening, how=DEFERRED)
    return Skip(reason=f"outside its send window {window} ({zone.key}): due {local(due, zone)}, the window "
                       f"opens at {local(opening, zone)}, after the appointment starts at {local(deadline, zone)}, "
                       f"and last closed at {local(window.close_before(now, zone), zone)}, before it could be sent")


def local(moment: dt.datetime, zone: ZoneInfo) -> str:
    """*moment* on *zone*'s clock, for messages: ``2026-11-24 09:00 CET``."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
