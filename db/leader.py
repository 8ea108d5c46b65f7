"""Leadership among daemons sharing one database: a session-level lock, the server's own (PostgreSQL's
advisory lock, MySQL/MariaDB's named lock; see :mod:`db.servers`)."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from db.servers import server_for


def try_lead(conn: Connection) -> bool:
    """Take the leader lock on this connection's session if no other session holds it."""
    return server_for(conn).try_lead(conn)


def still_held(conn: Connection) -> bool:
    """Whether this session still holds the leader lock (a round trip: it fails if the session is gone)."""
    return server_for(conn).still_held(conn)


def resign(conn: Connection) -> None:
    """Release the leader lock."""
    server_for(conn).resign(conn)
