"""Render one delivery's action into a plain message: every template filled, every recipient resolved.

The result is a plain dict per action type (the ``rendered`` column, and what
the daemon turns into a channel message); anything wrong with the data —
a missing custom field, a customer without a phone number, an address that
renders invalid — is a RenderError, which makes that delivery dead.
"""

from __future__ import annotations

import json
from email.utils import parseaddr
from typing import Any

import phonenumbers
from babel.core import get_global

from db.records import Booking
from engine.errors import RenderError
from engine.templates import is_template, names_in, render
from engine.validation import is_email, is_phone
from engine.workflow import Action

# Channels that send one message per recipient: each entry of the list is its own delivery.
PER_RECIPIENT = {"sms": "to", "whatsapp": "to", "telegram": "chat_id"}

_PARTY_FIELD = {"email": "email", "phone": "phone", "chat": "telegram_chat_id"}
_WHAT = {"email": "email address", "phone": "phone number", "chat": "Telegram chat id"}


def recipient_count(action: Action) -> int | None:
    """How many deliveries the action makes per occurrence (None: one, for all its recipients)."""
    field = PER_RECIPIENT.get(action.type)
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


def _text(source: str | None, context: dict[str, Any]) -> str | None:
    return None if source is None else render(source, context)


def _party(entry: str, booking: Booking, kind: str) -> str:
    party = booking.customer if entry == "customer" else booking.staff
    value = getattr(party, _PARTY_FIELD[kind], None) if party else None
    if not value:
        raise RenderError(f"{entry} has no {_WHAT[kind]}")
    return str(value).strip()


def zone_country(name: str | None) -> str | None:
    """The country whose time zone *name* is, by CLDR's data: ``Europe/Paris`` is FR. None for a zone
    that is no single country's (``UTC``, ``Etc/GMT+2``, ``Antarctica/Troll``) or that is unknown."""
    if not name:
        return None
    canonical = get_global("zone_aliases").get(name, name)
    country = get_global("zone_territories").get(canonical)
    return country if country in phonenumbers.SUPPORTED_REGIONS else None


def phone_region(booking: Booking, company_country: str | None) -> str | None:
    """Where a phone number written nationally is read: the country of the appointment's location, by
    its time zone, else the company's (``[company] country``)."""
    location = booking.location
    return zone_country(location.timezone if location else None) or company_country or None


def national_to_e164(number: str, region: str | None) -> str:
    """*number* in E.164 if it is a valid number written nationally for *region* (``phone_region``):
    ``06 12 34 56 78`` in FR is ``+33612345678``. Otherwise unchanged, for the check that follows
    to refuse."""
    if number.startswith("+") or not region:
        return number
    try:
        parsed = phonenumbers.parse(number, region.upper())
    except phonenumbers.NumberParseException:
        return number
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) \
        if phonenumbers.is_valid_number(parsed) else number


def resolve(entry: str, booking: Booking, context: dict[str, Any], kind: str) -> str:
    """One recipient entry: 'customer', 'staff', a template or a literal, checked for *kind*.

    A phone number written nationally is put in E.164 form with the country of the location, else
    the company's."""
    if entry in ("customer", "staff"):
        value = _party(entry, booking, kind)
    elif is_template(entry):
        value = render(entry, context).strip()
    else:
        value = entry
    if kind == "phone":
        value = national_to_e164(value, phone_region(booking, context.get("company_country")))
    valid = {"email": is_email, "phone": is_phone, "chat": bool}[kind](value)
    if not valid:
        raise RenderError(f"{entry!r} gave {value!r}, which is not a valid {_WHAT[kind]}")
    return value


def _many(entries: list[str] | None, booking, context, kind) -> list[str]:
    return [resolve(e, booking, context, kind) for e in entries or ()]


def _address(recipient: str) -> str:
    return parseaddr(recipient)[1].lower()


def _once(*lists: list[str]) -> list[list[str]]:
    """Each address once across to, cc and bcc, where it first appears (compared without the
    display name and case): `to: [staff]` with `cc: [staff]` is one email to the staff member."""
    seen: set[str] = set()
    kept = []
    for recipients in lists:
        kept.append([r for r in recipients if not (_address(r) in seen or seen.add(_address(r)))])
    return kept


def duplicate_entry(action: Action, booking: Booking, context: dict[str, Any], index: int) -> int | None:
    """The earlier recipient entry of a per-recipient action that gives the same recipient as
    entry *index* (its delivery is then skipped: one message per person), or None."""
    field_name = PER_RECIPIENT[action.type]
    kind = "chat" if action.type == "telegram" else "phone"
    entries = action.fields[field_name]
    mine = resolve(entries[index], booking, context, kind)
    for earlier in range(index):
        try:
            if resolve(entries[earlier], booking, context, kind) == mine:
                return earlier
        except RenderError:
            continue  # that entry fails on its own delivery
    return None


def _json_tree(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, dict):
        return {k: _json_tree(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_tree(v, context) for v in value]
    return value


def render_action(action: Action, booking: Booking, context: dict[str, Any],
                  recipient_index: int | None = None) -> dict[str, Any]:
    """The rendered message of *action* (for one recipient entry, on per-recipient channels)."""
    f = action.fields
    if action.type == "email":
        to, cc, bcc = _once(_many(f["to"], booking, context, "email"), _many(f.get("cc"), booking, context, "email"),
                            _many(f.get("bcc"), booking, context, "email"))
        return {
            "to": to,
            "cc": cc,
            "bcc": bcc,
            "subject": _text(f["subject"], context).strip(),
            "text": _text(f["body"], context),
            "html": _text(f.get("html"), context),
            "attachments": [render(a, context).strip() for a in f.get("attachments", ())],
        }
    if action.type in ("sms", "whatsapp"):
        rendered = {"to": resolve(f["to"][recipient_index], booking, context, "phone"),
                    "body": _text(f["body"], context)}
        if action.type == "sms":
            rendered["provider"] = f.get("provider", "twilio")
        else:
            rendered["media"] = [render(m, context).strip() for m in f.get("media", ())]
        return rendered
    if action.type == "telegram":
        return {"chat_id": resolve(f["chat_id"][recipient_index], booking, context, "chat"),
                "text": _text(f["text"], context),
                "attachments": [render(a, context).strip() for a in f.get("attachments", ())]}
    if action.type == "set_status":
        status = render(f["status"], context).strip()
        if not status:
            raise RenderError("the status rendered empty")
        return {"status": status}
    return _webhook(f, context)


def _webhook(f: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    if "json" in f:
        body, content_type = json.dumps(_json_tree(f["json"], context), ensure_ascii=False), "application/json"
    else:
        body, content_type = _text(f.get("body"), context) or "", "text/plain; charset=utf-8"
    headers = {name: render(value, context).strip() for name, value in f.get("headers", {}).items()}
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), content_type)
    return {
        "url": render(f["url"], context).strip(),
        "method": f.get("method", "POST"),
        "headers": {k: v for k, v in headers.items() if k.lower() != "content-type"},
        "body": body,
        "content_type": content_type,
        "timeout": f.get("timeout"),
    }


def describe_recipients(action_type: str, rendered: dict[str, Any]) -> str:
    """Who a rendered message goes to, for the history."""
    if action_type == "email":
        return ", ".join(rendered["to"] + rendered["cc"] + rendered["bcc"])
    if action_type in ("sms", "whatsapp"):
        return rendered["to"]
    if action_type == "telegram":
        return rendered["chat_id"]
    if action_type == "webhook":
        return rendered["url"]
    return f"status → {rendered['status']}"
