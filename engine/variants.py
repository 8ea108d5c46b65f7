"""Per-locale variants of an action's texts: which one a booking gets.

A text field that declares ``variants`` (see :class:`engine.actions.FieldSpec`)
is either one template or a mapping of locale to template with a ``default``.
The variant is chosen by the customer's locale, else the appointment's — the
locale the ``locales`` filter reads: the exact locale (``fr_CA``), then its
language (``fr``), then ``default``. Locales compare as the filter compares
them: any case, ``-`` or ``_``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from db.records import Booking

if TYPE_CHECKING:
    from engine.actions import FieldSpec

DEFAULT = "default"


def normal(locale: str) -> str:
    """``fr-CA``, ``fr_ca`` and ``fr_CA`` alike."""
    return locale.replace("-", "_").lower()


def locale_for(booking: Booking | None) -> str | None:
    """The customer's locale, else the appointment's (as the ``locales`` filter reads them)."""
    customer = booking.customer if booking else None
    appointment = booking.appointment if booking else None
    return (customer.locale if customer else None) or (appointment.locale if appointment else None) or None


def choose(variants: Mapping[str, Any], locale: str | None) -> str:
    """The key of the variant for *locale*: the exact locale, then its language, then ``default``."""
    if locale:
        keys = {normal(key): key for key in variants if key != DEFAULT}
        wanted = normal(locale)
        for candidate in (wanted, wanted.split("_")[0]):
            if candidate in keys:
                return keys[candidate]
    return DEFAULT


def in_locale(fields: Mapping[str, Any], specs: Mapping[str, FieldSpec],
              locale: str | None) -> tuple[dict[str, Any], dict[str, str]]:
    """*fields* with every variant mapping replaced by its variant for *locale*, and the key each one took
    (``{"subject": "fr", "content_variables.1": "default"}``; empty when no field has variants)."""
    chosen: dict[str, str] = {}
    result = dict(fields)
    for name, spec in specs.items():
        if not spec.variants or fields.get(name) is None:
            continue
        if spec.form == "variables":
            result[name] = {key: _pick(value, locale, f"{name}.{key}", chosen) for key, value in fields[name].items()}
        else:
            result[name] = _pick(fields[name], locale, name, chosen)
    return result, chosen


def _pick(value: Any, locale: str | None, place: str, chosen: dict[str, str]) -> Any:
    if not isinstance(value, Mapping):
        return value
    key = choose(value, locale)
    chosen[place] = key
    return value[key]


def with_locale(booking: Booking, locale: str) -> Booking:
    """*booking* as a customer of *locale* would have it (``workflow test --locale``): the variants and the
    dates follow it."""
    customer = dataclasses.replace(booking.customer, locale=locale) if booking.customer else None
    appointment = booking.appointment
    if customer is None and appointment is not None:
        appointment = dataclasses.replace(appointment, locale=locale)
    return dataclasses.replace(booking, customer=customer, appointment=appointment)


def summary(chosen: Mapping[str, str]) -> str:
    """The variants a message was written in, for the history: ``fr``, or ``subject: fr, body: default``."""
    keys = set(chosen.values())
    if len(keys) == 1:
        return keys.pop()
    return ", ".join(f"{field}: {key}" for field, key in chosen.items())
