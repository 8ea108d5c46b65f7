"""Render one delivery's action into a plain message: every template filled, every recipient resolved.

The result is plain data per action type (the ``rendered`` column, and what
the daemon turns into a channel message); each type renders itself (see
:mod:`engine.actions`). Anything wrong with the data — a missing custom field,
a customer without a phone number, an address that renders invalid — is a
RenderError, which makes that delivery dead.
"""

from __future__ import annotations

from typing import Any

from db.records import Booking
from engine.actions import action_type
from engine.errors import RenderError
from engine.recipients import resolve
from engine.templates import names_in
from engine.variants import in_locale, locale_for, summary
from engine.workflow import Action


def recipient_count(action: Action) -> int | None:
    """How many deliveries the action makes per occurrence (None: one, for all its recipients)."""
    field = action_type(action.type).per_recipient
    return len(action.fields[field]) if field else None


def keywords_used(action: Action) -> frozenset[str]:
    """Every name the action's templates read: the context need hold no other keyword."""
    names: set[str] = set()
    pending: list[Any] = list(action.fields.values())
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            names |= names_in(value)
        elif isinstance(value, dict):
            pending += value.values()
        elif isinstance(value, list):
            pending += value
    return frozenset(names)


def duplicate_entry(action: Action, booking: Booking, context: dict[str, Any], index: int) -> int | None:
    """The earlier recipient entry of a per-recipient action that gives the same recipient as
    entry *index* (its delivery is then skipped: one message per person), or None."""
    kind = action_type(action.type)
    spec = kind.fields[kind.per_recipient]
    entries = action.fields[kind.per_recipient]
    mine = resolve(entries[index], booking, context, spec.address)
    for earlier in range(index):
        try:
            if resolve(entries[earlier], booking, context, spec.address) == mine:
                return earlier
        except RenderError:
            continue  # that entry fails on its own delivery
    return None


def render_action(action: Action, booking: Booking, context: dict[str, Any],
                  recipient_index: int | None = None) -> dict[str, Any]:
    """The rendered message of *action* (for one recipient entry, on per-recipient types), its texts in
    the booking's variant; ``variants`` in it says which variant each text field took."""
    kind = action_type(action.type)
    fields, chosen = in_locale(action.fields, kind.field_specs(), locale_for(booking))
    rendered = kind.render(fields, booking, context, recipient_index)
    if chosen:
        rendered["variants"] = chosen
    return rendered


def describe_recipients(action_type_name: str, rendered: dict[str, Any]) -> str:
    """Who a rendered message goes to, for the history, with the variant its texts were written in."""
    described = action_type(action_type_name).describe(rendered)
    return f"{described} [{summary(rendered['variants'])}]" if rendered.get("variants") else described
