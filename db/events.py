"""Queries on ``change_events``: the captured changes, consumed as a queue."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from db.codes import WORKFLOW_TABLES
from db.partitions import in_partitions
from db.records import ChangeEvent
from db.servers import among, server_for
from db.tables import capture_errors, change_events


# What an event's partition is the remainder of: its own key, else its row's id.
PARTITION_KEY = func.coalesce(change_events.c.partition_key, change_events.c.row_id)


def claim_events(conn: Connection, limit: int, partitions: int = 1,
                 held: Collection[int] = (0,)) -> list[ChangeEvent]:
    """Lock and return up to *limit* unprocessed events of the *held* partitions, oldest id first.

    On PostgreSQL rows locked by another consumer are skipped, so a slow
    transaction never blocks the queue; mark the events processed in the same
    transaction. Never "id greater than the last seen": ids commit out of order.
    """
    query = (
        select(change_events)
        .where(change_events.c.processed_at.is_(None), in_partitions(PARTITION_KEY, partitions, held))
        .order_by(change_events.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [
        ChangeEvent(id=r.id, table_name=r.table_name, row_id=r.row_id, op=r.op, old=r.old,
                    new=r.new, depth=r.depth, created_at=r.created_at, partition_key=r.partition_key)
        for r in conn.execute(query)
    ]


def workflows_changed(conn: Connection, after: int, upto: int) -> bool:
    """Whether a workflow or its actions changed by an event with an id in (*after*, *upto*], whatever its
    partition (a range of the primary key: the events between two batches)."""
    query = (select(change_events.c.id)
             .where(change_events.c.id > after, change_events.c.id <= upto,
                    change_events.c.table_name.in_(WORKFLOW_TABLES), change_events.c.partition_key.is_(None))
             .limit(1))
    return conn.execute(query).first() is not None


def copy_events(conn: Connection, copies: list[tuple[ChangeEvent, int]], now: dt.datetime) -> None:
    """Queue each event again for the partition given with it (by its key), for that partition's planning."""
    if copies:
        conn.execute(insert(change_events), [
            {"table_name": e.table_name, "row_id": e.row_id, "op": e.op, "old": e.old, "new": e.new,
             "depth": e.depth, "created_at": now, "partition_key": key} for e, key in copies])


def waiting_by_partition(conn: Connection, partitions: int) -> dict[int, int]:
    """How many change events wait in each partition (those with none left out)."""
    part = (PARTITION_KEY % partitions).label("part")
    query = select(part, func.count()).where(change_events.c.processed_at.is_(None)).group_by(part)
    return {int(p): n for p, n in conn.execute(query)}


def mark_processed(conn: Connection, event_id: int, now: dt.datetime, error: str | None = None) -> None:
    """Mark one event handled (with the error, if handling it failed)."""
    conn.execute(
        update(change_events).where(change_events.c.id == event_id).values(processed_at=now, error=error)
    )


def mark_processed_many(conn: Connection, event_ids: list[int], now: dt.datetime) -> None:
    """Mark events handled, many to a statement."""
    for start in range(0, len(event_ids), 500):
        conn.execute(update(change_events).where(among(conn, change_events.c.id, event_ids[start:start + 500]))
                     .values(processed_at=now, error=None))


def backlog(conn: Connection) -> tuple[int, dt.datetime | None]:
    """How many events wait, and when the oldest of them was captured."""
    row = conn.execute(
        select(func.count(), func.min(change_events.c.created_at)).where(change_events.c.processed_at.is_(None))
    ).one()
    oldest = row[1]
    if isinstance(oldest, str):  # SQLite's min() of text loses the column type
        oldest = change_events.c.created_at.type.process_result_value(oldest, conn.dialect)
    return row[0], oldest


def failed_events(conn: Connection) -> int:
    """How many events could not be handled."""
    return conn.execute(select(func.count()).where(change_events.c.error.is_not(None))).scalar_one()


def capture_failures(conn: Connection, after: int = 0) -> tuple[int, int, str | None]:
    """Changes the capture trigger could not record, with an id above *after*: (how many, the highest id,
    the last one's error)."""
    count, last = conn.execute(select(func.count(), func.max(capture_errors.c.id))
                               .where(capture_errors.c.id > after)).one()
    if not count:
        return 0, after, None
    error = conn.execute(select(capture_errors.c.error).where(capture_errors.c.id == last)).scalar_one()
    return count, last, error


def purge_processed(conn: Connection, before: dt.datetime) -> int:
    """Delete events handled before *before*; return how many."""
    result = conn.execute(
        change_events.delete().where(change_events.c.processed_at < before, change_events.c.error.is_(None))
    )
    return result.rowcount


def count_waiting(conn: Connection) -> int:
    """How many change events wait to be handled."""
    return conn.execute(select(func.count()).select_from(change_events)
                        .where(change_events.c.processed_at.is_(None))).scalar_one()


def oldest_waiting(conn: Connection) -> dt.datetime | None:
    """When the oldest change event not handled yet was captured (None when none waits)."""
    return conn.execute(select(func.min(change_events.c.created_at))
                        .where(change_events.c.processed_at.is_(None))).scalar_one()


def stamp_chain_depth(conn: Connection, depth: int) -> None:
    """Mark the changes this transaction makes next as caused by a set_status chain of *depth*, on a server
    whose triggers read it from the session (:func:`unstamp_chain_depth` must follow the write)."""
    server_for(conn).stamp_depth(conn, depth)


def unstamp_chain_depth(conn: Connection) -> None:
    """Changes this session makes next come from outside again."""
    server_for(conn).unstamp_depth(conn)
