"""``sms``: a text message to each number of ``to``, through Twilio or AWS SNS (``provider``)."""

from __future__ import annotations

from engine.actions.base import HOLD, REQUIRED_TEXT, ActionType, FieldSpec, register
from engine.recipients import PHONE, resolve
from engine.templates import render

# The channel of each provider; the first is the default.
PROVIDERS = {"twilio": "twilio-sms", "sns": "sns-sms"}


@register
class Sms(ActionType):
    name = "sms"
    fields = {
        "provider": FieldSpec(form="choice", choices=tuple(PROVIDERS)),
        "to": FieldSpec(form="recipients", required=True, address=PHONE),
        "body": REQUIRED_TEXT,
    }
    per_recipient = "to"
    after_crash = HOLD  # a second text is a nuisance nobody can recognise as a repeat
    to_person = True
    optout_channel = "sms"
    replies_via = "twilio"

    def render(self, fields, booking, context, recipient):
        return {"to": resolve(fields["to"][recipient], booking, context, PHONE),
                "body": render(fields["body"], context),
                "provider": fields.get("provider", next(iter(PROVIDERS)))}

    def describe(self, rendered):
        return rendered["to"]

    def conversation_address(self, rendered):
        return rendered["to"]

    def channel(self, rendered):
        return PROVIDERS[rendered.get("provider") or next(iter(PROVIDERS))]

    def message(self, rendered, *, stable_id, delivery_id):
        return {"to": rendered["to"], "body": rendered["body"]}
