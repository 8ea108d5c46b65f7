"""The values behind the template keywords, for one booking at one moment.

Dates and times are written for the customer's locale (month names, 12- or
24-hour clock) in the location's time zone, or the customer's own for the
``_client`` keywords.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from babel import Locale
from babel import dates as babel_dates
from babel import numbers as babel_numbers

from db.records import Booking
from engine.statuses import status_label
from engine.templates import Fields, locale_named, plain_spaces, zone

DEFAULT_LOCALE = "en"
# In a delivery's context: when apptflow wrote the delivery (the change handled, the planned time fired),
# ISO 8601. Not a keyword (templates cannot read names starting with "_"); a calendar invite's SEQUENCE.
OCCURRED_AT = "_occurred_at"
# the keys of ``[company]`` that are keywords, as company_<key>
COMPANY_FIELDS = ("name", "phone", "website", "address", "country", "image_url")


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


@dataclass(frozen=True, slots=True)
class Facts:
    """What every keyword of one booking is computed from."""

    booking: Booking
    locale: Locale
    location_zone: ZoneInfo
    customer_zone: ZoneInfo


_MOMENTS = {"date": _date, "time": _time, "date_time": _date_time}
# keyword stem → (the appointment's moment, how it is written)
_TIMES = {
    "appointment_date": ("starts_at", "date"), "appointment_start_date": ("starts_at", "date"),
    "appointment_end_date": ("ends_at", "date"), "appointment_date_time": ("starts_at", "date_time"),
    "appointment_start_date_time": ("starts_at", "date_time"),
    "appointment_end_date_time": ("ends_at", "date_time"),
    "appointment_start_time": ("starts_at", "time"), "appointment_end_time": ("ends_at", "time"),
}


def _moment(column: str, kind: str, client: bool) -> Callable[[Facts], str]:
    def produce(f: Facts) -> str:
        tz = f.customer_zone if client else f.location_zone
        return _MOMENTS[kind](getattr(f.booking.appointment, column), tz, f.locale)
    return produce


def _minutes(a) -> int:
    return round((a.ends_at - a.starts_at).total_seconds() / 60)


def _of(record: str, field: str) -> Callable[[Facts], Any]:
    """A column of the service, staff member or location, empty when there is none."""
    def produce(f: Facts) -> Any:
        row = getattr(f.booking, record)
        return _text(getattr(row, field)) if row else ""
    return produce


def _sum_price(f: Facts) -> str:
    """What the booking costs in all; without a total, the service's price less the discount."""
    a, service = f.booking.appointment, f.booking.service
    if a.total_price is not None or service is None or service.price is None:
        return _price(a.total_price, f.locale)
    try:
        return _price(decimal.Decimal(str(service.price)) - decimal.Decimal(str(a.discount_price or 0)), f.locale)
    except decimal.InvalidOperation:  # a price written as text: no sum to make
        return ""


_GOOGLE_STAMP = "%Y%m%dT%H%M%SZ"


def _google_calendar_link(f: Facts) -> str:
    """A link that opens Google Calendar's "new event" page filled with the appointment (as Booknetic's)."""
    a, service, location = f.booking.appointment, f.booking.service, f.booking.location
    where = location and (location.address or location.name) or ""
    span = "/".join(moment.astimezone(dt.timezone.utc).strftime(_GOOGLE_STAMP) for moment in (a.starts_at, a.ends_at))
    query = urlencode({"action": "TEMPLATE", "text": service.name if service else "", "dates": span,
                       "location": where}, quote_via=quote, safe="/")
    return f"https://www.google.com/calendar/render?{query}"


def _google_maps_url(f: Facts) -> str:
    """The location on Google Maps: by its coordinates (as Booknetic's), else a search for its address."""
    location = f.booking.location
    if location is None:
        return ""
    if location.latitude is not None and location.longitude is not None:
        return f"https://maps.google.com/?q={float(location.latitude)!r},{float(location.longitude)!r}"
    if location.address:
        return f"https://maps.google.com/?q={quote(location.address)}"
    return ""


