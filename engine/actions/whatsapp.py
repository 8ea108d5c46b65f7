"""``whatsapp``: a WhatsApp message through Twilio to each number of ``to``, with optional media URLs."""

from __future__ import annotations

from engine.actions.base import HOLD, REQUIRED_TEMPLATE, TEMPLATE_LIST, ActionType, FieldSpec, register
from engine.recipients import PHONE, resolve
from engine.templates import render


@register
class WhatsApp(ActionType):
    name = "whatsapp"
    fields = {
        "to": FieldSpec(form="recipients", required=True, address=PHONE),
        "body": REQUIRED_TEMPLATE,
        "media": TEMPLATE_LIST,
    }
    per_recipient = "to"
    after_crash = HOLD

    def render(self, fields, booking, context, recipient):
        return {"to": resolve(fields["to"][recipient], booking, context, PHONE),
                "body": render(fields["body"], context),
                "media": [render(m, context).strip() for m in fields.get("media", ())]}

    def describe(self, rendered):
        return rendered["to"]

    def channel(self, rendered):
        return "twilio-whatsapp"

    def message(self, rendered, *, stable_id, delivery_id):
        return {"to": rendered["to"], "body": rendered["body"], "media": tuple(rendered["media"])}
