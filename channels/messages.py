"""Rendered messages, one type per channel: everything a transport needs and nothing of workflows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True, slots=True, kw_only=True)
class Invite:
    """A calendar event sent as an iCalendar invitation (RFC 5546): ``REQUEST`` adds or moves the event
    with this ``uid`` in the attendees' calendars, ``CANCEL`` removes it; the higher ``sequence`` wins."""

    method: str  # REQUEST | CANCEL
    uid: str
    sequence: int
    starts_at: str  # ISO 8601 with an offset
    ends_at: str
    timezone: str  # IANA zone the times are written in
    summary: str
    location: str = ""
    organizer: str = ""  # a name; the organizer's address is the email's sender
    attendees: tuple[tuple[str, str], ...] = ()  # (name, address)
    alarm: int | None = None  # seconds from the start (negative: before it)

    def described(self) -> str:
        """``REQUEST Haircut 2026-12-01 11:00 CET``."""
        try:
            start = dt.datetime.fromisoformat(self.starts_at).astimezone(ZoneInfo(self.timezone))
            when = start.strftime("%Y-%m-%d %H:%M %Z")
        except (ValueError, ZoneInfoNotFoundError):
            when = self.starts_at
        return f"{self.method} {self.summary} {when}"

    @classmethod
    def of(cls, value: Invite | Mapping[str, Any] | None) -> Invite | None:
        """An invite from its plain-data form (as stored with a delivery)."""
        if value is None or isinstance(value, Invite):
            return value
        fields = dict(value)
        fields["attendees"] = tuple((str(name), str(address)) for name, address in fields.get("attendees", ()))
        return cls(**fields)


@dataclass(frozen=True, slots=True, kw_only=True)
class Email:
    """An email; ``attachments`` are http(s) URLs or paths under the configured attachment directory;
    ``calendar`` an invite it carries (given as an :class:`Invite` or its plain-data form)."""

    to: tuple[str, ...]
    subject: str
    text: str
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    html: str | None = None
    attachments: tuple[str, ...] = ()
    calendar: Invite | None = None
    # Stable across retries, so a receiver can recognise a resent message.
    message_id: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "calendar", Invite.of(self.calendar))

    def summary(self) -> str:
        """One line saying what the message is and to whom it goes (the demo prints it)."""
        to = ", ".join(self.to + tuple(f"bcc {b}" for b in self.bcc))
        invite = f" + invite.ics ({self.calendar.described()})" if self.calendar is not None else ""
        return f"email to {to}: {self.subject!r} — {self.text!r}{invite}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Sms:
    """A text message to one E.164 number."""

    to: str
    body: str

    def summary(self) -> str:
        return f"sms to {self.to}: {self.body!r}"


@dataclass(frozen=True, slots=True, kw_only=True)
class WhatsApp:
    """A WhatsApp message to one E.164 number: free text with optional media URLs, or an approved
    template (``content_sid``, ``HX…``) filled with ``content_variables`` (``{"1": "Ada"}``)."""

    to: str
    body: str = ""
    media: tuple[str, ...] = ()
    content_sid: str | None = None
    content_variables: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        if self.content_sid:
            return f"whatsapp to {self.to}: template {self.content_sid} with {self.content_variables!r}"
        return f"whatsapp to {self.to}: {self.body!r}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Telegram:
    """A Telegram message to one chat id (or @channel), with optional documents (URLs or paths)."""

    chat_id: str
    text: str
    attachments: tuple[str, ...] = ()

    def summary(self) -> str:
        return f"telegram to chat {self.chat_id}: {self.text!r}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Webhook:
    """An HTTP request; ``delivery_id`` is stable across retries (the ``webhook-id`` header)."""

    url: str
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    content_type: str = "application/json"
    delivery_id: str = ""
    timeout: float | None = None

    def summary(self) -> str:
        return f"webhook {self.method} {self.url}: {self.body}"