def _birthday(f: Facts) -> str:
    """The customer's birthday as a date of their locale, or as written when it is not a date."""
    day = f.booking.customer.birthday if f.booking.customer else None
    if isinstance(day, dt.date):
        return plain_spaces(babel_dates.format_date(day, "medium", locale=f.locale))
    return _text(day)


def _attendees(a) -> int:
    """The customer and the people they bring: at least one."""
    return max(a.attendees or 1, 1)


def _customer_name(f: Facts) -> str:
    c = f.booking.customer
    return " ".join(n for n in ((c.first_name, c.last_name) if c else ()) if n)


def _customer_field(field: str) -> Callable[[Facts], str]:
    return lambda f: (getattr(f.booking.customer, field) if f.booking.customer else "") or ""


# Every keyword, computed only when a template asks for it: formatting all of them (two dozen
# dates in the customer's locale) cost more than rendering and sending a webhook.
_APPOINTMENT: dict[str, Callable[[Facts], Any]] = {
    "appointment_id": lambda f: f.booking.appointment.id,
    **{name: _moment(column, kind, False) for name, (column, kind) in _TIMES.items()},
    **{f"{name}_client": _moment(column, kind, True) for name, (column, kind) in _TIMES.items()},
    "appointment_duration": lambda f: _duration(_minutes(f.booking.appointment)),
    "appointment_status": lambda f: status_label(f.booking.appointment.status, f.locale),
    "appointment_status_code": lambda f: f.booking.appointment.status,
    "appointment_service_price": lambda f: _price(f.booking.service.price if f.booking.service else None, f.locale),
    "appointment_created_date": lambda f: _date(f.booking.appointment.created_at, f.location_zone, f.locale),
    "appointment_created_time": lambda f: _time(f.booking.appointment.created_at, f.location_zone, f.locale),
    "appointment_created_date_client": lambda f: _date(f.booking.appointment.created_at, f.customer_zone, f.locale),
    "appointment_created_time_client": lambda f: _time(f.booking.appointment.created_at, f.customer_zone, f.locale),
    "appointment_started_by": lambda f: f.booking.appointment.started_by,
    "appointment_notes": lambda f: _text(f.booking.appointment.notes),
    "appointment_sum_price": _sum_price,
    "appointment_paid_price": lambda f: _price(f.booking.appointment.paid_price, f.locale),
    "appointment_discount_price": lambda f: _price(f.booking.appointment.discount_price, f.locale),
    "appointment_payment_method": lambda f: _text(f.booking.appointment.payment_method),
    "appointment_total_attendees": lambda f: _attendees(f.booking.appointment),
    "appointment_brought_people": lambda f: _attendees(f.booking.appointment) - 1,
    "add_to_google_calendar_link": _google_calendar_link,
    "appointment_buffer_before": lambda f: _duration(f.booking.appointment.buffer_before_minutes),
    "appointment_buffer_after": lambda f: _duration(f.booking.appointment.buffer_after_minutes),
    "service_name": lambda f: f.booking.service.name if f.booking.service else "",
    "service_price": lambda f: _price(f.booking.service.price if f.booking.service else None, f.locale),
    "service_duration": lambda f: _duration(f.booking.service.duration_minutes if f.booking.service else None),
    "service_category_name": _of("service", "category"), "service_notes": _of("service", "notes"),
    "service_color": _of("service", "color"), "service_image_url": _of("service", "image_url"),
    "staff_name": _of("staff", "name"), "staff_email": _of("staff", "email"), "staff_phone": _of("staff", "phone"),
    "staff_about": _of("staff", "about"), "staff_profile_image_url": _of("staff", "image_url"),
    "location_name": _of("location", "name"), "location_address": _of("location", "address"),
    "location_timezone": lambda f: f.location_zone.key,
    "location_phone_number": _of("location", "phone"), "location_notes": _of("location", "notes"),
    "location_image_url": _of("location", "image_url"), "location_google_maps_url": _google_maps_url,
    "appointment": lambda f: _plain(f.booking.appointment, "appointment"),
    "service": lambda f: _plain(f.booking.service, "service"),
    "staff": lambda f: _plain(f.booking.staff, "staff"),
    "location": lambda f: _plain(f.booking.location, "location"),
}

