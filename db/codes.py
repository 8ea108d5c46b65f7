"""The words apptflow writes in its own tables' code columns, as enums.

They are ``StrEnum`` members: each compares equal to, and is stored and printed
as, the very string the database holds (``DeliveryStatus.SENT == "sent"``), so
a value read back from a column needs no conversion to be compared.
"""

from __future__ import annotations

from enum import StrEnum


class DeliveryStatus(StrEnum):
    """The state of a delivery (``deliveries.status``), and what an attempt at one came to.

    ``LOST`` is never stored: it is the outcome of an attempt whose lease ended
    before its outcome was recorded, so another attempt owns the row (and its
    record stands) or will. Workers report it and the metrics count it.
    """

    PENDING = "pending"  # waiting for its time: new, or a transient failure's retry
    SENDING = "sending"  # claimed by a worker, under a lease
    SENT = "sent"
    DEAD = "dead"  # a permanent error, or the last attempt failed
    UNKNOWN = "unknown"  # a `hold` send interrupted by a crash: it may or may not have gone out
    SKIPPED = "skipped"  # no longer applies, or planned too late
    MISSED = "missed"  # a time-offset firing the daemon was down for beyond its grace
    LOST = "lost"  # an attempt's outcome only (see above)


# What a deliveries row can hold, and what `apptflow retry` sends again.
STORED_STATUSES = tuple(status for status in DeliveryStatus if status is not DeliveryStatus.LOST)
RETRYABLE_STATUSES = (DeliveryStatus.DEAD, DeliveryStatus.UNKNOWN, DeliveryStatus.SKIPPED, DeliveryStatus.MISSED)


class Operation(StrEnum):
    """What a captured change did to its row (``change_events.op``, as the capture triggers write it)."""

    INSERT = "INSERT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


class CapturedTable(StrEnum):
    """A table whose changes are captured (``change_events.table_name``); the first two are also what a
    delivery is about (``deliveries.subject_table``)."""

    APPOINTMENTS = "appointments"
    CUSTOMERS = "customers"
    WORKFLOWS = "workflows"
    WORKFLOW_ACTIONS = "workflow_actions"

    @property
    def singular(self) -> str:
        """One row of it, in a sentence: "appointment 12"."""
        return _SINGULAR[self]


_SINGULAR = {CapturedTable.APPOINTMENTS: "appointment", CapturedTable.CUSTOMERS: "customer",
             CapturedTable.WORKFLOWS: "workflow", CapturedTable.WORKFLOW_ACTIONS: "workflow action"}

WORKFLOW_TABLES = (CapturedTable.WORKFLOWS, CapturedTable.WORKFLOW_ACTIONS)


class Received(StrEnum):
    """What the daemon received and queues in ``change_events`` itself, under the name of the table of the
    row it concerns (``table_name``; ``row_id`` is that row's id). Its ``new`` values hold the appointment
    concerned (``appointment_id``) and what the trigger adds; the consumer handles it like a captured change."""

    REPLY = "inbound_messages"  # INSERT: a customer's reply, matched to an appointment
    UNDELIVERED = "deliveries"  # UPDATE: a message not delivered (a receipt) or refused for good


RECEIVED_TABLES = frozenset(Received)


class InboundOutcome(StrEnum):
    """What a received message was taken as (``inbound_messages.outcome``)."""

    REPLY = "reply"  # matched to the appointment of the last message sent to its sender
    UNMATCHED = "unmatched"  # nothing was sent to its sender within the reply window
    OPT_OUT = "opt_out"  # STOP and its synonyms
    OPT_IN = "opt_in"  # START and its synonyms
