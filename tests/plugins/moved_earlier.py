"""A throwaway trigger, written as the architecture's recipe says (docs/architecture.md):
``appointment_moved_earlier`` fires when an appointment's start moves earlier by at least ``at_least``,
and its templates get ``earlier_by`` (minutes).

Test code only; :func:`install` registers it and :func:`uninstall` forgets it.
"""

from __future__ import annotations

import datetime as dt

from db.types import parse_timestamp
from engine import triggers
from engine.triggers import APPOINTMENTS, Param, TriggerType


def _moment(value) -> dt.datetime | None:
    return parse_timestamp(value) if isinstance(value, str) else value


class MovedEarlier(TriggerType):
    name = "appointment_moved_earlier"
    params = {"at_least": Param(form="duration", positive=True)}
    keywords = frozenset({"earlier_by"})

    def check(self, check, params):
        if params.get("at_least") is not None and params["at_least"] > dt.timedelta(days=7):
            check.add("trigger.at_least", "at most 7d: a week earlier is a new booking")

    def fired(self, event):
        if event.table_name != APPOINTMENTS or event.op != "UPDATE":
            return None
        before, after = _moment(event.old.get("starts_at")), _moment(event.new.get("starts_at"))
        if before is None or after is None or after >= before:
            return None
        return {"earlier_by": int((before - after).total_seconds() // 60)}

    def admits(self, trigger, context):
        at_least = trigger.params.get("at_least")
        return at_least is None or context["earlier_by"] * 60 >= at_least.total_seconds()

    def sample(self, trigger, booking):
        return {"earlier_by": 60}


def install() -> None:
    triggers.register(MovedEarlier)


def uninstall() -> None:
    triggers.unregister(MovedEarlier.name)
