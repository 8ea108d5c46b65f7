"""Quiet hours for deliveries: which send window an action has, in whose time zone, and when it goes out.

An action's ``send_window`` (or ``false`` for none) wins; without one, the
configured default (``[workflows] send_window``) applies to the actions that
write to people (those with a recipient field), not to webhooks nor
``set_status`` unless they say so.

The zone is the recipient's: the customer's ``timezone``, else the
location's. Staff and literal addresses (the business's own: an admin's
address, the front desk's number) are on the location's clock; templates read
the booking (a parent's phone) and are on the customer's. A delivery with
several recipients (an email) takes the customer's clock when ``customer`` or
a template is among its ``to``, else the location's. UTC when there is no zone.

A firing planned before its appointment's start (a reminder) has the start as
its deadline: see :mod:`engine.windows`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from db.records import Booking
from engine.actions import action_type
from engine.render import recipient_count
from engine.templates import is_template, zone
from engine.windows import DEFERRED, Send, Skip, Window, decide, local, parse_window, send_time
from engine.workflow import Action, Workflow

# In a delivery's context: how the send window moved it ({"due", "at", "how", "window", "zone"}).
# Not a keyword (templates cannot read names starting with "_").
DEFERRAL = "_send_window"
FIELD = "send_window"
# In a delivery's context: the planned time of a time-based firing (also the fire_time keyword).
FIRE_TIME = "fire_time"


def window_of(action: Action, default: Window | None) -> Window | None:
    """The action's own window, none if it says ``false``, else the default where it writes to people."""
    own = action.fields.get(FIELD)
    if own is False:
        return None
    if own:
        return parse_window(own)
    return default if _writes_to_people(action) else None


def _writes_to_people(action: Action) -> bool:
    return any(spec.form == "recipients" for spec in action_type(action.type).fields.values())


def _entries(action: Action, recipient: int | None) -> list[str] | None:
    """The recipient entries whose clock counts: the delivery's own entry, or the first recipient field's."""
    kind = action_type(action.type)
    if kind.per_recipient and recipient is not None:
        return [action.fields[kind.per_recipient][recipient]]
    field = next((name for name, spec in kind.fields.items() if spec.form == "recipients"), None)
    return list(action.fields.get(field) or ()) if field else None


def zone_of(action: Action, booking: Booking, recipient: int | None) -> ZoneInfo:
    """The recipient's time zone (see the module's docstring)."""
    place = booking.location.timezone if booking.location else None
    person = (booking.customer.timezone if booking.customer else None) or place
    entries = _entries(action, recipient)
    if entries is None or any(e == "customer" or is_template(e) for e in entries):
        return zone(person)
    return zone(place)


def deadline_of(booking: Booking, context: dict[str, Any]) -> dt.datetime | None:
    """The appointment's start, for a firing planned before it (a reminder); else None."""
    planned = context.get(FIRE_TIME)
    if not planned or booking.appointment is None:
        return None
    start = booking.appointment.starts_at
    return start if dt.datetime.fromisoformat(str(planned)) < start else None


def schedule(action: Action, booking: Booking | None, recipient: int | None, *, due: dt.datetime,
             now: dt.datetime, default: Window | None, context: dict[str, Any]) -> Send | Skip | None:
    """When a delivery due at *due* goes out, looked at *now*; None when it has no window."""
    window = window_of(action, default) if booking is not None else None
    if window is None:
        return None
    return decide(due, window, zone_of(action, booking, recipient), now=now, deadline=deadline_of(booking, context))


def first_send(workflow: Workflow, booking: Booking, planned: dt.datetime, default: Window | None) -> dt.datetime:
    """When a firing planned at *planned* is meant to run: the soonest moment one of its deliveries is
    meant to go out (its windows may send a reminder early or make it wait); *planned* without windows."""
    times = []
    context = {FIRE_TIME: planned.isoformat()}
    for action, recipient in deliveries_of(workflow):
        window = window_of(action, default)
        if window is None:
            times.append(planned)
        else:
            times.append(send_time(planned, window, zone_of(action, booking, recipient),
                                   deadline_of(booking, context)).at)
    return min(times, default=planned)


def deliveries_of(workflow: Workflow) -> list[tuple[Action, int | None]]:
    """(action, recipient entry) of every delivery one occurrence of *workflow* writes."""
    pairs: list[tuple[Action, int | None]] = []
    for action in workflow.actions:
        count = recipient_count(action)
        pairs += [(action, r) for r in (range(count) if count is not None else (None,))]
    return pairs


def deferral(due: dt.datetime, send: Send, action: Action, booking: Booking, recipient: int | None,
             default: Window | None) -> dict[str, str]:
    """What a delivery's context keeps of a window that moved it (DEFERRAL)."""
    place = zone_of(action, booking, recipient)
    return {"due": due.isoformat(), "at": send.at.isoformat(), "how": send.how,
            "window": str(window_of(action, default)), "zone": place.key}


def waiting_note(record: dict[str, str]) -> str:
    """The history's note on a delivery waiting for its window to open."""
    place = zone(record["zone"])
    return (f"waiting for its send window {record['window']} ({record['zone']}): due "
            f"{local(dt.datetime.fromisoformat(record['due']), place)}, sent at "
            f"{local(dt.datetime.fromisoformat(record['at']), place)}")


def waiting(context: dict[str, Any], next_attempt_at: dt.datetime) -> dict[str, str] | None:
    """The deferral a pending delivery still waits for (its next attempt is the window's opening), if any."""
    record = context.get(DEFERRAL)
    if not isinstance(record, dict) or record.get("how") != DEFERRED:
        return None
    return record if dt.datetime.fromisoformat(record["at"]) == next_attempt_at else None
