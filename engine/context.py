"""The values behind the template keywords, for one booking at one moment.

Dates and times are written for the customer's locale (month names, 12- or
24-hour clock) in the location's time zone, or the customer's own for the
``_client`` keywords.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel import dates as babel_dates
from babel import numbers as babel_numbers

from db.records import Booking
from engine.templates import Fields, locale_named, plain_spaces, zone

DEFAULT_LOCALE = "en"


def locale_of(booking: Booking) -> Locale:
    """The customer's locale, else the appointment's, else English."""
    candidates = (
        booking.customer.locale if booking.customer else None,
        booking.appointment.locale if booking.appointment else None,
    )
    for name in candidates:
        locale = locale_named(name)
        if locale is not None:
            return locale
    return Locale.parse(DEFAULT_LOCALE)


def _date(moment: dt.datetime, tz: ZoneInfo, locale: Locale) -> str:
    return plain_spaces(babel_dates.format_date(moment.astimezone(tz).date(), "medium", locale=locale))


def _time(moment: dt.datetime, tz: ZoneInfo, locale: Locale) -> str:
    return plain_spaces(babel_dates.format_time(moment, "short", tzinfo=tz, locale=locale))


def _date_time(moment: dt.datetime, tz: ZoneInfo, locale: Locale) -> str:
    # The medium date with the short time. CLDR may quote literal words ("{1} 'à' {0}"): unquoted, as Babel does.
    pattern = str(locale.datetime_formats["medium"]).replace("'", "")
    return pattern.replace("{0}", _time(moment, tz, locale)).replace("{1}", _date(moment, tz, locale))


def _duration(minutes: int | None) -> str:
    if minutes is None:
        return ""
    hours, rest = divmod(int(minutes), 60)
    return " ".join(part for part in (f"{hours}h" if hours else "", f"{rest}m" if rest else "") if part) or "0m"


def _price(value: Any, locale: Locale) -> str:
    if value is None or value == "":
        return ""
    try:
        return plain_spaces(babel_numbers.format_decimal(value, "#,##0.00", locale=locale))
    except (decimal.InvalidOperation, ValueError, TypeError):
        return str(value)  # a price the booking application wrote as text: shown as written


def _fields(value: Any, path: str) -> Any:
    if isinstance(value, Mapping):
        return Fields(path, {key: _fields(item, f"{path}.{key}") for key, item in value.items()})
    return value


def _plain(record: Any, path: str) -> Fields:
    """A record as nested fields (``appointment.custom.x``) that name themselves in error messages."""
    return _fields(dataclasses.asdict(record) if record is not None else {}, path)


def _text(value: Any) -> Any:
    return "" if value is None else value


def _times(appointment, tz: ZoneInfo, suffix: str, locale: Locale) -> dict[str, str]:
    start, end = appointment.starts_at, appointment.ends_at
    values = {
        "appointment_date": _date(start, tz, locale),
        "appointment_start_date": _date(start, tz, locale),
        "appointment_end_date": _date(end, tz, locale),
        "appointment_date_time": _date_time(start, tz, locale),
        "appointment_start_date_time": _date_time(start, tz, locale),
        "appointment_end_date_time": _date_time(end, tz, locale),
        "appointment_start_time": _time(start, tz, locale),
        "appointment_end_time": _time(end, tz, locale),
    }
    return {f"{name}{suffix}": value for name, value in values.items()}


def _appointment_keywords(booking: Booking, locale: Locale) -> dict[str, Any]:
    a, service, member, location = booking.appointment, booking.service, booking.staff, booking.location
    location_zone = zone(location.timezone if location else None)
    customer_zone = _customer_zone(booking) or location_zone
    minutes = round((a.ends_at - a.starts_at).total_seconds() / 60)
    return {
        "appointment_id": a.id,
        **_times(a, location_zone, "", locale),
        **_times(a, customer_zone, "_client", locale),
        "appointment_duration": _duration(minutes),
        "appointment_status": a.status,
        "appointment_service_price": _price(service.price if service else None, locale),
        "appointment_created_date": _date(a.created_at, location_zone, locale),
        "appointment_created_time": _time(a.created_at, location_zone, locale),
        "appointment_started_by": a.started_by,
        "service_name": service.name if service else "",
        "service_price": _price(service.price if service else None, locale),
        "service_duration": _duration(service.duration_minutes if service else None),
        "staff_name": _text(member.name) if member else "",
        "staff_email": _text(member.email) if member else "",
        "staff_phone": _text(member.phone) if member else "",
        "location_name": _text(location.name) if location else "",
        "location_address": _text(location.address) if location else "",
        "location_timezone": location_zone.key,
        "appointment": _plain(a, "appointment"),
        "service": _plain(service, "service"),
        "staff": _plain(member, "staff"),
        "location": _plain(location, "location"),
    }


def _customer_zone(booking: Booking) -> ZoneInfo | None:
    """The customer's own zone, or None (then the location's) when it is empty or unknown."""
    name = booking.customer.timezone if booking.customer else None
    known = zone(name)
    return known if name and known.key == name else None


def _customer_keywords(booking: Booking) -> dict[str, Any]:
    c = booking.customer
    names = [n for n in ((c.first_name, c.last_name) if c else ()) if n]
    return {
        "customer_full_name": " ".join(names),
        "customer_first_name": (c.first_name if c else "") or "",
        "customer_last_name": (c.last_name if c else "") or "",
        "customer_email": (c.email if c else "") or "",
        "customer_phone": (c.phone if c else "") or "",
        "customer_locale": (c.locale if c else "") or "",
        "customer": _plain(c, "customer"),
    }


def build_context(booking: Booking, *, company: Mapping[str, str], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Every keyword for *booking*, plus the company's and the trigger's (*extra*: old/new status, ...)."""
    locale = locale_of(booking)
    context: dict[str, Any] = {
        **_customer_keywords(booking),
        **{f"company_{key}": company.get(key, "") for key in ("name", "phone", "website", "address")},
    }
    if booking.appointment is not None:
        context.update(_appointment_keywords(booking, locale))
    context.update(extra)
    if extra.get("fire_time"):
        context["fire_time"] = _fire_time(extra["fire_time"], zone(context.get("location_timezone")), locale)
    # Read by the format_* filters; not a keyword of its own.
    context["_locale"] = str(locale)
    return context


def _fire_time(value: str | dt.datetime, tz: ZoneInfo, locale: Locale) -> str:
    """The planned firing (ISO text in a delivery's context) written like the appointment's times."""
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return _date_time(moment, tz, locale)
