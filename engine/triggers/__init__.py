"""Triggers: one module each, looked up by name (see :mod:`engine.triggers.base`)."""

from engine.triggers.base import (
    AGENDAS,
    APPOINTMENTS,
    CUSTOMERS,
    OFFSET,
    RECURRING,
    Param,
    TriggerType,
    all_types,
    names,
    param_names,
    register,
    trigger_type,
    unregister,
)

# The built-in triggers, registered in the order the documentation lists them.
from engine.triggers import created, rescheduled, status_changed, customer_created, offsets  # noqa: E402, F401, I001
from engine.triggers import schedule, birthday, inactive  # noqa: E402, F401, I001
from engine.triggers import replied, undelivered  # noqa: E402, F401, I001

__all__ = ["AGENDAS", "APPOINTMENTS", "CUSTOMERS", "OFFSET", "RECURRING", "Param", "TriggerType", "all_types", "names",
           "param_names", "register", "trigger_type", "unregister"]