_CUSTOMER: dict[str, Callable[[Facts], Any]] = {
    "customer_full_name": _customer_name,
    "customer_first_name": _customer_field("first_name"),
    "customer_last_name": _customer_field("last_name"),
    "customer_email": _customer_field("email"),
    "customer_phone": _customer_field("phone"),
    "customer_locale": _customer_field("locale"),
    "customer_birthday": _birthday,
    "customer_notes": _customer_field("notes"),
    "customer_profile_image_url": _customer_field("image_url"),
    "customer": lambda f: _plain(f.booking.customer, "customer"),
}


def _customer_zone(booking: Booking) -> ZoneInfo | None:
    """The customer's own zone, or None (then the location's) when it is empty or unknown."""
    name = booking.customer.timezone if booking.customer else None
    known = zone(name)
    return known if name and known.key == name else None


def build_context(booking: Booking, *, company: Mapping[str, str], extra: Mapping[str, Any],
                  names: Collection[str] | None = None, locale: Locale | None = None) -> dict[str, Any]:
    """The keywords for *booking* (only *names*, if given), plus the company's and the trigger's
    (*extra*: old/new status, ...); a schedule's agenda has its own (:mod:`engine.agenda`)."""
    if booking.agenda is not None:
        from engine.agenda import agenda_context  # it builds each listed appointment's keywords here

        return agenda_context(booking, company=company, extra=extra, names=names)
    locale = locale or locale_of(booking)
    location_zone = zone(booking.location.timezone if booking.location else None)
    facts = Facts(booking=booking, locale=locale, location_zone=location_zone,
                   # a firing of the customer's own (birthday, recall) names the zone it was planned in
                   customer_zone=_customer_zone(booking) or (zone(extra["zone"]) if extra.get("zone")
                                                             else location_zone))
    producers = {**_CUSTOMER, **(_APPOINTMENT if booking.appointment is not None else {})}
    wanted = producers.keys() if names is None else [n for n in names if n in producers]
    context: dict[str, Any] = {name: producers[name](facts) for name in wanted}
    context.update({f"company_{key}": company.get(key, "") for key in COMPANY_FIELDS})
    if booking.appointment is not None:
        context["location_timezone"] = location_zone.key  # read by the format_* filters too
    context.update(extra)
    if extra.get("fire_time"):  # a customer's own firings (birthday, recall) in their zone
        context["fire_time"] = _fire_time(extra["fire_time"], location_zone if booking.appointment is not None
                                          else facts.customer_zone, locale)
    if extra.get("last_visit_at"):  # customer_inactive
        context["last_visit_date"] = _date(aware(extra["last_visit_at"]), facts.customer_zone, locale)
    if extra.get("old_starts_at") and extra.get("old_ends_at"):  # appointment_rescheduled
        starts, ends = (aware(extra[key]) for key in ("old_starts_at", "old_ends_at"))
        context.update({
            "old_appointment_date": _date(starts, location_zone, locale),
            "old_appointment_date_time": _date_time(starts, location_zone, locale),
            "old_appointment_start_time": _time(starts, location_zone, locale),
            "old_appointment_end_time": _time(ends, location_zone, locale),
        })
    # Read by the format_* filters; not a keyword of its own.
    context["_locale"] = str(locale)
    return context


def aware(value: str | dt.datetime) -> dt.datetime:
    """A moment from a delivery's context (ISO text, naive meaning UTC)."""
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


def _fire_time(value: str | dt.datetime, tz: ZoneInfo, locale: Locale) -> str:
    """The planned firing (ISO text in a delivery's context) written like the appointment's times."""
    return _date_time(aware(value), tz, locale)


moment_text = _fire_time  # a moment of a delivery's context, as the keywords write it
# Every keyword of one booking, by name (a schedule's agenda reads its staff and location ones).
PRODUCERS = {**_APPOINTMENT, **_CUSTOMER}
