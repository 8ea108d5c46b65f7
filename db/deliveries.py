"""Queries on ``deliveries``: the outbox and the delivery history."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from db.errors import NotFound
from db.records import Delivery
from db.tables import deliveries

# States a delivery can be in; the last four are final unless an admin retries.
PENDING, SENDING, SENT, DEAD, UNKNOWN, SKIPPED, MISSED = (
    "pending", "sending", "sent", "dead", "unknown", "skipped", "missed")


def _delivery(row) -> Delivery:
    return Delivery(**row._mapping)


def insert_deliveries(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert outbox rows, ignoring those whose idempotency key exists; return how many were new."""
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (dialect.insert(deliveries).on_conflict_do_nothing(index_elements=["idempotency_key"])
                 .returning(deliveries.c.id))
    # one by one: which rows of a multi-row insert ... on conflict were new is not portable
    return sum(len(conn.execute(statement.values(**row)).all()) for row in rows)


def claim_due(conn: Connection, now: dt.datetime, lease: dt.timedelta) -> Delivery | None:
    """Take the next due pending delivery: mark it sending under a lease and count the attempt."""
    due = (
        select(deliveries.c.id)
        .where(deliveries.c.status == PENDING, deliveries.c.next_attempt_at <= now)
        .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    row = conn.execute(
        update(deliveries)
        .where(deliveries.c.id == due.scalar_subquery())
        .values(status=SENDING, lease_until=now + lease, attempts=deliveries.c.attempts + 1, updated_at=now)
        .returning(*deliveries.c)
    ).one_or_none()
    return _delivery(row) if row else None


def _finish(conn: Connection, delivery_id: int, now: dt.datetime, **values: Any) -> None:
    conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.status == SENDING)
        .values(lease_until=None, updated_at=now, **values)
    )


def mark_sent(conn: Connection, delivery_id: int, now: dt.datetime, *, provider_id: str | None,
              rendered: Any, recipients: str | None) -> None:
    """Record a successful send."""
    _finish(conn, delivery_id, now, status=SENT, provider_id=provider_id, rendered=rendered,
            recipients=recipients, sent_at=now, error=None)


def mark_retry(conn: Connection, delivery_id: int, now: dt.datetime, *, at: dt.datetime, error: str,
               rendered: Any = None, recipients: str | None = None) -> None:
    """Record a transient failure and when to try again."""
    _finish(conn, delivery_id, now, status=PENDING, next_attempt_at=at, error=error,
            rendered=rendered, recipients=recipients)


def mark_final(conn: Connection, delivery_id: int, now: dt.datetime, *, status: str, error: str,
               rendered: Any = None, recipients: str | None = None) -> None:
    """Record that a delivery is dead or skipped, with the reason."""
    _finish(conn, delivery_id, now, status=status, error=error, rendered=rendered, recipients=recipients)


def reclaim_expired(conn: Connection, now: dt.datetime) -> tuple[int, int]:
    """Deliveries left sending by a crashed worker: resend or hold as unknown; return (resent, held)."""
    expired = and_(deliveries.c.status == SENDING, deliveries.c.lease_until < now)
    resent = conn.execute(
        update(deliveries).where(expired, deliveries.c.after_crash == "resend")
        .values(status=PENDING, next_attempt_at=now, lease_until=None, updated_at=now,
                error="resent: the previous attempt was interrupted")
    ).rowcount
    held = conn.execute(
        update(deliveries).where(expired, deliveries.c.after_crash != "resend")
        .values(status=UNKNOWN, lease_until=None, updated_at=now,
                error="interrupted while sending: it may or may not have gone out; "
                      "`apptflow retry` sends it again")
    ).rowcount
    return resent, held


def release(conn: Connection, delivery_id: int, now: dt.datetime) -> None:
    """Give back a claimed delivery that was not attempted (the daemon is stopping)."""
    _finish(conn, delivery_id, now, status=PENDING, attempts=deliveries.c.attempts - 1)


def skip_pending_of_workflow(conn: Connection, workflow_id: int, now: dt.datetime, reason: str) -> int:
    """Mark a workflow's not-yet-sent deliveries skipped; sent ones are history and stay."""
    return conn.execute(
        update(deliveries)
        .where(deliveries.c.workflow_id == workflow_id, deliveries.c.status == PENDING)
        .values(status=SKIPPED, error=reason, updated_at=now)
    ).rowcount


def requeue(conn: Connection, delivery_id: int, now: dt.datetime) -> Delivery:
    """Send a dead, unknown or skipped delivery again, now, with a fresh attempt count."""
    row = conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.status.in_((DEAD, UNKNOWN, SKIPPED, MISSED)))
        .values(status=PENDING, attempts=0, next_attempt_at=now, updated_at=now)
        .returning(*deliveries.c)
    ).one_or_none()
    if row is None:
        exists = conn.execute(select(deliveries.c.status).where(deliveries.c.id == delivery_id)).scalar()
        if exists is None:
            raise NotFound(f"no delivery with id {delivery_id}")
        raise NotFound(f"delivery {delivery_id} is {exists}: only dead, unknown, skipped or missed "
                       "deliveries can be retried")
    return _delivery(row)


def get_delivery(conn: Connection, delivery_id: int) -> Delivery:
    """One delivery; NotFound if there is none."""
    row = conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).one_or_none()
    if row is None:
        raise NotFound(f"no delivery with id {delivery_id}")
    return _delivery(row)


def history(conn: Connection, *, workflow_id: int | None = None, appointment_id: int | None = None,
            status: str | None = None, limit: int = 50) -> list[Delivery]:
    """The newest deliveries first, optionally for one workflow, appointment or status."""
    query = select(deliveries).order_by(deliveries.c.id.desc()).limit(limit)
    if workflow_id is not None:
        query = query.where(deliveries.c.workflow_id == workflow_id)
    if appointment_id is not None:
        query = query.where(deliveries.c.subject_table == "appointments",
                            deliveries.c.subject_id == appointment_id)
    if status is not None:
        query = query.where(deliveries.c.status == status)
    return [_delivery(row) for row in conn.execute(query)]


def counts_by_status(conn: Connection) -> dict[str, int]:
    """How many deliveries are in each state."""
    query = select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
    return {status: count for status, count in conn.execute(query)}


def next_due(conn: Connection) -> dt.datetime | None:
    """When the earliest pending delivery falls due, if any is pending."""
    value = conn.execute(
        select(deliveries.c.next_attempt_at).where(deliveries.c.status == PENDING)
        .order_by(deliveries.c.next_attempt_at).limit(1)
    ).scalar()
    return value
