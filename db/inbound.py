"""Queries of the conversation: receipts on deliveries, received messages, the opt-out list, polling offsets.

Whatever an instance receives is written here, in the database, so that any
instance may serve the inbound endpoint and a restart loses nothing. What sets
off a workflow is queued in ``change_events`` (:class:`db.codes.Received`) in
the same transaction, and the leading instance consumes it like a captured
change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import case, delete, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from db.codes import CapturedTable, DeliveryStatus, Received
from db.records import Delivery, InboundMessage, OptOut
from db.servers import server_for
from db.tables import change_events, deliveries, inbound_messages, inbound_offsets, optouts, workflows


def _delivery(row) -> Delivery:
    return Delivery(**row._mapping)


# --- receipts -------------------------------------------------------------------------------------------

def record_receipt(conn: Connection, *, provider_id: str, status: str, error: str | None, now: dt.datetime,
                   ranks: Mapping[str, int], action_types: Collection[str]) -> tuple[Delivery | None, bool]:
    """Set the provider status of the delivery sent as *provider_id* (of one of *action_types*), unless it
    holds a later one already (by *ranks*; an equal rank is a repeat and changes nothing).

    Returns (the delivery as it is now, or None when no delivery has that id; whether this changed it).
    The condition is in the UPDATE itself, so callbacks handled at once by several instances cannot
    overwrite a later state with an earlier one.
    """
    target = (deliveries.c.provider_id == provider_id, deliveries.c.action_type.in_(list(action_types)))
    rank = case(dict(ranks), value=deliveries.c.provider_status, else_=-1)
    changed = conn.execute(
        update(deliveries).where(*target, or_(deliveries.c.provider_status.is_(None), rank < ranks[status]))
        .values(provider_status=status, provider_error=error, provider_updated_at=now)
    ).rowcount
    row = conn.execute(select(deliveries).where(*target).order_by(deliveries.c.id).limit(1)).first()
    return (_delivery(row) if row is not None else None), bool(changed) and row is not None


def queue_received(conn: Connection, kind: Received, row_id: int, new: dict[str, Any], *, depth: int,
                   now: dt.datetime) -> None:
    """Queue something received as a change event for the consumer (a reply, a message not delivered), in
    the partition of the appointment it is about."""
    op = "INSERT" if kind is Received.REPLY else "UPDATE"
    conn.execute(insert(change_events).values(table_name=kind.value, row_id=row_id, op=op, old=None, new=new,
                                              depth=depth, created_at=now,
                                              partition_key=int(new["appointment_id"])))
    server = server_for(conn)
    if server.notify:
        server.notify_consumer(conn, kind.value)


def workflow_name(conn: Connection, workflow_id: int) -> str | None:
    """The name of a workflow (a message_undelivered workflow may watch another by name)."""
    return conn.execute(select(workflows.c.name).where(workflows.c.id == workflow_id)).scalar()


# --- received messages ----------------------------------------------------------------------------------

def last_sent_to(conn: Connection, addresses: Collection[str], action_types: Collection[str],
                 since: dt.datetime) -> Delivery | None:
    """The latest message about an appointment sent to one of *addresses* by one of *action_types* since
    *since*: the one a message from that address answers."""
    query = (select(deliveries)
             .where(deliveries.c.address.in_(list(addresses)), deliveries.c.action_type.in_(list(action_types)),
                    deliveries.c.status == DeliveryStatus.SENT, deliveries.c.sent_at >= since,
                    deliveries.c.subject_table == CapturedTable.APPOINTMENTS)
             .order_by(deliveries.c.sent_at.desc(), deliveries.c.id.desc()).limit(1))
    row = conn.execute(query).first()
    return _delivery(row) if row is not None else None


def record_message(conn: Connection, *, channel: str, sender: str, body: str, provider_id: str, outcome: str,
                   delivery_id: int | None, appointment_id: int | None, now: dt.datetime) -> int | None:
    """Record a received message; its id, or None if a message with that provider id was recorded before
    (Twilio sends a request again when it got no answer in time)."""
    row = {"channel": channel, "sender": sender, "body": body, "provider_id": provider_id, "outcome": outcome,
           "delivery_id": delivery_id, "appointment_id": appointment_id, "received_at": now}
    if not server_for(conn).insert_new(conn, inbound_messages, [row], "provider_id"):
        return None
    return conn.execute(select(inbound_messages.c.id)
                        .where(inbound_messages.c.provider_id == provider_id)).scalar_one()


def received(conn: Connection, *, limit: int = 50, unmatched: bool = False) -> list[InboundMessage]:
    """The messages received, newest first (with *unmatched*, only those that matched no appointment)."""
    query = select(inbound_messages).order_by(inbound_messages.c.id.desc()).limit(limit)
    if unmatched:
        query = query.where(inbound_messages.c.outcome == "unmatched")
    return [InboundMessage(**row._mapping) for row in conn.execute(query)]


# --- the opt-out list -----------------------------------------------------------------------------------

def opted_out(conn: Connection, channel: str, address: str) -> OptOut | None:
    """The opt-out of *address* on *channel*, if it is on the list."""
    row = conn.execute(select(optouts).where(optouts.c.channel == channel, optouts.c.address == address)).first()
    return OptOut(**row._mapping) if row is not None else None


def add_optout(conn: Connection, channel: str, address: str, now: dt.datetime, reason: str) -> bool:
    """Put *address* on *channel*'s opt-out list; False if it was on it already (its date and reason stay)."""
    return _insert_once(conn, insert(optouts).values(channel=channel, address=address, since=now, reason=reason))


def remove_optout(conn: Connection, channel: str, address: str) -> bool:
    """Take *address* off *channel*'s opt-out list; False if it was not on it."""
    return conn.execute(delete(optouts).where(optouts.c.channel == channel,
                                              optouts.c.address == address)).rowcount > 0


def list_optouts(conn: Connection, channel: str | None = None) -> list[OptOut]:
    """The opt-out list, newest first."""
    query = select(optouts).order_by(optouts.c.since.desc(), optouts.c.channel, optouts.c.address)
    if channel is not None:
        query = query.where(optouts.c.channel == channel)
    return [OptOut(**row._mapping) for row in conn.execute(query)]


# --- polling offsets ------------------------------------------------------------------------------------

def read_offset(conn: Connection, source: str) -> int:
    """Where polling *source* goes on from (0: from what the source still holds)."""
    value = conn.execute(select(inbound_offsets.c.next_offset).where(inbound_offsets.c.source == source)).scalar()
    return value or 0


def save_offset(conn: Connection, source: str, offset: int, now: dt.datetime) -> None:
    """Remember that *source* goes on from *offset*."""
    done = conn.execute(update(inbound_offsets).where(inbound_offsets.c.source == source)
                        .values(next_offset=offset, updated_at=now)).rowcount
    if not done:
        _insert_once(conn, insert(inbound_offsets).values(source=source, next_offset=offset, updated_at=now))


def _insert_once(conn: Connection, statement) -> bool:
    """Run an INSERT of a row whose key may exist already (another instance's at the same moment); False
    if it did. In a savepoint, so the caller's transaction goes on either way."""
    try:
        with conn.begin_nested():
            conn.execute(statement)
    except IntegrityError:
        return False
    return True
