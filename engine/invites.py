"""The calendar invite an email carries (``calendar: request | cancel``): the appointment as an event.

This is the invite's data, plain JSON stored with the delivery; the email
channel writes it as iCalendar (RFC 5545/5546) with the sender as organizer.

- ``uid`` is ``appointment-<id>@<host of [company] website>`` (``apptflow``
  without a website): the same in every message about the appointment, so a
  later REQUEST moves the event and a CANCEL removes it.
- ``sequence`` rises with every message: the whole seconds from 2020-01-01 UTC
  to the moment apptflow wrote the delivery (the change it handled, or the
  planned time that fired). The booking tables keep no revision counter and
  ``updated_at`` is the application's to maintain (most do not), so the
  moment of the change is the one value that rises with every reschedule
  without a column of apptflow's. Two changes of one appointment within the
  same second get the same number (clients then compare DTSTAMP); the count
  fits iCalendar's 32-bit INTEGER until 2088.
"""

from __future__ import annotations

import datetime as dt
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from db.records import Booking
from engine.context import OCCURRED_AT, aware
from engine.durations import parse_duration
from engine.errors import RenderError
from engine.templates import zone

METHODS = ("request", "cancel")
EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)


def uid(appointment_id: int, website: str | None) -> str:
    """The event's UID: stable for the appointment."""
    text = (website or "").strip()
    host = urlsplit(text if "//" in text else f"//{text}").hostname if text else None
    return f"appointment-{appointment_id}@{host or 'apptflow'}"


def sequence(context: dict[str, Any], booking: Booking) -> int:
    """The moment of the message (else the appointment's ``updated_at``) in seconds since 2020 UTC."""
    moment = context.get(OCCURRED_AT) or booking.appointment.updated_at
    return max(0, int((aware(moment) - EPOCH).total_seconds()))


def invite(method: str, booking: Booking, context: dict[str, Any], *, recipients: list[str],
           alarm: str | None = None) -> dict[str, Any]:
    """The invite (``request``) or cancellation (``cancel``) of the booking's appointment.

    The attendee is the customer; without an email address, the email's recipients are."""
    appointment = booking.appointment
    if appointment is None:
        raise RenderError("a calendar invite needs an appointment")
    location, service, customer = booking.location, booking.service, booking.customer
    if customer is not None and customer.email:
        name = " ".join(n for n in (customer.first_name, customer.last_name) if n)
        attendees = [[name, customer.email]]
    else:
        attendees = [list(parseaddr(address)) for address in recipients]
    return {
        "method": method.upper(),
        "uid": uid(appointment.id, context.get("company_website")),
        "sequence": sequence(context, booking),
        "starts_at": aware(appointment.starts_at).isoformat(),
        "ends_at": aware(appointment.ends_at).isoformat(),
        "timezone": zone(location.timezone if location else None).key,
        "summary": service.name if service and service.name else "Appointment",
        "location": (location.address or location.name or "") if location else "",
        "organizer": context.get("company_name") or "",
        "attendees": attendees,
        "alarm": None if alarm is None or method == "cancel" else int(parse_duration(alarm).total_seconds()),
    }
