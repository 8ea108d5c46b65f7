"""``telegram``: a Bot API message to each chat of ``chat_id``, with optional documents."""

from __future__ import annotations

from engine.actions.base import HOLD, REQUIRED_TEXT, TEMPLATE_LIST, ActionType, FieldSpec, register
from engine.actions.email import ATTACHMENT_GUARD, render_attachments
from engine.recipients import CHAT, resolve
from engine.templates import render


@register
class Telegram(ActionType):
    name = "telegram"
    fields = {
        "chat_id": FieldSpec(form="recipients", required=True, address=CHAT),
        "text": REQUIRED_TEXT,
        "attachments": TEMPLATE_LIST,
    }
    per_recipient = "chat_id"
    after_crash = HOLD
    to_person = True
    replies_via = "telegram"
    url_guards = (ATTACHMENT_GUARD,)

    def render(self, fields, booking, context, recipient):
        return {"chat_id": resolve(fields["chat_id"][recipient], booking, context, CHAT),
                "text": render(fields["text"], context),
                "attachments": render_attachments(fields.get("attachments"), context)}

    def describe(self, rendered):
        return rendered["chat_id"]

    def conversation_address(self, rendered):
        return str(rendered["chat_id"])

    def channel(self, rendered):
        return "telegram"

    def message(self, rendered, *, stable_id, delivery_id):
        return {"chat_id": rendered["chat_id"], "text": rendered["text"],
                "attachments": tuple(rendered["attachments"])}
