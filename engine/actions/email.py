"""``email``: one message through SMTP to every address of ``to``, ``cc`` and ``bcc``."""

from __future__ import annotations

from typing import Any

from engine.actions.base import REQUIRED_TEXT, TEMPLATE_LIST, TEXT, ActionType, FieldSpec, UrlGuard, register
from engine.recipients import EMAIL, once_each, resolve_all
from engine.templates import render

ATTACHMENT_GUARD = UrlGuard(field="attachments", what="attachments",
                            setting=("daemon", "attachments_allow_private_addresses"))


def render_attachments(entries: list[str] | None, context: dict[str, Any]) -> list[str]:
    """Attachment URLs or paths, rendered (email and Telegram take them alike)."""
    return [render(a, context).strip() for a in entries or ()]


@register
class Email(ActionType):
    name = "email"
    fields = {
        "to": FieldSpec(form="recipients", required=True, address=EMAIL),
        "cc": FieldSpec(form="recipients", address=EMAIL),
        "bcc": FieldSpec(form="recipients", address=EMAIL),
        "subject": REQUIRED_TEXT,
        "body": REQUIRED_TEXT,
        "html": TEXT,
        "attachments": TEMPLATE_LIST,
    }
    # a resent email carries the same Message-ID, which mail clients recognise
    url_guards = (ATTACHMENT_GUARD,)

    def render(self, fields, booking, context, recipient):
        to, cc, bcc = once_each(*(resolve_all(fields.get(name), booking, context, EMAIL)
                                  for name in ("to", "cc", "bcc")))
        html = fields.get("html")
        return {
            "to": to,
            "cc": cc,
            "bcc": bcc,
            "subject": render(fields["subject"], context).strip(),
            "text": render(fields["body"], context),
            "html": None if html is None else render(html, context),
            "attachments": render_attachments(fields.get("attachments"), context),
        }

    def describe(self, rendered):
        return ", ".join(rendered["to"] + rendered["cc"] + rendered["bcc"])

    def channel(self, rendered):
        return "smtp"

    def message(self, rendered, *, stable_id, delivery_id):
        return {"to": tuple(rendered["to"]), "cc": tuple(rendered["cc"]), "bcc": tuple(rendered["bcc"]),
                "subject": rendered["subject"], "text": rendered["text"], "html": rendered["html"],
                "attachments": tuple(rendered["attachments"]),
                "message_id": f"<{stable_id}.{delivery_id}@apptflow>"}
