"""Leadership among daemons sharing one database: session-level locks, the server's own (PostgreSQL's
advisory locks, MySQL/MariaDB's named locks; see :mod:`db.servers`), one per partition led and one per
instance alive (docs/scale-out.md)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.engine import Connection

from db.servers import server_for

PARTITION, INSTANCE = "partition", "instance"


def try_lock(conn: Connection, kind: str, number: int) -> bool:
    """Take a lock on this connection's session if no other session holds it."""
    return server_for(conn).try_lock(conn, kind, number)


def held(conn: Connection, kind: str, numbers: Iterable[int]) -> set[int]:
    """Which of these locks this session still holds (a round trip: it fails if the session is gone)."""
    return server_for(conn).held(conn, kind, numbers)


def taken(conn: Connection, kind: str, numbers: Iterable[int]) -> set[int]:
    """Which of these locks some session holds."""
    return server_for(conn).taken(conn, kind, numbers)


def unlock(conn: Connection, kind: str, number: int) -> None:
    """Release a lock of this session."""
    server_for(conn).unlock(conn, kind, number)
