"""What comes back from a customer and a provider: replies compared as people mean them, the opt-out
words, the order of a message's provider statuses, and the events they set off. Pure functions."""

from __future__ import annotations

import unicodedata
from typing import Any

from db.records import Delivery

# Twilio's default opt-out and opt-in words (Advanced Opt-Out's defaults): Twilio acts on them itself for a
# long code, so apptflow keeps the same list and never takes them for an answer.
OPT_OUT_WORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit"})
OPT_IN_WORDS = frozenset({"start", "unstop", "yes"})

# A message's provider statuses in the order they happen; a receipt never moves a delivery back. Final
# states share the last rank but one (the first to arrive stands); WhatsApp's `read` comes after `delivered`.
STATUS_RANKS = {"accepted": 0, "scheduled": 0, "queued": 1, "sending": 2, "sent": 3, "delivered": 4,
                "undelivered": 4, "failed": 4, "canceled": 4, "read": 5}
FAILED = ("undelivered", "failed")
# The occurrence of a message sent by a message_undelivered workflow ends so (engine/matching.py): its
# own failure sets nothing off, or a fallback to an unreachable number would fall back forever.
_FALLBACK_OCCURRENCE = ":message_undelivered"


def normalise(text: str) -> str:
    """*text* as an answer is compared: trimmed, case folded, accents dropped (``" Sì "`` → ``"si"``)."""
    decomposed = unicodedata.normalize("NFKD", text.strip().casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def is_opt_out(text: str) -> bool:
    return normalise(text) in OPT_OUT_WORDS


def is_opt_in(text: str) -> bool:
    return normalise(text) in OPT_IN_WORDS


def reply_matches(wanted: tuple[str, ...] | None, text: str) -> bool:
    """Whether a reply *text* is one of the *wanted* answers (None: any reply)."""
    return wanted is None or normalise(text) in {normalise(word) for word in wanted}


def reply_event(delivery: Delivery, *, channel: str, text: str) -> dict[str, Any]:
    """What a reply to *delivery* queues for the customer_replied trigger."""
    return {"appointment_id": delivery.subject_id, "delivery_id": delivery.id, "reply_text": text,
            "reply_channel": channel}


def undelivered_event(delivery: Delivery, *, channel: str, code: str | None, reason: str,
                      workflow_name: str | None) -> dict[str, Any] | None:
    """What a message not delivered queues for the message_undelivered trigger; None when it sets off
    nothing: it was about no appointment, or it was itself a fallback."""
    if delivery.subject_table != "appointments" or delivery.occurrence.endswith(_FALLBACK_OCCURRENCE):
        return None
    return {"appointment_id": delivery.subject_id, "delivery_id": delivery.id, "failed_channel": channel,
            "failure_code": code or "", "failure_reason": reason, "failed_workflow_id": delivery.workflow_id,
            "failed_workflow": workflow_name or ""}
