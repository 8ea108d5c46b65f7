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

    def summary(self) -> str:
        """One line saying what the message is and to whom it goes (the demo prints it)."""
        to = ", ".join(self.to + tuple(f"bcc {b}" for b in self.bcc))
        return f"email to {to}: {self.subject!r} — {self.text!r}"


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
