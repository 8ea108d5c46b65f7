"""An :class:`~channels.messages.Invite` written as iCalendar (RFC 5545) for iMIP (RFC 5546, RFC 6047).

The organizer is the email's sender: RFC 6047 wants the ORGANIZER of a REQUEST
or CANCEL to be the address it comes from, and mail clients warn ("sent on
behalf of") otherwise. Times are written in the location's zone with its
VTIMEZONE, so a calendar shows them right whatever its own zone. The library
is imported here, when an invite is written: without it, only invites fail.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from channels.base import PermanentSendError
from channels.messages import Invite

PRODID = "-//apptflow//appointment invites//EN"
# The VTIMEZONE gives the zone's rules from a year before the event to a year after: enough for any
# calendar to place it, where the library's default (1970 to 2038) would make every invite kilobytes long.
_ZONE_MARGIN = dt.timedelta(days=366)


def ics(invite: Invite, *, organizer_address: str, organizer_name: str, stamp: dt.datetime) -> str:
    """The iCalendar text of *invite* (METHOD, one VEVENT, its VTIMEZONE); PermanentSendError if it cannot
    be written."""
    try:
        import icalendar
    except ImportError as error:
        raise PermanentSendError(f"calendar invites need the icalendar library ({error})") from None
    try:
        zone = ZoneInfo(invite.timezone)
        starts, ends = (dt.datetime.fromisoformat(t).astimezone(zone) for t in (invite.starts_at, invite.ends_at))
    except (ValueError, ZoneInfoNotFoundError) as error:
        raise PermanentSendError(f"calendar invite: {error}") from None
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", invite.method)
    calendar.add_component(_event(icalendar, invite, starts, ends, organizer_address, organizer_name, stamp))
    calendar.add_missing_timezones(first_date=(starts - _ZONE_MARGIN).date(), last_date=(ends + _ZONE_MARGIN).date())
    return calendar.to_ical().decode()


def _event(icalendar, invite: Invite, starts, ends, organizer_address, organizer_name, stamp):
    event = icalendar.Event()
    event.add("uid", invite.uid)
    event.add("sequence", invite.sequence)
    event.add("dtstamp", stamp.astimezone(dt.timezone.utc))
    event.add("dtstart", starts)
    event.add("dtend", ends)
    event.add("summary", invite.summary)
    if invite.location:
        event.add("location", invite.location)
    event.add("status", "CANCELLED" if invite.method == "CANCEL" else "CONFIRMED")
    event.add("organizer", _address(icalendar, organizer_address, organizer_name))
    for name, address in invite.attendees:
        # RSVP=FALSE: apptflow reads no mail, so it asks for no answer.
        event.add("attendee", _address(icalendar, address, name, role="REQ-PARTICIPANT",
                                       partstat="NEEDS-ACTION", rsvp="FALSE"))
    if invite.alarm is not None and invite.method == "REQUEST":
        alarm = icalendar.Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", invite.summary)
        alarm.add("trigger", dt.timedelta(seconds=invite.alarm))
        event.add_component(alarm)
    return event


def _address(icalendar, address: str, name: str, **params):
    value = icalendar.vCalAddress(f"mailto:{address}")
    if name:
        value.params["cn"] = icalendar.vText(name)
    for key, param in params.items():
        value.params[key.upper()] = icalendar.vText(param)
    return value
