"""Action types: one module each, looked up by name (see :mod:`engine.actions.base`)."""

from engine.actions.base import (
    HOLD,
    RESEND,
    ActionType,
    FieldSpec,
    UrlGuard,
    action_type,
    names,
    register,
    replied_via,
    to_persons,
    unregister,
)

# The built-in types, registered in the order the documentation lists them.
from engine.actions import email, sms, whatsapp, telegram, set_status, webhook  # noqa: E402, F401, I001

__all__ = ["HOLD", "RESEND", "ActionType", "FieldSpec", "UrlGuard", "action_type", "names", "register",
           "replied_via", "to_persons", "unregister"]
