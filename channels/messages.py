"""Rendered messages, one type per channel: everything a transport needs and nothing of workflows."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class Email:
    """An email; ``attachments`` are http(s) URLs or paths under the configured attachment directory."""

    to: tuple[str, ...]
    subject: str
    text: str
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    html: str | None = None
    attachments: tuple[str, ...] = ()
    # Stable across retries, so a receiver can recognise a resent message.
    message_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Sms:
    """A text message to one E.164 number."""

    to: str
    body: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WhatsApp:
    """A WhatsApp message to one E.164 number, with optional media URLs."""

    to: str
    body: str
    media: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Telegram:
    """A Telegram message to one chat id (or @channel), with optional documents (URLs or paths)."""

    chat_id: str
    text: str
    attachments: tuple[str, ...] = ()


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
