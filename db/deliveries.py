"""Queries on ``deliveries``: the outbox and the delivery history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.engine import Connection

from db.codes import RETRYABLE_STATUSES, CapturedTable, DeliveryStatus
from db.errors import NotFound
from db.records import Delivery
from db.servers import among, server_for
from db.tables import deliveries


def _delivery(row) -> Delivery:
    return Delivery(**row._mapping)


def insert_deliveries(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert outbox rows, ignoring those whose idempotency key exists; return how many were new.

    One statement for all the rows (SQLAlchemy sends them as multi-row VALUES, compiled once), in the
    server's own words: ``ON CONFLICT DO NOTHING ... RETURNING``, or MySQL's ``INSERT IGNORE``.
    """
    if not rows:
        return 0
    return server_for(conn).insert_new(conn, deliveries, rows, "idempotency_key")


def claim_due(conn: Connection, now: dt.datetime, lease: dt.timedelta) -> Delivery | None:
    """Take the next due pending delivery: mark it sending under a lease and count the attempt."""
    claimed = claim_due_batch(conn, now, lease, 1)
    return claimed[0] if claimed else None


def claim_due_batch(conn: Connection, now: dt.datetime, lease: dt.timedelta, limit: int,
                    keys: list[str] | None = None) -> list[Delivery]:
    """Take up to *limit* due pending deliveries, soonest due first, in one statement (see claim_due); only
    those of idempotency *keys*, if given (the ones a consumer has just written, to hand to a worker)."""
    due = (
        select(deliveries.c.id)
        .where(deliveries.c.status == DeliveryStatus.PENDING, deliveries.c.next_attempt_at <= now,
               *([among(conn, deliveries.c.idempotency_key, keys)] if keys is not None else []))
        .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claim = (update(deliveries)
             .values(status=DeliveryStatus.SENDING, lease_until=now + lease, attempts=deliveries.c.attempts + 1,
                     updated_at=now))
    if server_for(conn).update_returning:
        rows = conn.execute(claim.where(deliveries.c.id.in_(due.scalar_subquery())).returning(*deliveries.c)).all()
    else:
        rows = _update_locked(conn, claim, list(conn.execute(due).scalars()))
    return sorted((_delivery(row) for row in rows), key=lambda d: (d.next_attempt_at, d.id))


def _update_locked(conn: Connection, statement, ids: list[int]) -> list:
    """*statement* on the rows *ids*, which this transaction has locked, and those rows as it left them
    (MySQL/MariaDB: no UPDATE ... RETURNING, and no subquery on the table being updated)."""
    if not ids:
        return []
    conn.execute(statement.where(deliveries.c.id.in_(ids)))
    return conn.execute(select(deliveries).where(deliveries.c.id.in_(ids))).all()


def release(conn: Connection, claim: Delivery, now: dt.datetime) -> bool:
    """Give back a claimed delivery that was not attempted: pending again, the attempt uncounted."""
    return _finish(conn, claim, now, status=DeliveryStatus.PENDING, attempts=claim.attempts - 1)


def defer(conn: Connection, claim: Delivery, now: dt.datetime, *, at: dt.datetime, note: str,
          context: dict[str, Any]) -> bool:
    """Give back a claimed delivery due outside its send window: pending until *at*, the attempt uncounted,
    *note* saying why and *context* keeping it."""
    return _finish(conn, claim, now, status=DeliveryStatus.PENDING, attempts=claim.attempts - 1, next_attempt_at=at,
                   error=note, context=context)


def next_due_at(conn: Connection) -> dt.datetime | None:
    """When the soonest pending delivery is due (a retry, one waiting for its send window), if any."""
    return conn.execute(select(func.min(deliveries.c.next_attempt_at))
                        .where(deliveries.c.status == DeliveryStatus.PENDING)).scalar()


def _finish(conn: Connection, claim: Delivery, now: dt.datetime, **values: Any) -> bool:
    """Record an attempt's outcome, if the attempt still owns the row; False if its lease was lost.

    The attempt count fences the row: after a lease expires and another worker
    claims the delivery, the first worker's late outcome no longer matches.
    """
    return conn.execute(
        update(deliveries)
        .where(deliveries.c.id == claim.id, deliveries.c.status == DeliveryStatus.SENDING,
               deliveries.c.attempts == claim.attempts)
        .values(lease_until=None, updated_at=now, **values)
    ).rowcount == 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Finished:
    """An attempt's outcome, to record: the claim it ends, when, and the columns it sets."""

    claim: Delivery
    at: dt.datetime
    values: dict[str, Any]
    # Writes that belong with the outcome, made in its transaction only if the attempt still owns the row
    # (a refused number put on the opt-out list, a message_undelivered event queued).
    followups: tuple[Callable[[Connection], None], ...] = ()


def sent(claim: Delivery, now: dt.datetime, *, provider_id: str | None, rendered: Any,
         recipients: str | None, address: str | None = None) -> Finished:
    """A successful send (*address*: the number or chat id a reply to it would come from)."""
    return Finished(claim=claim, at=now, values={"status": DeliveryStatus.SENT, "provider_id": provider_id,
                                                 "rendered": rendered, "recipients": recipients, "sent_at": now,
                                                 "error": None, "address": address})


def retry(claim: Delivery, now: dt.datetime, *, at: dt.datetime, error: str, rendered: Any = None,
          recipients: str | None = None) -> Finished:
    """A transient failure, and when to try again."""
    return Finished(claim=claim, at=now, values={"status": DeliveryStatus.PENDING, "next_attempt_at": at,
                                                 "error": error, "rendered": rendered, "recipients": recipients})


def final(claim: Delivery, now: dt.datetime, *, status: DeliveryStatus, error: str, rendered: Any = None,
          recipients: str | None = None, followups: tuple[Callable[[Connection], None], ...] = ()) -> Finished:
    """A delivery dead or skipped, with the reason."""
    return Finished(claim=claim, at=now, values={"status": status, "error": error, "rendered": rendered,
                                                 "recipients": recipients}, followups=followups)


def mark_sent(conn: Connection, claim: Delivery, now: dt.datetime, **outcome: Any) -> bool:
    """Record a successful send (see sent)."""
    return _record(conn, sent(claim, now, **outcome))


def mark_retry(conn: Connection, claim: Delivery, now: dt.datetime, **outcome: Any) -> bool:
    """Record a transient failure and when to try again (see retry)."""
    return _record(conn, retry(claim, now, **outcome))


def mark_final(conn: Connection, claim: Delivery, now: dt.datetime, **outcome: Any) -> bool:
    """Record that a delivery is dead or skipped, with the reason (see final)."""
    return _record(conn, final(claim, now, **outcome))


def _record(conn: Connection, finished: Finished) -> bool:
    owned = _finish(conn, finished.claim, finished.at, **finished.values)
    if owned:
        for followup in finished.followups:
            followup(conn)
    return owned


def record_outcome(conn: Connection, finished: Finished, *, again: bool = False) -> bool:
    """Record one outcome in one statement; whether its attempt still owned the row.

    With *again* (an earlier try's connection broke, maybe after its commit had
    landed), a row that already holds exactly this outcome counts as recorded too.
    """
    return _record(conn, finished) or (again and _landed(conn, finished))


def _landed(conn: Connection, finished: Finished) -> bool:
    row = conn.execute(select(deliveries.c.attempts, deliveries.c.status, deliveries.c.updated_at,
                              deliveries.c.lease_until).where(deliveries.c.id == finished.claim.id)).one_or_none()
    return (row is not None and row.lease_until is None and row.attempts == finished.claim.attempts
            and row.updated_at == finished.at and row.status == finished.values["status"])


# Every column an outcome may set; finish_many writes them all, the claim's own value where an
# outcome leaves one alone (the attempt owns the row, so that value is the row's).
_OUTCOME_COLUMNS = ("status", "provider_id", "rendered", "recipients", "sent_at", "next_attempt_at", "error",
                    "address")
_WRITE_OUTCOME = (
    update(deliveries).where(deliveries.c.id == bindparam("b_id"))
    .values(lease_until=None, updated_at=bindparam("b_updated_at"),
            **{column: bindparam(f"b_{column}") for column in _OUTCOME_COLUMNS})
)


def finish_many(conn: Connection, finished: list[Finished], *, again: bool = False) -> set[int]:
    """Record many outcomes; return the ids of those whose attempt still owned its row.

    The rows still owned (status sending, same attempt count) are locked
    first, so the writes that follow, sent together as one executemany,
    cannot race a reclaim; an outcome whose lease was lost is left unwritten.
    With *again* (an earlier try's connection broke, maybe after its commit
    had landed), a row that already holds exactly this outcome counts as
    recorded too.
    """
    if not finished:
        return set()
    by_id = {f.claim.id: f for f in finished}
    rows = conn.execute(
        select(deliveries.c.id, deliveries.c.attempts, deliveries.c.status, deliveries.c.updated_at,
               deliveries.c.lease_until)
        .where(deliveries.c.id.in_(sorted(by_id)))
        .order_by(deliveries.c.id).with_for_update()
    ).all()
    owned = {row.id for row in rows
             if row.status == DeliveryStatus.SENDING and row.attempts == by_id[row.id].claim.attempts}
    landed = {row.id for row in rows if again and row.id not in owned and row.lease_until is None
              and row.attempts == by_id[row.id].claim.attempts and row.updated_at == by_id[row.id].at
              and row.status == by_id[row.id].values["status"]}
    if owned:
        conn.execute(_WRITE_OUTCOME, [
            {"b_id": i, "b_updated_at": by_id[i].at,
             **{f"b_{c}": by_id[i].values.get(c, getattr(by_id[i].claim, c)) for c in _OUTCOME_COLUMNS}}
            for i in sorted(owned)])
        for i in sorted(owned):
            for followup in by_id[i].followups:
                followup(conn)
    return owned | landed


def mark_refused(conn: Connection, delivery_id: int, error: str, now: dt.datetime) -> None:
    """Record that the provider refused a delivery for good, as its provider status ``failed``."""
    conn.execute(update(deliveries).where(deliveries.c.id == delivery_id)
                 .values(provider_status="failed", provider_error=error, provider_updated_at=now))


def count_due(conn: Connection, now: dt.datetime) -> int:
    """How many deliveries are due and wait for a worker."""
    return conn.execute(select(func.count()).select_from(deliveries)
                        .where(deliveries.c.status == DeliveryStatus.PENDING, deliveries.c.next_attempt_at <= now)
                        ).scalar_one()


def reclaim_expired(conn: Connection, now: dt.datetime) -> tuple[int, int]:
    """Deliveries left sending by a crashed worker: resend or hold as unknown; return (resent, held)."""
    expired = and_(deliveries.c.status == DeliveryStatus.SENDING, deliveries.c.lease_until < now)
    resent = conn.execute(
        update(deliveries).where(expired, deliveries.c.after_crash == "resend")
        .values(status=DeliveryStatus.PENDING, next_attempt_at=now, lease_until=None, updated_at=now,
                error="resent: the previous attempt was interrupted")
    ).rowcount
    held = conn.execute(
        update(deliveries).where(expired, deliveries.c.after_crash != "resend")
        .values(status=DeliveryStatus.UNKNOWN, lease_until=None, updated_at=now,
                error="interrupted while sending: it may or may not have gone out; "
                      "`apptflow retry` sends it again")
    ).rowcount
    return resent, held


def skip_pending_of_workflow(conn: Connection, workflow_id: int, now: dt.datetime, reason: str) -> int:
    """Mark a workflow's not-yet-sent deliveries skipped; sent ones are history and stay."""
    return conn.execute(
        update(deliveries)
        .where(deliveries.c.workflow_id == workflow_id, deliveries.c.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.SKIPPED, error=reason, updated_at=now)
    ).rowcount


def requeue(conn: Connection, delivery_id: int, now: dt.datetime) -> Delivery:
    """Send a dead, unknown or skipped delivery again, now, with a fresh attempt count."""
    retryable = and_(deliveries.c.id == delivery_id, deliveries.c.status.in_(RETRYABLE_STATUSES))
    again = (update(deliveries)
             .values(status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=now, updated_at=now))
    if server_for(conn).update_returning:
        row = conn.execute(again.where(retryable).returning(*deliveries.c)).one_or_none()
    else:
        locked = conn.execute(select(deliveries.c.id).where(retryable).with_for_update()).scalars().all()
        row = next(iter(_update_locked(conn, again, list(locked))), None)
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
            status: DeliveryStatus | None = None, provider_statuses: tuple[str, ...] | None = None,
            limit: int = 50) -> list[Delivery]:
    """The newest deliveries first, optionally for one workflow, appointment, status or provider statuses."""
    query = select(deliveries).order_by(deliveries.c.id.desc()).limit(limit)
    if provider_statuses is not None:
        query = query.where(deliveries.c.provider_status.in_(provider_statuses))
    if workflow_id is not None:
        query = query.where(deliveries.c.workflow_id == workflow_id)
    if appointment_id is not None:
        query = query.where(deliveries.c.subject_table == CapturedTable.APPOINTMENTS,
                            deliveries.c.subject_id == appointment_id)
    if status is not None:
        query = query.where(deliveries.c.status == status)
    return [_delivery(row) for row in conn.execute(query)]


def counts_by_status(conn: Connection) -> dict[str, int]:
    """How many deliveries are in each state."""
    query = select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
    return {status: count for status, count in conn.execute(query)}



def occurrence_recorded(conn: Connection, workflow_id: int, subject_id: int, occurrence: str) -> bool:
    """Whether a firing (or its missed/skipped record) of this workflow for this subject exists."""
    query = select(deliveries.c.id).where(
        deliveries.c.workflow_id == workflow_id, deliveries.c.subject_id == subject_id,
        deliveries.c.subject_table == CapturedTable.APPOINTMENTS, deliveries.c.occurrence == occurrence).limit(1)
    return conn.execute(query).first() is not None
