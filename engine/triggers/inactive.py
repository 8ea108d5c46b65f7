"""``customer_inactive`` (recall): ``after`` a duration since the end of the customer's last visit, when
nothing is booked.

The last visit is their latest appointment in ``statuses`` (default
``completed`` and ``approved``); a future appointment (one not canceled or
rejected) holds the firing back, and a new visit re-arms it: it fires once per
lapse. ``time`` moves the firing to that hour of the day in the customer's zone.
"""

from __future__ import annotations

from engine import keywords
from engine.triggers.base import CUSTOMERS, RECURRING, Param, TriggerType, register
from engine.triggers.birthday import check_time

DEFAULT_STATUSES = ("completed", "approved")
# Appointments in these statuses are not a booking ahead (they will not happen).
NOT_HAPPENING = ("canceled", "rejected")


@register
class CustomerInactive(TriggerType):
    name = "customer_inactive"
    params = {"after": Param(form="duration", required=True, positive=True, example="180d"),
              "statuses": Param(form="words"),
              "time": Param(form="text", example='"10:00"'),
              "grace": Param(form="duration", positive=True)}
    keywords = keywords.RECALL
    subject = CUSTOMERS
    planning = RECURRING

    def check(self, check, params):
        check_time(check, params)
