"""Leadership among daemons sharing one PostgreSQL database: a session-level advisory lock."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

# An arbitrary, fixed 64-bit key: "apptflow" in ASCII.
LEADER_LOCK_KEY = 0x61707074666C6F77


def try_lead(conn: Connection) -> bool:
    """Take the leader lock on this connection's session if no other session holds it."""
    return bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": LEADER_LOCK_KEY}).scalar())


def still_held(conn: Connection) -> bool:
    """Whether this session still holds the leader lock (a round trip: it fails if the session is gone)."""
    return bool(conn.execute(text(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
        "AND granted AND classid = :high AND objid = :low AND objsubid = 1)"
    ), {"high": LEADER_LOCK_KEY >> 32, "low": LEADER_LOCK_KEY & 0xFFFFFFFF}).scalar())


def resign(conn: Connection) -> None:
    """Release the leader lock."""
    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LEADER_LOCK_KEY})
