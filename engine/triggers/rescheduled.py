"""``appointment_rescheduled``: the time, staff, location or service changes (as in Booknetic).

``on`` narrows which of those count; the templates see the previous values
(``old_*`` keywords, whose names the consumer looks up).
"""

from __future__ import annotations

from typing import Any

from db.codes import Operation
from db.types import parse_timestamp
from engine import keywords
from engine.triggers.base import APPOINTMENTS, Param, TriggerType, register

# What "rescheduled" means, as in Booknetic, and the columns whose change makes each aspect.
ASPECT_COLUMNS = {"time": ("starts_at", "ends_at"), "staff": ("staff_id",), "location": ("location_id",),
                  "service": ("service_id",)}
ASPECTS = tuple(ASPECT_COLUMNS)


def _moment(value: Any):
    return parse_timestamp(value) if isinstance(value, str) else value


def changed_aspects(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What of a reschedule an update changed: time, staff, location, service (in that order)."""
    return [aspect for aspect, columns in ASPECT_COLUMNS.items()
            if any(_moment(old.get(c)) != _moment(new.get(c)) for c in columns)]


@register
class Rescheduled(TriggerType):
    name = "appointment_rescheduled"
    params = {"on": Param(form="subset", choices=ASPECTS)}
    keywords = keywords.RESCHEDULE

    def fired(self, event):
        if event.table_name != APPOINTMENTS or event.op != Operation.UPDATE:
            return None
        changed = changed_aspects(event.old, event.new)
        if not changed:
            return None
        old = event.old
        return {"rescheduled": changed, "old_starts_at": old.get("starts_at"), "old_ends_at": old.get("ends_at"),
                "old_staff_id": old.get("staff_id"), "old_location_id": old.get("location_id"),
                "old_service_id": old.get("service_id")}

    def admits(self, trigger, context):
        return bool(set(context["rescheduled"]) & set(trigger.params.get("on") or ASPECTS))

    def sample(self, trigger, booking):
        if booking.appointment is None:
            return {}
        a = booking.appointment
        return {"rescheduled": list(trigger.params.get("on") or ASPECTS), "old_starts_at": a.starts_at.isoformat(),
                "old_ends_at": a.ends_at.isoformat(), "old_staff_name": booking.staff.name if booking.staff else "",
                "old_location_name": booking.location.name if booking.location else "",
                "old_service_name": booking.service.name if booking.service else ""}
