"""Queries on ``instances``: which daemons run and what each leads, for the partitions' sharing and
``apptflow status``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from db.records import Instance
from db.tables import instances


def lock_number(instance_id: str) -> int:
    """The number of the lock an instance holds while it is alive (a 28-bit number from its random id)."""
    return int(instance_id[:7], 16)


def register(conn: Connection, instance_id: str, hostname: str, pid: int, now: dt.datetime,
             partitions: int = 1) -> None:
    """Record a daemon that has just started."""
    conn.execute(instances.insert().values(id=instance_id, hostname=hostname, pid=pid, started_at=now,
                                           heartbeat_at=now, partitions=partitions, leads=""))


def heartbeat(conn: Connection, instance_id: str, now: dt.datetime) -> None:
    """Record that a daemon is still alive."""
    conn.execute(update(instances).where(instances.c.id == instance_id).values(heartbeat_at=now))


def leads(conn: Connection, instance_id: str, partitions: Iterable[int]) -> None:
    """Record the partitions a daemon leads now."""
    conn.execute(update(instances).where(instances.c.id == instance_id)
                 .values(leads=",".join(str(p) for p in sorted(partitions))))


def stopped(conn: Connection, instance_id: str, now: dt.datetime) -> None:
    """Record a clean stop."""
    conn.execute(update(instances).where(instances.c.id == instance_id)
                 .values(stopped_at=now, heartbeat_at=now, leads=""))


def running(conn: Connection, since: dt.datetime) -> list[Instance]:
    """Daemons not stopped that sent a heartbeat after *since*."""
    query = select(instances).where(instances.c.stopped_at.is_(None), instances.c.heartbeat_at >= since)
    return [Instance(**row._mapping) for row in conn.execute(query.order_by(instances.c.started_at))]


def led(instance: Instance) -> list[int]:
    """The partitions an instance's row says it leads."""
    return [int(p) for p in (instance.leads or "").split(",") if p]
