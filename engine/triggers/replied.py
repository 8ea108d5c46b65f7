"""``customer_replied``: a customer answers an SMS, WhatsApp or Telegram message apptflow sent about an
appointment; ``replies`` narrows which answers count (trimmed, any case, accents ignored)."""

from __future__ import annotations

from db.codes import Received
from engine import keywords
from engine.replies import OPT_OUT_WORDS, normalise, reply_matches
from engine.triggers.base import Param, TriggerType, register

OPT_OUT_ANSWER = ("is an opt-out word: Twilio itself unsubscribes a number that sends it, and so does apptflow, "
                  "so it can never be an answer; ask for another (N, 2 or ANNULLA to cancel)")


@register
class CustomerReplied(TriggerType):
    name = "customer_replied"
    params = {"replies": Param(form="words")}
    keywords = keywords.REPLY
    within_conversation = True  # it answers the customer's own message

    def check(self, check, params):
        for index, word in enumerate(params.get("replies") or ()):
            if normalise(word) in OPT_OUT_WORDS:
                check.add(f"trigger.replies[{index}]", f"{word!r} {OPT_OUT_ANSWER}")

    def fired(self, event):
        if event.table_name != Received.REPLY:
            return None
        return {"reply_text": event.new["reply_text"], "reply_channel": event.new["reply_channel"]}

    def admits(self, trigger, context):
        return reply_matches(trigger.params.get("replies"), context["reply_text"])

    def sample(self, trigger, booking):
        from engine.actions import replied_via  # the action types register after the triggers

        return {"reply_text": (trigger.params.get("replies") or ("C",))[0],
                "reply_channel": next(iter(replied_via()), "")}
