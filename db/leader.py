"""Leadership among daemons sharing one PostgreSQL database: a session-level advisory lock."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

# An arbitrary, fixed 64-bit key: "apptflow" in ASCII.
LEADER_LOCK_KEY = 0x61707074666C6F77


def try_lead(conn: Connection) -> bool:
    """Take the leader lock on this connection's session if no other session holds it."""
    return bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": LEADER_LOCK_KEY}).scalar())


def still_connected(conn: Connection) -> bool:
    """A round trip on the session that holds the lock (it is released when the session ends)."""
    return conn.execute(text("SELECT 1")).scalar() == 1


def resign(conn: Connection) -> None:
    """Release the leader lock."""
    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LEADER_LOCK_KEY})
