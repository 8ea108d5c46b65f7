"""``email``: one message through SMTP to every address of ``to``, ``cc`` and ``bcc``, optionally with a
calendar invite of the appointment (``calendar: request | cancel``, see :mod:`engine.invites`)."""

from __future__ import annotations

from typing import Any

from engine.actions.base import REQUIRED_TEXT, TEMPLATE_LIST, TEXT, ActionType, FieldSpec, UrlGuard, register
from engine.invites import METHODS, invite
from engine.recipients import EMAIL, once_each, resolve_all
from engine.templates import render
from engine.triggers import trigger_type

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
        "calendar": FieldSpec(form="choice", choices=METHODS),
        "calendar_alarm": FieldSpec(form="offset"),  # before (-1h) or after the start
    }
    # a resent email carries the same Message-ID, which mail clients recognise
    url_guards = (ATTACHMENT_GUARD,)
    to_person = True

    def check(self, check, fields, place, known):
        if "calendar" in fields and not trigger_type(check.trigger_type).has_appointment:
            check.add(f"{place}.calendar", f"{check.trigger_type} has no appointment to invite to")
        if "calendar_alarm" in fields and fields.get("calendar") != "request":
            check.add(f"{place}.calendar_alarm", "an alarm goes with 'calendar: request'")

    def render(self, fields, booking, context, recipient):
        to, cc, bcc = once_each(*(resolve_all(fields.get(name), booking, context, EMAIL)
                                  for name in ("to", "cc", "bcc")))
        html = fields.get("html")
        rendered = {
            "to": to,
            "cc": cc,
            "bcc": bcc,
            "subject": render(fields["subject"], context).strip(),
            "text": render(fields["body"], context),
            "html": None if html is None else render(html, context),
            "attachments": render_attachments(fields.get("attachments"), context),
        }
        if fields.get("calendar"):
            rendered["calendar"] = invite(fields["calendar"], booking, context, recipients=to,
                                          alarm=fields.get("calendar_alarm"))
        return rendered

    def describe(self, rendered):
        return ", ".join(rendered["to"] + rendered["cc"] + rendered["bcc"])

    def channel(self, rendered):
        return "smtp"

    def message(self, rendered, *, stable_id, delivery_id):
        return {"to": tuple(rendered["to"]), "cc": tuple(rendered["cc"]), "bcc": tuple(rendered["bcc"]),
                "subject": rendered["subject"], "text": rendered["text"], "html": rendered["html"],
                "attachments": tuple(rendered["attachments"]), "calendar": rendered.get("calendar"),
                "message_id": f"<{stable_id}.{delivery_id}@apptflow>"}
