"""What comes back, recorded: delivery receipts, customers' messages, opt-outs, refusals.

Everything is written to the database in one transaction per thing received, and what sets off a
workflow (a reply, a message not delivered) is queued there as a change event for the leading
instance's consumer. So any instance may receive (the HTTP endpoint behind a load balancer), a
restart loses nothing, and Twilio sending a request twice records it once.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Connection, Engine

from channels import ChannelError, RecipientOptedOut
from channels.telegram import TelegramChannel
from channels.twilio_sms import SECTION as TWILIO_SECTION
from db import deliveries
from db import inbound as store
from db.codes import InboundOutcome, Received
from db.records import Delivery
from engine.actions import action_type, replied_via
from engine.replies import FAILED, STATUS_RANKS, is_opt_in, is_opt_out, reply_event, undelivered_event
from scheduler.metrics import Metrics

logger = logging.getLogger(__name__)

# Where replies come through, by their provider's configuration section (ActionType.replies_via).
TWILIO, TELEGRAM = TWILIO_SECTION.name, TelegramChannel.section.name


@dataclass(frozen=True, slots=True, kw_only=True)
class Heard:
    """What a received message was taken as."""

    outcome: InboundOutcome | None  # None: a repeat of a message recorded before
    appointment_id: int | None = None


class Conversation:
    """Records receipts and messages; *poke* wakes this process's consumer when it queued an event."""

    def __init__(self, engine: Engine, *, reply_window: dt.timedelta, metrics: Metrics | None = None,
                 poke: Callable[[], None] = lambda: None):
        self.engine = engine
        self.reply_window = reply_window
        self.metrics = metrics or Metrics()
        self.poke = poke

    # --- receipts -------------------------------------------------------------------------------------

    def receipt(self, *, provider_id: str, status: str, error: str | None, now: dt.datetime) -> bool:
        """A status callback: the delivery sent as *provider_id* is now *status* (with *error*, "30003: ...").

        Returns whether it changed anything: an earlier state arriving late, or a repeat, changes
        nothing. The first undelivered or failed receipt queues a message_undelivered event.
        """
        if status not in STATUS_RANKS:
            logger.info("receipt for %s: status %r is not one apptflow follows; ignored", provider_id, status)
            return False
        queued = False
        with self.engine.begin() as conn:
            delivery, changed = store.record_receipt(
                conn, provider_id=provider_id, status=status, error=error, now=now, ranks=STATUS_RANKS,
                action_types=replied_via(TWILIO))
            if delivery is not None and changed and status in FAILED:
                queued = _queue_undelivered(conn, delivery, error, now)
        if delivery is None:
            logger.info("receipt for %s (%s): no delivery was sent with that id", provider_id, status)
            return False
        self.metrics.receipt(delivery.action_type, status)
        logger.info("delivery %s: the provider says %s%s%s", delivery.id, status, f" ({error})" if error else "",
                    "" if changed else " (no change: a repeat, or later than it is)",
                    extra={"delivery": delivery.id})
        if queued:
            self.poke()
        return changed

    # --- messages -------------------------------------------------------------------------------------

    def message(self, *, source: str, channel: str, sender: str, body: str, provider_id: str,
                now: dt.datetime) -> Heard:
        """A message from *sender* on *channel* (sms, whatsapp, telegram), received through *source*
        (twilio, telegram): an opt-out or opt-in word, a reply to the last message sent to the sender
        within the reply window, or unmatched (recorded, answered with nothing)."""
        with self.engine.begin() as conn:
            heard = self._hear(conn, source, channel, sender, body, provider_id, now)
        if heard.outcome is None:
            logger.info("message %s from %s was received before; ignored", provider_id, sender)
            return heard
        self.metrics.replied(channel, heard.outcome)
        logger.info("%s message from %s: %s%s", channel, sender, heard.outcome,
                    f" (appointment {heard.appointment_id})" if heard.appointment_id else "",
                    extra={"appointment": heard.appointment_id} if heard.appointment_id else {})
        if heard.appointment_id is not None:
            self.poke()
        return heard

    def _hear(self, conn: Connection, source: str, channel: str, sender: str, body: str, provider_id: str,
              now: dt.datetime) -> Heard:
        matched = store.last_sent_to(conn, [sender], replied_via(source), now - self.reply_window)
        outcome = InboundOutcome.REPLY if matched else InboundOutcome.UNMATCHED
        if source == TWILIO and is_opt_out(body):
            matched, outcome = None, InboundOutcome.OPT_OUT  # never an answer: Twilio unsubscribes it too
        elif source == TWILIO and is_opt_in(body):
            outcome = InboundOutcome.OPT_IN  # and, matched, an answer as well
        message_id = store.record_message(
            conn, channel=channel, sender=sender, body=body, provider_id=provider_id, outcome=outcome,
            delivery_id=matched.id if matched else None, appointment_id=matched.subject_id if matched else None,
            now=now)
        if message_id is None:
            return Heard(outcome=None)
        if outcome is InboundOutcome.OPT_OUT:
            if store.add_optout(conn, channel, sender, now, f"replied {body.strip()!r}"):
                self.metrics.opted(channel, "out")
        elif outcome is InboundOutcome.OPT_IN:
            if store.remove_optout(conn, channel, sender):
                self.metrics.opted(channel, "in")
        if matched is None:
            return Heard(outcome=outcome)
        store.queue_received(conn, Received.REPLY, message_id, reply_event(matched, channel=channel, text=body),
                             depth=0, now=now)
        return Heard(outcome=outcome, appointment_id=matched.subject_id)


def _queue_undelivered(conn: Connection, delivery: Delivery, error: str | None, now: dt.datetime) -> bool:
    code, _, reason = (error or "").partition(": ")
    new = undelivered_event(delivery, channel=delivery.action_type, code=code or None,
                            reason=reason or "not delivered",
                            workflow_name=store.workflow_name(conn, delivery.workflow_id))
    if new is None:
        return False
    store.queue_received(conn, Received.UNDELIVERED, delivery.id, new, depth=delivery.depth, now=now)
    return True


def refusal_followups(delivery: Delivery, address: str | None, error: ChannelError,
                      now: dt.datetime) -> tuple[Callable[[Connection], None], ...]:
    """What a send refused for good writes with its outcome: its provider status ``failed``, the number on
    the opt-out list when the provider says the recipient unsubscribed, and a message_undelivered event."""
    kind = action_type(delivery.action_type)
    if not kind.to_person:
        return ()
    code = error.code
    reason = str(error)
    recorded = f"{code}: {reason}" if code else reason

    def failed(conn: Connection) -> None:
        deliveries.mark_refused(conn, delivery.id, recorded, now)
        new = undelivered_event(delivery, channel=delivery.action_type, code=code, reason=reason,
                                workflow_name=store.workflow_name(conn, delivery.workflow_id))
        if new is not None:
            store.queue_received(conn, Received.UNDELIVERED, delivery.id, new, depth=delivery.depth, now=now)

    def opted_out(conn: Connection) -> None:
        store.add_optout(conn, kind.optout_channel, address, now, f"twilio error {code}: the recipient unsubscribed")

    if isinstance(error, RecipientOptedOut) and kind.optout_channel and address:
        return failed, opted_out
    return (failed,)


def optout_refusal(conn: Connection, channel: str, address: str | None) -> str | None:
    """Why a message to *address* on *channel* must not be sent (it is on the opt-out list), or None."""
    if not address:
        return None
    found = store.opted_out(conn, channel, address)
    if found is None:
        return None
    return f"{address} is on the {channel} opt-out list since {found.since:%Y-%m-%d %H:%M} UTC ({found.reason})"
