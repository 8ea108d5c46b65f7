"""Recipients: the words ``customer`` and ``staff``, literal addresses and templates, resolved for one booking.

Each recipient field has a kind of address (:class:`Address`): an email
address, a phone number, or a Telegram chat id. Action types name the kind of
their recipient fields; validation and rendering read what each kind means here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

import phonenumbers
from babel.core import get_global

from db.records import Booking
from engine.errors import RenderError
from engine.templates import is_template, render

_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_CHAT = re.compile(r"^(-?\d+|@[A-Za-z][A-Za-z0-9_]{4,})$")
PARTIES = ("customer", "staff")


def is_email(text: str) -> bool:
    """An address like ``a@b.c`` or ``Name <a@b.c>``."""
    return bool(_EMAIL.match(parseaddr(text)[1])) and "@" in text


def is_phone(text: str) -> bool:
    """E.164: ``+`` then 7 to 15 digits."""
    return bool(_E164.match(text))


def is_chat(text: str) -> bool:
    """A Telegram chat id: a number, or ``@channelname``."""
    return bool(_CHAT.match(text))


@dataclass(frozen=True, slots=True, kw_only=True)
class Address:
    """A kind of recipient address: the booking column it is read from and how it is checked."""

    name: str
    column: str  # on customers and staff
    noun: str  # "phone number"
    described: str  # "a phone number in E.164 form (+15551234567)", for validation messages

    def valid(self, text: str) -> bool:
        return _CHECKS[self.name](text)


_CHECKS = {"email": is_email, "phone": is_phone, "chat": is_chat}
EMAIL = Address(name="email", column="email", noun="email address", described="an email address")
PHONE = Address(name="phone", column="phone", noun="phone number",
                described="a phone number in E.164 form (+15551234567)")
CHAT = Address(name="chat", column="telegram_chat_id", noun="Telegram chat id", described="a Telegram chat id")
# Rendering is looser for chats (a chat id read from a column or a template is taken as it is).
_RENDERED = {"email": is_email, "phone": is_phone, "chat": bool}
PARTY_TABLES = {"customer": "customers", "staff": "staff"}


def _party(entry: str, booking: Booking, address: Address) -> str:
    party = booking.customer if entry == "customer" else booking.staff
    value = getattr(party, address.column, None) if party else None
    if not value:
        raise RenderError(f"{entry} has no {address.noun}")
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


def resolve(entry: str, booking: Booking, context: dict[str, Any], address: Address) -> str:
    """One recipient entry: 'customer', 'staff', a template or a literal, checked for *address*.

    A phone number written nationally is put in E.164 form with the country of the location, else
    the company's."""
    if entry in PARTIES:
        value = _party(entry, booking, address)
    elif is_template(entry):
        value = render(entry, context).strip()
    else:
        value = entry
    if address is PHONE:
        value = national_to_e164(value, phone_region(booking, context.get("company_country")))
    if not _RENDERED[address.name](value):
        raise RenderError(f"{entry!r} gave {value!r}, which is not a valid {address.noun}")
    return value


def resolve_all(entries: list[str] | None, booking: Booking, context: dict[str, Any], address: Address) -> list[str]:
    return [resolve(e, booking, context, address) for e in entries or ()]


def _bare(recipient: str) -> str:
    return parseaddr(recipient)[1].lower()


def once_each(*lists: list[str]) -> list[list[str]]:
    """Each address once across the lists (to, cc, bcc), where it first appears (compared without the
    display name and case): `to: [staff]` with `cc: [staff]` is one email to the staff member."""
    seen: set[str] = set()
    kept = []
    for recipients in lists:
        kept.append([r for r in recipients if not (_bare(r) in seen or seen.add(_bare(r)))])
    return kept
