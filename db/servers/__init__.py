"""The database servers apptflow runs on: one object each, looked up once by name.

Everything that differs between servers (capabilities such as RETURNING,
notifications, a leader lock, a schema of apptflow's own; the SQL of change
capture, idempotent inserts, leadership; how a time is stored) is a
:class:`~db.servers.base.Server` object's, in this package. Code elsewhere asks
the object (:func:`server_for`), never the server's name. A server apptflow
does not know is refused: :class:`UnknownServer`, never a default.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection, Dialect, Engine, URL, make_url
from sqlalchemy.sql import ColumnElement

from db.servers import mysql, postgresql, sqlite
from db.servers.base import Server, UnknownServer, UnsupportedServer

SERVERS: tuple[Server, ...] = (sqlite.SERVER, postgresql.SERVER, mysql.SERVER)
_BY_NAME = {name: server for server in SERVERS for name in server.names}

__all__ = ["SERVERS", "Server", "UnknownServer", "UnsupportedServer", "server_for", "server_of"]


def server_of(url: str | URL) -> Server:
    """The server a database URL names (``postgresql+psycopg://…``); UnknownServer if apptflow knows none."""
    return _lookup(make_url(url).get_backend_name())


def server_for(bind: Engine | Connection | Dialect) -> Server:
    """The server of an engine, a connection or a dialect (a dictionary look-up: cheap on every path)."""
    return _lookup(getattr(bind, "dialect", bind).name)


def among(bind: Engine | Connection, column: ColumnElement, values) -> ColumnElement:
    """*column* is one of *values*, as this server says it best (PostgreSQL: ``= ANY(array)``)."""
    return server_for(bind).among(column, values)


def _lookup(name: str) -> Server:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownServer(f"unsupported database {name!r}: apptflow runs on {', '.join(_BY_NAME)}") from None
