"""The keywords of a schedule's message: its target's, the company's, and ``appointments``, the list.

Each item of ``appointments`` carries the keywords a single appointment has
(``{{ a.appointment_start_time }}``, ``{{ a.customer_full_name }}``,
``{{ a.service_name }}`` ...), written in the schedule's ``locale``; the times
in each appointment's location's zone, as for a single appointment.
``fire_time``, ``window_start`` and ``window_end`` are written in the
schedule's zone.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from babel import Locale

from db.records import Booking
from engine import keywords
from engine.context import COMPANY_FIELDS, Facts, PRODUCERS, build_context, moment_text
from engine.templates import Fields, locale_named, zone

_TARGET = keywords.STAFF | keywords.LOCATION


def agenda_context(booking: Booking, *, company: Mapping[str, str], extra: Mapping[str, Any],
                   names: Collection[str] | None = None) -> dict[str, Any]:
    """The keywords of one schedule delivery: *booking* holds the target and its ``agenda``; *extra* the
    delivery's context (``fire_time``, ``window_start``, ``window_end``, ``zone``, ``locale``)."""
    locale = locale_named(extra.get("locale")) or Locale.parse("en")
    tz = zone(extra.get("zone"))
    location_zone = zone(booking.location.timezone) if booking.location else tz
    facts = Facts(booking=booking, locale=locale, location_zone=location_zone, customer_zone=location_zone)
    wanted = _TARGET if names is None else _TARGET & set(names)
    context: dict[str, Any] = {name: PRODUCERS[name](facts) for name in wanted if _has_target(booking, name)}
    context.update({f"company_{key}": company.get(key, "") for key in COMPANY_FIELDS})
    context["appointments"] = [
        Fields(f"appointments[{n}]", _item(item, company, locale)) for n, item in enumerate(booking.agenda or ())]
    for key in ("fire_time", "window_start", "window_end"):
        if extra.get(key):
            context[key] = moment_text(extra[key], tz, locale)
    context["location_timezone"] = location_zone.key  # read by the format_* filters
    context["_locale"] = str(locale)
    return context


def _has_target(booking: Booking, name: str) -> bool:
    return (booking.staff is not None) if name in keywords.STAFF else (booking.location is not None)


def _item(booking: Booking, company: Mapping[str, str], locale: Locale) -> dict[str, Any]:
    item = build_context(booking, company=company, extra={}, locale=locale)
    item.pop("_locale", None)
    return item
