"""``appointment_created``: a new appointment row appears."""

from __future__ import annotations

from db.codes import Operation
from engine.triggers.base import APPOINTMENTS, TriggerType, register


@register
class AppointmentCreated(TriggerType):
    name = "appointment_created"

    def fired(self, event):
        return {} if event.table_name == APPOINTMENTS and event.op == Operation.INSERT else None
