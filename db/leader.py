"""Leadership among daemons sharing one database: a session-level lock (PostgreSQL's advisory lock,
MySQL/MariaDB's named lock)."""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.engine import Connection

from db.connect import own_prefix

# An arbitrary, fixed 64-bit key: "apptflow" in ASCII.
LEADER_LOCK_KEY = 0x61707074666C6F77


def _mysql_lock_name(conn: Connection) -> str:
    """A named lock is the server's, not the database's: the name says which installation it leads (a hash
    of the database and the prefix, since a lock's name has 64 characters at most)."""
    database = conn.exec_driver_sql("SELECT DATABASE()").scalar()
    installation = hashlib.sha256(f"{database}\0{own_prefix(conn)}".encode()).hexdigest()[:40]
    return f"apptflow leader {installation}"


def try_lead(conn: Connection) -> bool:
    """Take the leader lock on this connection's session if no other session holds it."""
    if conn.dialect.name == "mysql":
        return conn.execute(text("SELECT GET_LOCK(:name, 0)"), {"name": _mysql_lock_name(conn)}).scalar() == 1
    return bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": LEADER_LOCK_KEY}).scalar())


def still_held(conn: Connection) -> bool:
    """Whether this session still holds the leader lock (a round trip: it fails if the session is gone)."""
    if conn.dialect.name == "mysql":
        return bool(conn.execute(text("SELECT IS_USED_LOCK(:name) = CONNECTION_ID()"),
                                 {"name": _mysql_lock_name(conn)}).scalar())
    return bool(conn.execute(text(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
        "AND granted AND classid = :high AND objid = :low AND objsubid = 1)"
    ), {"high": LEADER_LOCK_KEY >> 32, "low": LEADER_LOCK_KEY & 0xFFFFFFFF}).scalar())


def resign(conn: Connection) -> None:
    """Release the leader lock."""
    if conn.dialect.name == "mysql":
        conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": _mysql_lock_name(conn)})
        return
    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LEADER_LOCK_KEY})
