"""``appointment_starts`` and ``appointment_ends``: at the appointment's start or end plus ``offset``.

Each (workflow, appointment) is one job in the jobstore, planned by
:mod:`engine.planning` and moved when the appointment is; ``grace`` says how
late a firing missed while the daemon was down may still run.
"""

from __future__ import annotations

import datetime as dt

from engine import keywords
from engine.durations import format_duration
from engine.triggers.base import OFFSET, Param, TriggerType, register

DEFAULT_GRACE = dt.timedelta(hours=1)


class _Offset(TriggerType):
    params = {"offset": Param(form="duration", required=True, example="-30m, 0, 2h"),
              "grace": Param(form="duration", positive=True)}
    keywords = keywords.TIME_OFFSET
    planning = OFFSET
    what: str  # the anchor, in words

    def sample(self, trigger, booking):
        if booking.appointment is None:
            return {}
        offset = trigger.params["offset"]
        return {"fire_time": (self.anchor(booking) + offset).isoformat(), "offset": format_duration(offset)}


@register
class AppointmentStarts(_Offset):
    name = "appointment_starts"
    anchor_column = "starts_at"
    what = "start"


@register
class AppointmentEnds(_Offset):
    name = "appointment_ends"
    anchor_column = "ends_at"
    what = "end"
