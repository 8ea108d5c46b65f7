"""``customer_created``: a new customer row appears. Its workflows have no appointment."""

from __future__ import annotations

from db.codes import Operation
from engine.triggers.base import CUSTOMERS, TriggerType, register


@register
class CustomerCreated(TriggerType):
    name = "customer_created"
    subject = CUSTOMERS

    def fired(self, event):
        return {} if event.table_name == CUSTOMERS and event.op == Operation.INSERT else None
