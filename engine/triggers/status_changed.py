"""``appointment_status_changed``: the status changes; ``from`` and ``to`` narrow which transitions count."""

from __future__ import annotations

from db.codes import Operation
from engine import keywords
from engine.triggers.base import APPOINTMENTS, Param, TriggerType, register


@register
class StatusChanged(TriggerType):
    name = "appointment_status_changed"
    params = {"from": Param(form="words"), "to": Param(form="words")}
    keywords = keywords.STATUS_CHANGE

    def fired(self, event):
        if event.table_name != APPOINTMENTS or event.op != Operation.UPDATE:
            return None
        old, new = event.old.get("status"), event.new.get("status")
        return None if old == new else {"old_status": old, "new_status": new}

    def admits(self, trigger, context):
        wanted_from, wanted_to = trigger.params.get("from"), trigger.params.get("to")
        return (wanted_from is None or context["old_status"] in wanted_from) and (
            wanted_to is None or context["new_status"] in wanted_to)

    def sample(self, trigger, booking):
        status = booking.appointment.status if booking.appointment else None
        return {"old_status": (trigger.params.get("from") or (status,))[0],
                "new_status": (trigger.params.get("to") or (status,))[0]}
