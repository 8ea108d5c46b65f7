"""``whatsapp``: a WhatsApp message through Twilio to each number of ``to``: free text (``body``, with
optional media URLs) or an approved template (``content_sid`` with ``content_variables``).

WhatsApp delivers free text only within 24 hours of the customer's last message to the business;
anything else must be a template the business had approved (Twilio's error 63016 otherwise).
"""

from __future__ import annotations

from engine.actions.base import HOLD, TEMPLATE_LIST, TEXT, ActionType, FieldSpec, register
from engine.recipients import PHONE, resolve
from engine.templates import render

WINDOW_WARNING = ("free-text WhatsApp is delivered only within 24 hours of the customer's last message; "
                  "from this trigger WhatsApp will refuse it (Twilio error 63016) unless the customer wrote "
                  "just before: send an approved template with content_sid and content_variables instead")


@register
class WhatsApp(ActionType):
    name = "whatsapp"
    fields = {
        "to": FieldSpec(form="recipients", required=True, address=PHONE),
        "body": TEXT,
        # A Content API template (HX + 32 hex digits), or one per locale.
        "content_sid": FieldSpec(form="literal", pattern=r"HX[0-9a-fA-F]{32}", variants=True,
                                 example="a Twilio content template id (HX and 32 hexadecimal digits)"),
        "content_variables": FieldSpec(form="variables", variants=True),
        "media": TEMPLATE_LIST,
    }
    per_recipient = "to"
    after_crash = HOLD
    to_person = True
    optout_channel = "whatsapp"
    replies_via = "twilio"

    def check(self, check, fields, place, known):
        if ("body" in fields) == ("content_sid" in fields):
            check.add(place, "give 'body' (free text) or 'content_sid' (an approved template), one of them")
        if "content_variables" in fields and "content_sid" not in fields:
            check.add(f"{place}.content_variables", "fills an approved template: give 'content_sid' too")
        if "media" in fields and "content_sid" in fields:
            check.add(f"{place}.media", "an approved template brings its own media: give media with 'body' only")

    def advise(self, fields, trigger):
        if "body" in fields and not trigger.within_conversation:
            return [("body", WINDOW_WARNING)]
        return []

    def render(self, fields, booking, context, recipient):
        to = resolve(fields["to"][recipient], booking, context, PHONE)
        if fields.get("content_sid"):
            return {"to": to, "content_sid": fields["content_sid"],
                    "content_variables": {k: render(v, context) for k, v in fields.get("content_variables", {}).items()}}
        return {"to": to, "body": render(fields["body"], context),
                "media": [render(m, context).strip() for m in fields.get("media", ())]}

    def describe(self, rendered):
        return rendered["to"]

    def conversation_address(self, rendered):
        to = rendered["to"]
        return to[len("whatsapp:"):] if to.startswith("whatsapp:") else to

    def channel(self, rendered):
        return "twilio-whatsapp"

    def message(self, rendered, *, stable_id, delivery_id):
        if rendered.get("content_sid"):
            return {"to": rendered["to"], "content_sid": rendered["content_sid"],
                    "content_variables": dict(rendered.get("content_variables") or {})}
        return {"to": rendered["to"], "body": rendered["body"], "media": tuple(rendered["media"])}
