"""Queries on ``instances``: which daemons run, for ``apptflow status``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from db.records import Instance
from db.tables import instances


def register(conn: Connection, instance_id: str, hostname: str, pid: int, now: dt.datetime) -> None:
    """Record a daemon that has just started."""
    conn.execute(instances.insert().values(id=instance_id, hostname=hostname, pid=pid,
                                           started_at=now, heartbeat_at=now))


def heartbeat(conn: Connection, instance_id: str, now: dt.datetime) -> None:
    """Record that a daemon is still alive."""
    conn.execute(update(instances).where(instances.c.id == instance_id).values(heartbeat_at=now))


def stopped(conn: Connection, instance_id: str, now: dt.datetime) -> None:
    """Record a clean stop."""
    conn.execute(update(instances).where(instances.c.id == instance_id).values(stopped_at=now, heartbeat_at=now))


def running(conn: Connection, since: dt.datetime) -> list[Instance]:
    """Daemons not stopped that sent a heartbeat after *since*."""
    query = select(instances).where(instances.c.stopped_at.is_(None), instances.c.heartbeat_at >= since)
    return [Instance(**row._mapping) for row in conn.execute(query.order_by(instances.c.started_at))]
